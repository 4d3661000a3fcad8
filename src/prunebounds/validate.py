"""Checks of every argument a reader can pass: one place, one wording, ParameterError.

Every public function of the package validates its input with these helpers, so a bad
value stops at once with a :class:`prunebounds.errors.ParameterError` whose message
names the parameter and its valid values. The module imports nothing from the package
except :mod:`prunebounds.errors`, so any module can use it without an import cycle.

Two groups:

* generic checks: :func:`check_choice`, :func:`check_int`, :func:`check_real`,
  :func:`check_epochs`;
* the arguments of the bounds: the margin gamma (:func:`check_gamma`), the number of
  training samples m (:func:`check_m`), the failure probability delta
  (:func:`check_delta`), an empirical margin loss (:func:`check_loss`), the number r of
  values per parameter (:func:`check_r`), lists of weight matrices that must compose
  (:func:`check_weights`, :func:`check_chain`) and layer shapes
  (:func:`check_layer_shapes`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from .errors import ParameterError

__all__ = [
    "names",
    "check_choice",
    "check_int",
    "check_real",
    "check_epochs",
    "check_gamma",
    "check_m",
    "check_delta",
    "check_loss",
    "check_r",
    "check_chain",
    "check_weights",
    "check_layer_shapes",
]


def names(options) -> str:
    """The options sorted and joined by commas, as every message lists them."""
    return ", ".join(sorted(str(o) for o in options))


# --------------------------------------------------------------------------- generic
def check_choice(name: str, value: Any, options) -> str:
    """Return ``value`` if it is one of ``options``, else raise naming them."""
    if not isinstance(value, str) or value not in options:
        raise ParameterError(f"unknown {name} {value!r}; valid values: {names(options)}")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ParameterError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_real(name: str, value: Any, *, minimum: float | None = None,
               maximum: float | None = None) -> float:
    """Return ``value`` as a float if it is a finite real number within the bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ParameterError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ParameterError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_epochs(name: str, value: Any) -> tuple[int, ...]:
    """``value`` (an integer or a list of them, each >= 1) as a sorted tuple without repeats."""
    items = [value] if isinstance(value, numbers.Integral) else value
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise ParameterError(f"{name} must be a list of epochs (integers >= 1), got {value!r}")
    return tuple(sorted({check_int(f"{name} epoch", e, minimum=1) for e in items}))


# --------------------------------------------------------------------------- arguments of the bounds
def check_gamma(gamma: Any) -> float:
    """The margin gamma of a margin bound: a finite real number > 0."""
    g = check_real("gamma", gamma)
    if g <= 0:
        raise ParameterError(
            f"gamma must be > 0, got {g}: margin bounds need a positive margin "
            "(a network with a non-positive minimum margin misclassifies a training "
            "sample; use a positive margin percentile instead)"
        )
    return g


def check_m(m: Any) -> int:
    """The number of training samples m: an integer >= 1."""
    return check_int("m (number of training samples)", m, minimum=1)


def check_delta(delta: Any) -> float:
    """The failure probability delta: a real number in the open interval (0, 1)."""
    d = check_real("delta", delta)
    if not 0.0 < d < 1.0:
        raise ParameterError(f"delta must lie in the open interval (0, 1), got {d}")
    return d


def check_loss(x: Any) -> float:
    """An empirical margin loss: a fraction in [0, 1]."""
    return check_real("empirical_margin_loss", x, minimum=0.0, maximum=1.0)


def check_r(r: Any) -> int:
    """The number r of values a stored parameter may take: an integer >= 2."""
    return check_int("r (values per parameter)", r, minimum=2)


def check_chain(weights: Sequence[torch.Tensor]) -> None:
    """Raise a ParameterError unless the matrices compose: A^{l+1}.in == A^l.out."""
    if len(weights) == 0:
        raise ParameterError("need at least one weight matrix")
    for l, (a, b) in enumerate(zip(weights[:-1], weights[1:]), start=1):
        if a.ndim != 2 or b.ndim != 2 or b.shape[1] != a.shape[0]:
            raise ParameterError(
                f"weight matrices do not chain: layer {l} is {tuple(a.shape)} (out x in) "
                f"but layer {l + 1} is {tuple(b.shape)}; layer {l + 1} must take "
                f"{a.shape[0] if a.ndim == 2 else '?'} inputs"
            )


def check_weights(weights: Any, name: str = "weights", float64: bool = True) -> list[torch.Tensor]:
    """Weight matrices (out x in) checked to be 2-D, finite and chaining.

    ``float64=True`` returns float64 copies on the matrices' own device; ``False``
    returns them as given (detached).
    """
    if isinstance(weights, torch.Tensor) or not isinstance(weights, Sequence):
        raise ParameterError(
            f"{name} must be a list of 2-D weight matrices (out x in), got {type(weights).__name__}"
        )
    out = []
    for l, w in enumerate(weights, start=1):
        t = torch.as_tensor(w).detach()
        if t.ndim != 2:
            raise ParameterError(
                f"{name}: layer {l} has shape {tuple(t.shape)}; every weight must be a "
                "2-D (out x in) matrix"
            )
        if float64:
            t = t.to(dtype=torch.float64)
        # the sum is finite unless an entry is inf/nan (or it overflows): a quick first test
        if not (bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())):
            raise ParameterError(f"{name}: layer {l} has non-finite entries")
        out.append(t)
    check_chain(out)
    return out


def check_layer_shapes(layer_shapes: Any) -> list[tuple[int, int]]:
    """(out, in) pairs, from pairs or from weight tensors, each side an integer >= 1."""
    shapes = []
    for s in layer_shapes:
        s = tuple(s.shape) if isinstance(s, torch.Tensor) else tuple(s)
        if len(s) != 2:
            raise ParameterError(f"a layer shape must be (out, in), got {s}")
        shapes.append((check_int("layer dimension", s[0], minimum=1),
                       check_int("layer dimension", s[1], minimum=1)))
    if not shapes:
        raise ParameterError("layer_shapes must name at least one layer")
    return shapes
