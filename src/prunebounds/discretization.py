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
from typing import Any

import torch
from torch import nn

from .errors import ParameterError
from .models import linear_layers
from .profiles import check_int, check_real
from .random_matrices import spectral_norm

__all__ = [
    "round_to_grid",
    "grid_spacing_for_bits",
    "count_levels",
    "log_levels",
    "rounding_error_spectral",
    "discretize_model",
    "layer_grid_spacings",
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


def discretize_model(model: nn.Module, bits: int) -> nn.Module:
    """A copy of ``model`` with every linear layer's weight rounded to its own grid.

    Each layer uses rho from :func:`grid_spacing_for_bits` (so at most 2^bits - 1 values
    per layer, zero included); zeros stay zero, so a pruned network stays equally
    sparse. Biases are left in full precision (they are few and the paper's parameter
    count concerns the weight matrices). The original model is untouched.
    """
    bits = check_int("bits", bits, minimum=2)
    out = copy.deepcopy(model)
    layers = linear_layers(out)
    if not layers:
        raise ParameterError("the model has no nn.Linear layers")
    with torch.no_grad():
        for layer in layers:
            rho = grid_spacing_for_bits(layer.weight, bits)
            layer.weight.copy_(round_to_grid(layer.weight, rho))
    return out
