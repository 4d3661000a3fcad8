"""Discretization of weights to a grid: the "r values per parameter" of Arora et al. (2018).

The compression theorem of Arora, Ge, Neyshabur & Zhang (ICML 2018, Theorem 2.1) counts
the compressed network's parameters, q, each taking at most r discrete values, and
pays O(sqrt(q log r / m)). To make r finite the compressed weights are rounded to a
grid of spacing rho; the rounding error must then also fit inside the margin (brief,
"Arora et al. 2018"; the paper's Theorem 5.2, reconstructed, adds it to the pruning
error). This module rounds to the grid {k rho : k integer}, chooses rho from a bit
budget, counts the values r and measures the rounding error's spectral norm, which
enters the perturbation bound exactly as a pruning error does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from .errors import ParameterError
from .models import linear_layers
from .perturbation import perturbation_bound
from .validate import check_int, check_real
from .norms import spectral_norm

__all__ = [
    "round_to_grid",
    "grid_spacing_for_bits",
    "count_levels",
    "log_levels",
    "rounding_error_spectral",
    "discretize_model",
    "layer_grid_spacings",
    "check_bits_list",
    "RoundingErrorBounds",
    "rounding_error_bounds",
    "combined_perturbation_bound",
    "max_logit_change",
]


def _tensor(name: str, W: Any) -> torch.Tensor:
    if not isinstance(W, torch.Tensor):
        try:
            W = torch.as_tensor(W, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ParameterError(f"{name} must be a tensor or array of numbers") from exc
    if not W.is_floating_point():
        W = W.to(torch.float64)
    if not bool(torch.isfinite(W).all()):
        raise ParameterError(f"{name} must have finite entries")
    return W.detach()


def _rho(rho: float) -> float:
    rho = check_real("rho", rho, minimum=0.0)
    if rho == 0.0:
        raise ParameterError("rho (the grid spacing) must be > 0")
    return rho


def round_to_grid(W: Any, rho: float) -> torch.Tensor:
    """Each entry rounded to the nearest multiple of rho: rho * round(W / rho).

    Zeros (pruned entries) stay exactly zero, so the sparsity pattern is kept; a
    non-zero entry smaller than rho/2 in magnitude rounds to zero, which can only add
    zeros. Entrywise error <= rho/2. Ties are rounded half to even (``torch.round``).
    Returns a tensor of the input's dtype.
    """
    W = _tensor("W", W)
    rho = _rho(rho)
    out = torch.round(W / rho) * rho
    return torch.where(W == 0, torch.zeros_like(W), out)


def grid_spacing_for_bits(W: Any, bits: int) -> float:
    """rho such that the rounded non-zero entries take at most 2^bits - 1 levels (with 0).

    The grid is sign-symmetric, {k rho : |k| <= K} with K = 2^(bits-1) - 1 and
    rho = max |W_ij| / K, so that the largest weight is a grid point and every rounded
    entry is one of 2K + 1 = 2^bits - 1 values, zero included: each entry is described
    by ``bits`` bits (one code spare). For weights symmetric about zero (the Gaussian
    assumption) this spreads the levels over the kept entries' range. Needs bits >= 2;
    an all-zero W gets rho = 1 (nothing to round).
    """
    W = _tensor("W", W)
    bits = check_int("bits", bits, minimum=2)
    K = 2 ** (bits - 1) - 1
    w_max = float(W.abs().max()) if W.numel() else 0.0
    return w_max / K if w_max > 0 else 1.0


def count_levels(W_rounded: Any, rho: float) -> int:
    """r = number of distinct values of a rounded matrix, the value 0 always counted.

    Values are identified by their grid index round(W / rho), so float noise does not
    create spurious levels.
    """
    W = _tensor("W_rounded", W_rounded)
    rho = _rho(rho)
    k = torch.round(W / rho).to(torch.int64).flatten()
    return int(torch.unique(torch.cat([k, k.new_zeros(1)])).numel())


def log_levels(r: int) -> float:
    """log r (natural log), the per-parameter cost in Arora et al.'s O(sqrt(q log r / m))."""
    return math.log(check_int("r", r, minimum=1))


def rounding_error_spectral(W: Any, W_rounded: Any) -> float:
    """||W - W_rounded||_2, the rounding error's spectral norm (<= rho/2 sqrt(#non-zeros))."""
    W = _tensor("W", W)
    R = _tensor("W_rounded", W_rounded)
    if W.shape != R.shape:
        raise ParameterError(f"W {tuple(W.shape)} and W_rounded {tuple(R.shape)} differ in shape")
    return spectral_norm(W.to(torch.float64) - R.to(torch.float64))


def layer_grid_spacings(model: nn.Module, bits: int) -> list[float]:
    """The spacing rho of :func:`grid_spacing_for_bits` for each linear layer's weight."""
    return [grid_spacing_for_bits(layer.weight, bits) for layer in linear_layers(model)]


def check_bits_list(values: Any, maximum: int = 24) -> list[int]:
    """A chapter's list of bit widths, checked: integers in [2, maximum], sorted, unique.

    ``bits >= 2`` because the sign-symmetric grid of :func:`grid_spacing_for_bits` needs
    one level on each side of zero; ``maximum`` defaults to 24, the precision of a
    float32 mantissa, beyond which rounding no longer changes a float32 weight.
    """
    maximum = check_int("maximum", maximum, minimum=2)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ParameterError(f"bits must be a non-empty list of integers in [2, {maximum}], "
                             f"got {values!r}")
    out = set()
    for b in values:
        b = check_int("bits", b, minimum=2)
        if b > maximum:
            raise ParameterError(f"bits must be an integer in [2, {maximum}], got {b}")
        out.add(b)
    return sorted(out)


def discretize_model(model: nn.Module, bits: int, biases: bool = False) -> nn.Module:
    """A copy of ``model`` with every linear layer's weight rounded to its own grid.

    Each layer uses rho from :func:`grid_spacing_for_bits` (so at most 2^bits - 1 values
    per layer, zero included); zeros stay zero, so a pruned network stays equally
    sparse. By default biases are left in full precision (they are few and the paper's
    parameter count concerns the weight matrices); ``biases=True`` rounds each layer's
    bias to its own grid as well, so that *every* parameter of the copy takes one of at
    most 2^bits - 1 values, as Arora et al.'s count q log r requires. The original model
    is untouched.
    """
    bits = check_int("bits", bits, minimum=2)
    if not isinstance(biases, bool):
        raise ParameterError(f"biases must be True or False, got {biases!r}")
    out = copy.deepcopy(model)
    layers = linear_layers(out)
    if not layers:
        raise ParameterError("the model has no nn.Linear layers")
    with torch.no_grad():
        for layer in layers:
            params = [layer.weight] + ([layer.bias] if biases and layer.bias is not None else [])
            for p in params:
                rho = grid_spacing_for_bits(p, bits)
                p.copy_(round_to_grid(p, rho))
    return out


class RoundingErrorBounds(NamedTuple):
    """Deterministic bounds on ||W - round(W)||_2 for a grid of spacing rho.

    frobenius: (rho/2) sqrt(nnz), from ||E||_2 <= ||E||_F.
    schur: (rho/2) sqrt(j_r j_c), from ||E||_2 <= sqrt(||E||_1 ||E||_inf) (Schur test),
        j_r, j_c = the largest numbers of non-zeros in a row and in a column.
    rms_scale: (rho/sqrt(12)) (sqrt(j_r) + sqrt(j_c)), not a bound: the random-matrix
        scale of the error if its entries were independent and uniform on
        [-rho/2, rho/2] (a heuristic for comparison).
    """

    frobenius: float
    schur: float
    rms_scale: float


def rounding_error_bounds(W: Any, rho: float) -> RoundingErrorBounds:
    """Bounds on the spectral norm of the rounding error E = W - round_to_grid(W, rho).

    Every entry of E is at most rho/2 in magnitude and E vanishes where W does (zeros stay
    zero), so with nnz the non-zeros of W and j_r (j_c) the most non-zeros in a row
    (column):

        ||E||_2 <= ||E||_F <= (rho/2) sqrt(nnz),
        ||E||_2 <= sqrt(max_j sum_i |E_ij| * max_i sum_j |E_ij|) <= (rho/2) sqrt(j_r j_c).

    The second (Schur's test) is the smaller one for matrices whose non-zeros are spread
    over the rows and columns, as after the paper's pruning (about chi^2 d_1 d_2 against
    chi d_1 d_2). Both are deterministic; ``rms_scale`` is the heuristic random-matrix
    size of E (see :class:`RoundingErrorBounds`). Used in the discretization chapter's
    lemma on the rounding error.
    """
    W = _tensor("W", W)
    rho = _rho(rho)
    if W.ndim != 2:
        raise ParameterError(f"W must be a matrix, got shape {tuple(W.shape)}")
    nz = W != 0
    nnz = int(nz.sum())
    j_r = int(nz.sum(dim=1).max()) if W.numel() else 0
    j_c = int(nz.sum(dim=0).max()) if W.numel() else 0
    half = rho / 2.0
    return RoundingErrorBounds(
        frobenius=half * math.sqrt(nnz),
        schur=half * math.sqrt(j_r * j_c),
        rms_scale=rho / math.sqrt(12.0) * (math.sqrt(j_r) + math.sqrt(j_c)),
    )


def combined_perturbation_bound(weight_norms: Sequence[float], prune_norms: Sequence[float],
                                round_norms: Sequence[float], input_norm: float) -> float:
    """The perturbation bound (P) with pruning and rounding errors added per layer.

    The compressed layer is round(A_hat^l) = A^l - Delta_prune^l - Delta_round^l, with
    Delta_prune^l = A^l - A_hat^l and Delta_round^l = A_hat^l - round(A_hat^l). By the
    triangle inequality ||Delta_prune^l + Delta_round^l||_2 <= ||Delta_prune^l||_2 +
    ||Delta_round^l||_2, and the right side of (P) increases with each ||Delta^l||, so

        |f_A(x) - f_round(A_hat)(x)| <= e B (prod_l ||A^l||_2)
                                        sum_l (||Delta_prune^l||_2 + ||Delta_round^l||_2) / ||A^l||_2,

    valid when ||Delta_prune^l||_2 + ||Delta_round^l||_2 <= ||A^l||_2 / L for every l
    (:func:`prunebounds.perturbation.perturbation_condition_holds` on the sums).
    Equivalently: the rounding adds e B (prod ||A||) sum_l ||Delta_round^l|| / ||A^l||
    to the pruning bound. The arguments are per-layer lists of spectral norms (any
    valid upper bounds on them may be passed instead).
    """
    if isinstance(prune_norms, (str, bytes)) or isinstance(round_norms, (str, bytes)):
        raise ParameterError("prune_norms and round_norms must be lists of numbers")
    p = [check_real(f"prune_norms[{i}]", float(v), minimum=0.0) for i, v in enumerate(prune_norms)]
    r = [check_real(f"round_norms[{i}]", float(v), minimum=0.0) for i, v in enumerate(round_norms)]
    if len(p) != len(r):
        raise ParameterError(f"{len(p)} pruning norms but {len(r)} rounding norms; "
                             "give one of each per layer")
    return perturbation_bound(weight_norms, [a + b for a, b in zip(p, r)], input_norm)


def max_logit_change(f_out: torch.Tensor, g_out: torch.Tensor) -> float:
    """max over the samples and every label y of |f(x)[y] - g(x)[y]|, from the outputs.

    The quantity of Arora et al.'s (gamma, S)-compressibility (2018, Definition 1): g
    compresses f on S at margin gamma when this is <= gamma. ``f_out`` and ``g_out`` are
    the two networks' outputs on the same samples (n x classes, e.g. from
    :func:`prunebounds.margins.logits`), so that f's outputs are computed once and reused
    for every compressed g. No labels are needed: all outputs are compared. The
    difference is taken in float64.
    """
    for name, t in (("f_out", f_out), ("g_out", g_out)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or len(t) == 0:
            raise ParameterError(f"{name} must be a non-empty (samples x classes) tensor")
    if f_out.shape != g_out.shape:
        raise ParameterError(f"the outputs differ in shape: {tuple(f_out.shape)} vs "
                             f"{tuple(g_out.shape)}")
    return float((f_out.to(torch.float64) - g_out.to(torch.float64)).abs().max())
