"""From layer-wise pruning errors to the change of the network's output.

The paper propagates the spectral norms of the pruning errors Delta^l = A^l - A_hat^l
through the network with the perturbation lemma of Neyshabur, Bhojanapalli & Srebro,
"A PAC-Bayesian approach to spectrally-normalized margin bounds for neural networks"
(ICLR 2018), Lemma 2: for an L-layer ReLU network **without biases**, inputs with
||x||_2 <= B, and perturbations with ||Delta^l||_2 <= ||A^l||_2 / L for every l,

    |f_A(x) - f_{A - Delta}(x)|_2 <= e B (prod_l ||A^l||_2) sum_l ||Delta^l||_2 / ||A^l||_2.   (P)

The paper multiplies this by a product of factors Gamma_l that its main text does not
define; :func:`authors_gamma` computes them as the authors' code does, and
:func:`needed_margin` evaluates the authors' quantity with its factors, so a chapter can
say which factor dominates. :func:`output_change` measures the true change of the
outputs on data, and :class:`PruningProbe` evaluates many pruned copies of one network
(every bound and the truth), :func:`certified_d` the largest d whose needed margin fits.

Biases. Lemma (P) is stated for networks without biases; the paper's networks have
them. :func:`augmented_weights` turns a network with biases into an equivalent bias-free
one on inputs [x; 1] (so B becomes sqrt(B^2 + 1)); since pruning never touches biases,
the augmented errors have the same spectral norms as the Delta^l. The authors' code
applies (P) with the plain weight matrices and B = max ||x||_2, ignoring the biases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import nn

from .errors import ParameterError
from .margins import error_rate, logits
from .models import linear_layers, weight_matrices
from .norms import max_input_norm
from .norms import spectral_norms as _norms
from .pruning import prune_paper, weight_variance
from .random_matrices import markov_factor, provable_error_norm_bound
from .validate import check_chain, check_choice, check_int, check_real

__all__ = [
    "perturbation_bound",
    "perturbation_condition_holds",
    "augmented_weights",
    "authors_t",
    "authors_gamma",
    "MarginBreakdown",
    "needed_margin",
    "needed_margin_from_norms",
    "OutputChange",
    "output_change",
    "ProbeResult",
    "PruningProbe",
    "certified_d",
    "ProvableMargin",
    "ProvableChain",
    "provable_needed_margin",
    "output_change_from_logits",
]

#: The target probability in the authors' equation for t: 1 - m exp(-t^2 d_1) = 0.99.
AUTHORS_TARGET = 0.99
#: The authors' bisection: scipy.optimize.bisect on [0, 1] with xtol = 0.01.
AUTHORS_XTOL = 0.01


# --------------------------------------------------------------------------- helpers
def _norm_list(name: str, values: Sequence[Any], *, positive: bool) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ParameterError(f"{name} must be a non-empty list of norms, one per layer")
    out = []
    for i, v in enumerate(values):
        v = float(v) if isinstance(v, torch.Tensor) else v
        v = check_real(f"{name}[{i}]", v, minimum=0.0)
        if positive and v == 0.0:
            raise ParameterError(f"{name}[{i}] must be > 0 (a layer with zero norm makes "
                                 "the network constant; the bound divides by it)")
        out.append(v)
    return out


def _paired(weight_norms, delta_norms) -> tuple[list[float], list[float]]:
    a = _norm_list("weight_norms", weight_norms, positive=True)
    d = _norm_list("delta_norms", delta_norms, positive=False)
    if len(a) != len(d):
        raise ParameterError(f"{len(a)} weight norms but {len(d)} delta norms; "
                             "give one of each per layer")
    return a, d


def _weights(x: nn.Module | Sequence[torch.Tensor], name: str) -> list[torch.Tensor]:
    ws = weight_matrices(x) if isinstance(x, nn.Module) else list(x)
    if not all(isinstance(w, torch.Tensor) for w in ws):
        raise ParameterError(f"{name} must be a model or a list of weight tensors")
    check_chain(ws)
    return [w.detach() for w in ws]


# --------------------------------------------------------------------------- the perturbation lemma
def perturbation_bound(weight_norms: Sequence[float], delta_norms: Sequence[float],
                       input_norm: float) -> float:
    """e B (prod_l ||A^l||_2) sum_l ||Delta^l||_2 / ||A^l||_2, the right side of (P).

    Neyshabur, Bhojanapalli & Srebro (ICLR 2018), Lemma 2: it bounds the Euclidean norm
    of the change of the output vector, hence also its sup-norm and the change of any
    single logit, for every input with ||x||_2 <= B, **provided**
    :func:`perturbation_condition_holds` (||Delta^l|| <= ||A^l|| / L for all l) and the
    network has no biases (see :func:`augmented_weights`).

    Args:
        weight_norms: ||A^l||_2 per layer (> 0).
        delta_norms: ||Delta^l||_2 per layer (>= 0).
        input_norm: B = max ||x||_2 over the inputs considered.
    """
    a, d = _paired(weight_norms, delta_norms)
    b = check_real("input_norm", input_norm, minimum=0.0)
    return float(math.e * b * math.prod(a) * sum(dl / al for dl, al in zip(d, a)))


def perturbation_condition_holds(weight_norms: Sequence[float],
                                 delta_norms: Sequence[float]) -> bool:
    """True iff ||Delta^l||_2 <= ||A^l||_2 / L for every layer l (hypothesis of (P))."""
    a, d = _paired(weight_norms, delta_norms)
    L = len(a)
    return all(dl <= al / L for dl, al in zip(d, a))


def augmented_weights(model: nn.Module) -> list[torch.Tensor]:
    """Bias-free matrices that compute the same network on augmented inputs [x; 1].

    Hidden layer l becomes [[A^l, b^l], [0, 1]] (the constant 1 passes through ReLU
    unchanged), the last layer [A^L, b^L]. So f(x) = A~^L phi(... phi(A~^1 [x; 1])), and
    Lemma (P) applies with B~ = sqrt(B^2 + 1) and the norms of these matrices. A layer
    without bias gets a zero column. Used to apply (P) rigorously to networks with biases.
    """
    layers = linear_layers(model)
    if not layers:
        raise ParameterError("the model has no nn.Linear layers")
    out = []
    for i, layer in enumerate(layers):
        W = layer.weight.detach().to(torch.float64)
        b = (layer.bias.detach().to(torch.float64) if layer.bias is not None
             else torch.zeros(W.shape[0], dtype=torch.float64, device=W.device))
        top = torch.cat([W, b[:, None]], dim=1)
        if i < len(layers) - 1:
            bottom = torch.zeros(1, W.shape[1] + 1, dtype=torch.float64, device=W.device)
            bottom[0, -1] = 1.0
            top = torch.cat([top, bottom], dim=0)
        out.append(top)
    return out


# --------------------------------------------------------------------------- the authors' Gamma
def authors_t(fan_in: int, m: int, method: str = "closed") -> float:
    """The t of the authors' code: the root of 1 - m exp(-t^2 d_1) = 0.99, d_1 = fan-in.

    Closed form: m exp(-t^2 d_1) = 0.01, so t = sqrt(log(100 m) / d_1).
    ``method="bisect"`` reproduces the authors' numbers: ``scipy.optimize.bisect`` on
    [0, 1] with ``xtol=0.01`` (so |t_bisect - t| <= 0.01). The bisection needs the root
    in [0, 1], i.e. log(100 m) <= d_1; otherwise it raises (as the authors' code would).

    Args:
        fan_in: d_1 = number of inputs of the layer (PyTorch ``weight.shape[1]``).
        m: number of training samples.
        method: ``"closed"`` or ``"bisect"``.
    """
    d1 = check_int("fan_in", fan_in, minimum=1)
    m = check_int("m", m, minimum=1)
    method = check_choice("method", method, ("closed", "bisect"))
    t_closed = math.sqrt(math.log(100.0 * m) / d1)
    if method == "closed":
        return t_closed
    if t_closed > 1.0:
        raise ParameterError(f"the root t = {t_closed:.4g} lies outside the authors' bisection "
                             "interval [0, 1] (log(100 m) > fan_in); use method='closed'")

    def f(t: float) -> float:
        return 1.0 - m * np.exp(-t * t * d1) - AUTHORS_TARGET

    return float(scipy.optimize.bisect(f, 0.0, 1.0, xtol=AUTHORS_XTOL))


def authors_gamma(fan_in: int, fan_out: int, m: int, method: str = "closed") -> float:
    """Gamma_l of the authors' code: min(1, t sqrt(d_2)) if d_2 < d_1, else 1.

    The factor prod_l Gamma_l that the paper multiplies the perturbation bound with is
    not defined in its main text (brief, "Pruning error"); this is what the authors' code
    computes for a layer with fan-in d_1 and fan-out d_2 (PyTorch weight is out x in, so
    d_1 = ``weight.shape[1]``, d_2 = ``weight.shape[0]``), with t from :func:`authors_t`.
    If the root t exceeds 1 the bisection of the authors' code would fail, but then
    t sqrt(d_2) > 1 and Gamma = 1 for either method, which is returned.

    Example: the paper's MNIST output layer (d_1 = 784, d_2 = 10) with m = 48,000 gives
    Gamma = sqrt(10 log(4.8e6) / 784) = 0.443; square layers give 1.
    """
    d1 = check_int("fan_in", fan_in, minimum=1)
    d2 = check_int("fan_out", fan_out, minimum=1)
    m = check_int("m", m, minimum=1)
    method = check_choice("method", method, ("closed", "bisect"))
    if d2 >= d1:
        return 1.0
    if authors_t(d1, m, "closed") * math.sqrt(d2) >= 1.0:
        return 1.0
    return float(min(1.0, authors_t(d1, m, method) * math.sqrt(d2)))


# --------------------------------------------------------------------------- the authors' needed margin
@dataclass(frozen=True)
class MarginBreakdown:
    """The authors' needed margin and its factors.

    value = e_times_b * product_of_norms * sum_of_ratios * product_of_gammas.
    """

    value: float
    e_times_b: float
    product_of_norms: float
    sum_of_ratios: float
    product_of_gammas: float
    weight_norms: tuple[float, ...]
    delta_norms: tuple[float, ...]
    gammas: tuple[float, ...]
    condition_holds: bool


def needed_margin(weights: nn.Module | Sequence[torch.Tensor],
                  pruned_weights: nn.Module | Sequence[torch.Tensor],
                  input_norm: float, m: int, with_gamma: bool = True,
                  gamma_method: str = "bisect") -> MarginBreakdown:
    """The authors' evaluated margin e B (sum_l ||Delta^l||/||A^l||) prod_l ||A^l|| prod_l Gamma_l.

    The quantity the authors' code compares with the network's margin (``needed_margin``
    in ``find_alpha_true``/``compute_best_generalization_bound``): the perturbation
    bound (P) times the authors' prod_l Gamma_l (brief, "Pruning error (Lemma 4.1,
    reconstructed)"). Compression succeeds when it is <= gamma. With
    ``with_gamma=False`` it is exactly (P). The hypothesis of (P) is reported in
    ``condition_holds`` but not enforced, as in the authors' code.

    Args:
        weights: the original model or its weight matrices A^l (out x in).
        pruned_weights: the pruned model or its matrices A_hat^l (same shapes).
        input_norm: B = max ||x||_2 over the training inputs.
        m: number of training samples (enters Gamma only).
        with_gamma: multiply by prod_l Gamma_l (the authors did).
        gamma_method: ``"bisect"`` (the authors' numbers) or ``"closed"``.
    """
    A = _weights(weights, "weights")
    A_hat = _weights(pruned_weights, "pruned_weights")
    if len(A) != len(A_hat) or any(a.shape != b.shape for a, b in zip(A, A_hat)):
        raise ParameterError("weights and pruned_weights must have the same number of layers "
                             "and the same shapes: "
                             f"{[tuple(a.shape) for a in A]} vs {[tuple(b.shape) for b in A_hat]}")
    a_norms = _norms(A)
    d_norms = _norms([a.to(torch.float64) - h.to(torch.float64) for a, h in zip(A, A_hat)])
    return needed_margin_from_norms(a_norms, d_norms, [tuple(a.shape) for a in A], input_norm,
                                    m, with_gamma=with_gamma, gamma_method=gamma_method)


def needed_margin_from_norms(weight_norms: Sequence[float], delta_norms: Sequence[float],
                             shapes: Sequence[tuple[int, int]], input_norm: float, m: int,
                             with_gamma: bool = True,
                             gamma_method: str = "bisect") -> MarginBreakdown:
    """:func:`needed_margin` from norms already computed (for sweeps over many prunings).

    Args:
        weight_norms: ||A^l||_2 per layer.
        delta_norms: ||Delta^l||_2 per layer.
        shapes: each layer's weight shape (out, in) = (d_2, d_1), for Gamma_l.
        input_norm, m, with_gamma, gamma_method: as in :func:`needed_margin`.
    """
    a_norms, d_norms = _paired(weight_norms, delta_norms)
    if len(shapes) != len(a_norms) or any(len(sh) != 2 for sh in shapes):
        raise ParameterError(f"need one (out, in) shape per layer ({len(a_norms)}), got {shapes!r}")
    m = check_int("m", m, minimum=1)
    b = check_real("input_norm", input_norm, minimum=0.0)
    gammas = ([authors_gamma(int(sh[1]), int(sh[0]), m, gamma_method) for sh in shapes]
              if with_gamma else [1.0] * len(a_norms))
    prod_norms = math.prod(a_norms)
    ratios = sum(dl / al for dl, al in zip(d_norms, a_norms))
    prod_gammas = math.prod(gammas)
    eb = math.e * b
    return MarginBreakdown(
        value=float(eb * prod_norms * ratios * prod_gammas), e_times_b=float(eb),
        product_of_norms=float(prod_norms), sum_of_ratios=float(ratios),
        product_of_gammas=float(prod_gammas), weight_norms=tuple(a_norms),
        delta_norms=tuple(d_norms), gammas=tuple(float(g) for g in gammas),
        condition_holds=perturbation_condition_holds(a_norms, d_norms),
    )


# --------------------------------------------------------------------------- the true change of the outputs
@dataclass(frozen=True)
class OutputChange:
    """Measured change of the outputs on a data set (maxima over the samples)."""

    max_correct_logit_change: float  # max_i |f(x_i)[y_i] - g(x_i)[y_i]|, the authors' measure
    max_sup_change: float            # max_i ||f(x_i) - g(x_i)||_inf
    max_l2_change: float             # max_i ||f(x_i) - g(x_i)||_2, what (P) bounds


def output_change(model: nn.Module | None, pruned: nn.Module, X: torch.Tensor,
                  y: torch.Tensor, reference_logits: torch.Tensor | None = None) -> OutputChange:
    """The true change of the outputs of ``pruned`` against ``model`` on (X, y).

    ``max_correct_logit_change`` is the authors' "true pruning error" (``find_alpha_true``:
    the largest change of the correct-class logit over the training set); the sup-norm
    and Euclidean norm of the whole logit-vector change are returned too (the latter is
    what Lemma (P) bounds). Computed in float64 differences of the models' outputs.
    ``reference_logits`` (the outputs of ``model`` on ``X``) saves the forward pass of
    the unpruned model when many pruned copies are compared with it; ``model`` may then
    be ``None``.
    """
    if len(X) != len(y) or len(X) == 0:
        raise ParameterError(f"X and y must be non-empty and of equal length, got {len(X)} "
                             f"and {len(y)}")
    return _change_from_logits(_reference(model, X, reference_logits),
                              logits(pruned, X).to(torch.float64), y)


def _reference(model: nn.Module | None, X: torch.Tensor,
               reference_logits: torch.Tensor | None) -> torch.Tensor:
    if reference_logits is None:
        if model is None:
            raise ParameterError("give the unpruned model or its reference_logits")
        return logits(model, X).to(torch.float64)
    if reference_logits.shape[0] != len(X):
        raise ParameterError(f"reference_logits has {reference_logits.shape[0]} rows for "
                             f"{len(X)} samples")
    return reference_logits.to(torch.float64)


def _change_from_logits(ref: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> OutputChange:
    diff = ref - out.to(ref.device)
    correct = diff.gather(1, y.to(diff.device).long()[:, None]).squeeze(1).abs()
    return OutputChange(
        max_correct_logit_change=float(correct.max()),
        max_sup_change=float(diff.abs().max(dim=1).values.max()),
        max_l2_change=float(diff.norm(dim=1).max()),
    )


# --------------------------------------------------------------------------- sweeps over pruned copies
@dataclass(frozen=True)
class ProbeResult:
    """What :meth:`PruningProbe.evaluate` measures for one pruned copy.

    Attributes:
        kept: kept fraction per layer.
        mean_sq_delta: mean of Delta_ij^2 per layer.
        delta_norms: ||Delta^l||_2 per layer.
        authors: the authors' needed margin with its factors (with Gamma).
        textbook: Lemma (P) on the bias-augmented network, B~ = sqrt(B^2 + 1), no Gamma:
            a theorem when ``textbook_condition`` holds.
        textbook_condition: ||Delta^l||_2 <= ||A~^l||_2 / L for every layer.
        output: the measured :class:`OutputChange` on the training set; ``None``
            unless measured.
        train_error: the pruned network's error rate on the training set
            (:func:`prunebounds.margins.error_rate`); ``None`` unless measured.
    """

    kept: tuple[float, ...]
    mean_sq_delta: tuple[float, ...]
    delta_norms: tuple[float, ...]
    authors: MarginBreakdown
    textbook: float
    textbook_condition: bool
    output: OutputChange | None = None
    train_error: float | None = None


class PruningProbe:
    """Evaluate many pruned copies of one network: every bound of this module and the truth.

    Everything that does not depend on the pruning is computed once: the spectral norms
    of the weights A^l and of the bias-augmented matrices (:func:`augmented_weights`),
    the input bound B = max ||x||_2, and (on first use) the unpruned network's logits on
    (X, y). :meth:`evaluate` then costs one spectral norm per layer (of Delta^l) and, if
    asked, one forward pass of the pruned network over X. Everything is computed where
    the model's parameters are (move the model and the data with ``.to(device)``; the
    spectral norms of tensors on a GPU are computed there).

    Args:
        model: the trained (unpruned) network.
        X, y: the training set (the bounds are about it; B and m are taken from it).
        norm_method: ``"svd"`` or ``"lanczos"`` (:func:`prunebounds.norms.spectral_norm`).
        gamma_method: ``"bisect"`` (the authors' numbers) or ``"closed"``, for Gamma_l.
    """

    def __init__(self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, *,
                 norm_method: str = "lanczos", gamma_method: str = "bisect") -> None:
        if len(X) != len(y) or len(X) == 0:
            raise ParameterError(f"X and y must be non-empty and of equal length, got "
                                 f"{len(X)} and {len(y)}")
        self.norm_method = check_choice("norm_method", norm_method, ("svd", "lanczos"))
        self.gamma_method = check_choice("gamma_method", gamma_method, ("bisect", "closed"))
        self.weights = [w.to(torch.float64) for w in _weights(model, "model")]
        self.shapes = [tuple(w.shape) for w in self.weights]
        self.weight_norms = _norms(self.weights, self.norm_method)
        self.augmented_norms = _norms(augmented_weights(model), self.norm_method)
        self.X, self.y = X, y
        self.m = len(X)
        self.input_norm = max_input_norm(X)
        self._model = model
        self._reference_logits: torch.Tensor | None = None

    @property
    def reference_logits(self) -> torch.Tensor:
        """The unpruned network's logits on X (computed on first use, then kept)."""
        if self._reference_logits is None:
            self._reference_logits = logits(self._model, self.X).to(torch.float64)
        return self._reference_logits

    def delta_norms(self, pruned: nn.Module) -> list[float]:
        """||A^l - A_hat^l||_2 for each layer of ``pruned``."""
        P = _weights(pruned, "pruned")
        if [tuple(p.shape) for p in P] != self.shapes:
            raise ParameterError(f"pruned network has shapes {[tuple(p.shape) for p in P]}, "
                                 f"expected {self.shapes}")
        return _norms([a - p.to(torch.float64) for a, p in zip(self.weights, P)],
                      self.norm_method)

    def needed_margin(self, pruned: nn.Module | Sequence[torch.Tensor]) -> MarginBreakdown:
        """The authors' needed margin (with Gamma) for ``pruned`` (a model or its weights).

        The part of :meth:`evaluate` that a sweep over d needs: one spectral norm of
        Delta^l per layer, nothing else.
        """
        return needed_margin_from_norms(self.weight_norms, self.delta_norms(pruned),
                                        self.shapes, self.input_norm, self.m,
                                        with_gamma=True, gamma_method=self.gamma_method)

    def evaluate(self, pruned: nn.Module | Sequence[torch.Tensor], *,
                 true_error: bool = True,
                 delta_norms: Sequence[float] | None = None) -> ProbeResult:
        """Bounds (and, if ``true_error``, the measured change) for one pruned copy.

        ``pruned`` is a pruned copy of the model, or only its weight matrices when
        ``true_error`` is False. ``delta_norms``, if given, are the ||Delta^l||_2 already
        computed for this copy (e.g. many at once by
        :func:`prunebounds.norms.batched_spectral_norms` on a GPU); otherwise they are
        computed here. Returns a :class:`ProbeResult`.
        """
        P = _weights(pruned, "pruned")
        dn = (self.delta_norms(pruned) if delta_norms is None
              else _norm_list("delta_norms", list(delta_norms), positive=False))
        if len(dn) != len(P):
            raise ParameterError(f"{len(dn)} delta_norms for {len(P)} layers")
        authors = needed_margin_from_norms(self.weight_norms, dn, self.shapes, self.input_norm,
                                           self.m, with_gamma=True,
                                           gamma_method=self.gamma_method)
        b_aug = math.sqrt(self.input_norm ** 2 + 1.0)
        change, train_error = None, None
        if true_error:
            if not isinstance(pruned, nn.Module):
                raise ParameterError("true_error=True needs the pruned model, not only its "
                                     "weight matrices")
            out_logits = logits(pruned, self.X).to(torch.float64)
            change = _change_from_logits(self.reference_logits, out_logits, self.y)
            train_error = error_rate(out_logits, self.y)
        return ProbeResult(
            kept=tuple(float(torch.count_nonzero(p)) / p.numel() for p in P),
            mean_sq_delta=tuple(float(((a - p.to(torch.float64)) ** 2).mean())
                                for a, p in zip(self.weights, P)),
            delta_norms=tuple(dn),
            authors=authors,
            textbook=perturbation_bound(self.augmented_norms, dn, b_aug),
            textbook_condition=perturbation_condition_holds(self.augmented_norms, dn),
            output=change,
            train_error=train_error,
        )


def certified_d(probe: PruningProbe, model: nn.Module, margin: float, seed: int,
                d_max: float = 10.0, rel_tol: float = 1e-3, max_steps: int = 60) -> float:
    """The largest d whose authors' needed margin is <= ``margin``, by bisection in log d.

    The authors choose the pruning parameter d* by bisection so that needed_margin(d*)
    equals the network's margin (brief, "Sparsity pattern and sketching"). For a fixed
    seed the masks of :func:`prunebounds.pruning.prune_paper` are nested (the same
    uniforms are compared with keep probabilities that fall as d grows), so the needed
    margin grows with d in practice and bisection applies. Returns 0.0 if ``margin``
    <= 0 (no pruning fits inside a negative margin) and ``d_max`` if even d_max fits.
    """
    margin = check_real("margin", margin)
    d_max = check_real("d_max", d_max, minimum=0.0)
    rel_tol = check_real("rel_tol", rel_tol, minimum=1e-12)
    if margin <= 0.0 or d_max == 0.0:
        return 0.0

    def needed(d: float) -> float:
        return probe.needed_margin(prune_paper(model, d, seed)).value

    if needed(d_max) <= margin:
        return d_max
    lo, hi = 0.0, d_max          # needed(lo) <= margin < needed(hi)
    for _ in range(check_int("max_steps", max_steps, minimum=1)):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 8.0
        if needed(mid) <= margin:
            lo = mid
        else:
            hi = mid
        if lo > 0 and hi - lo <= rel_tol * hi:
            break
    return float(lo)


# --------------------------------------------------------------------------- the provable chain
@dataclass(frozen=True)
class ProvableMargin:
    """Lemma 4.1 with Markov's lambda carried through Lemma (P) (see :class:`ProvableChain`).

    value = e B~ (prod_l ||A~^l||_2) sum_l lambda b_l(d) / ||A~^l||_2: with probability
    at least ``1 - failure`` (over the Gaussian weights and the masks, the paper's
    weights-random view) every ||Delta^l||_2 <= lambda b_l(d) = ``delta_bounds[l]``,
    and then, when ``condition_holds``, every output moves by at most ``value``.
    """

    value: float
    d: float
    failure: float                     # total failure probability (union bound)
    lam: float                         # Markov's lambda of each layer, L / failure
    input_norm: float                  # B~ = sqrt(B^2 + 1) (bias-augmented inputs)
    product_of_norms: float            # prod_l ||A~^l||_2
    sum_of_ratios: float               # sum_l lambda b_l(d) / ||A~^l||_2
    expected_bounds: tuple[float, ...]  # b_l(d) >= E||Delta^l||_2
    delta_bounds: tuple[float, ...]     # lambda b_l(d)
    condition_holds: bool              # lambda b_l(d) <= ||A~^l||_2 / L for every l


class ProvableChain:
    """The provable version of the needed margin: no measured ||Delta^l||, no Gamma.

    The authors evaluate the perturbation bound with the *measured* spectral norms of
    the pruning errors (:func:`needed_margin`). The argument the paper states bounds them
    instead: under the Gaussian assumption E||Delta^l||_2 <= b_l(d)
    (:func:`prunebounds.random_matrices.provable_error_norm_bound`: the smaller of the
    symmetric Bandeira-van Handel bound and the Frobenius bound, with the layer's
    Psi_l), Markov's inequality gives ||Delta^l||_2 <= lambda b_l(d) with probability
    >= 1 - 1/lambda, and a union bound over the L layers with lambda = L / failure
    makes all hold at once with probability >= 1 - failure
    (:func:`prunebounds.random_matrices.markov_factor`). Lemma (P) then bounds the change
    of every output. Biases are handled by augmentation (:func:`augmented_weights`,
    B~ = sqrt(B^2 + 1); pruning leaves biases alone, so ||Delta~^l|| = ||Delta^l||), and
    the authors' unexplained factors Gamma_l are left out. The hypothesis of (P),
    lambda b_l(d) <= ||A~^l||_2 / L, is reported in ``condition_holds``.

    Args:
        model: the trained network (its weights give ||A~^l||_2, the shapes and Psi_l).
        input_norm: B = max ||x||_2 over the training inputs (not yet augmented).
        failure: total failure probability in (0, 1).
    """

    def __init__(self, model: nn.Module, input_norm: float, *, failure: float = 0.1) -> None:
        self.failure = check_real("failure", failure, minimum=0.0, maximum=1.0)
        if not 0.0 < self.failure < 1.0:
            raise ParameterError(f"failure must be strictly between 0 and 1, got {failure}")
        weights = _weights(model, "model")
        self.shapes = [tuple(w.shape) for w in weights]
        self.psis = [weight_variance(w) for w in weights]
        self.augmented_norms = _norms(augmented_weights(model))
        b = check_real("input_norm", input_norm, minimum=0.0)
        self.input_norm = math.sqrt(b * b + 1.0)
        # Markov per layer with failure / L each (markov_factor(1 - failure / L)): lambda = L / failure
        self.lam = markov_factor(1.0 - self.failure / len(weights))

    def margin(self, d: float) -> ProvableMargin:
        """The provable needed margin at pruning parameter ``d`` (a :class:`ProvableMargin`)."""
        d = check_real("d", d, minimum=0.0)
        L = len(self.shapes)
        expected = [provable_error_norm_bound(sh[0], sh[1], d, psi)
                    for sh, psi in zip(self.shapes, self.psis)]
        bounds = [self.lam * b for b in expected]
        prod_norms = math.prod(self.augmented_norms)
        ratios = sum(b / a for b, a in zip(bounds, self.augmented_norms))
        return ProvableMargin(
            value=float(math.e * self.input_norm * prod_norms * ratios), d=float(d),
            failure=self.failure, lam=float(self.lam), input_norm=float(self.input_norm),
            product_of_norms=float(prod_norms), sum_of_ratios=float(ratios),
            expected_bounds=tuple(float(b) for b in expected),
            delta_bounds=tuple(float(b) for b in bounds),
            condition_holds=all(b <= a / L for b, a in zip(bounds, self.augmented_norms)))

    def certified_d(self, margin: float, d_max: float = 10.0, rel_tol: float = 1e-6) -> float:
        """The largest d in [0, d_max] whose provable margin fits: value <= ``margin`` and
        the condition of (P) holds. Bisection in d: b_l(d) grows with d (through
        E Delta^2 = Psi (d/(d+2))^{3/2}), so both tests fail from some d on. Returns 0.0
        when ``margin`` <= 0 and ``d_max`` when even d_max fits."""
        margin = check_real("margin", margin)
        d_max = check_real("d_max", d_max, minimum=0.0)
        rel_tol = check_real("rel_tol", rel_tol, minimum=1e-12)

        def fits(d: float) -> bool:
            m = self.margin(d)
            return m.value <= margin and m.condition_holds

        if margin <= 0.0 or d_max == 0.0:
            return 0.0
        if fits(d_max):
            return d_max
        lo, hi = 0.0, d_max
        while hi - lo > rel_tol * hi:
            mid = math.sqrt(lo * hi) if lo > 0 else hi / 16.0
            if mid <= 1e-300:
                break
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return float(lo)


def provable_needed_margin(model: nn.Module, d: float, input_norm: float, *,
                           failure: float = 0.1) -> ProvableMargin:
    """``ProvableChain(model, input_norm, failure=failure).margin(d)``: Lemma 4.1's
    random-matrix bound with Markov's lambda in place of the measured ||Delta^l||,
    through Lemma (P) on the bias-augmented network (see :class:`ProvableChain`)."""
    return ProvableChain(model, input_norm, failure=failure).margin(d)


def output_change_from_logits(reference_logits: torch.Tensor, logits_g: torch.Tensor,
                              y: torch.Tensor) -> OutputChange:
    """:func:`output_change` from outputs already computed: ``reference_logits`` of the
    original network and ``logits_g`` of the compressed one on the same samples (labels
    ``y``), when a chapter needs the compressed network's outputs for other measurements
    too (its margins, for example) and should not run it twice."""
    if reference_logits.ndim != 2 or reference_logits.shape != logits_g.shape or \
            len(y) != len(reference_logits) or len(y) == 0:
        raise ParameterError(
            f"need two non-empty (samples x classes) outputs of one shape and one label per "
            f"sample, got {tuple(reference_logits.shape)}, {tuple(logits_g.shape)} and "
            f"{len(y)} labels")
    return _change_from_logits(reference_logits.to(torch.float64), logits_g, y)
