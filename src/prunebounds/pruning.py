"""Magnitude-based pruning: the authors' Gaussian rule and the deterministic baselines.

The rule of Guha, Dubey & Huo (arXiv 2305.18789), as implemented in the authors' code
(``EtashGuha/compression_bounds_arxiv``, function ``get_mask``): for a weight matrix W
with variance Psi and a pruning parameter d >= 0, each entry is **dropped**
independently with probability

    P(drop W_ij) = exp( -W_ij^2 / (d Psi) ),                                   (R)

and kept entries are **not** rescaled. Large weights are almost surely kept, larger d
prunes more, and d = 0 keeps everything. Biases are never pruned.

Under the paper's assumption that the entries of W are i.i.d. N(0, Psi), every
quantity of the rule is a Gaussian integral; the expected kept fraction chi(d) and its
inverse (:func:`expected_keep_fraction`, :func:`d_for_keep`) live here and nowhere else. The one identity used throughout is, for
W ~ N(0, Psi) and s^2 = Psi d / (d + 2) (the variance of the "tilted" Gaussian),

    E[ g(W) exp(-W^2/(d Psi)) ] = sqrt(d/(d+2)) * E[ g(s Z) ],   Z ~ N(0, 1),    (G)

because phi_Psi(w) exp(-w^2/(d Psi)) = sqrt(s^2/Psi) phi_{s^2}(w) (complete the square:
1/(2 Psi) + 1/(d Psi) = (d + 2)/(2 d Psi) = 1/(2 s^2)). With g = 1, w^2, w^4, |w|^p it
gives the expected kept fraction and the moments of the pruning error below.

Besides the paper's rule the module provides the baselines a reviewer asked for:
deterministic smallest-magnitude pruning per layer or globally, random pruning, and
magnitude pruning "at the same sparsity per layer" as a given paper-pruned network.
Every ``prune_*`` function returns a pruned deep copy (the original is untouched) with
the masks made permanent by :func:`torch.nn.utils.prune.remove`.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.special import gammainc, gammaln, ndtri
from torch import nn
from torch.nn.utils import prune

from .errors import ParameterError
from .models import linear_layers
from .validate import check_choice, check_int, check_real

__all__ = [
    "expected_keep_fraction",
    "d_for_keep",
    "keep_probability",
    "drop_threshold",
    "error_second_moment",
    "error_fourth_moment",
    "error_abs_moment",
    "error_lp_norm",
    "weight_variance",
    "GaussianMagnitudePruning",
    "gaussian_magnitude_unstructured",
    "prune_paper",
    "paper_rule_sweep",
    "prune_magnitude",
    "prune_random",
    "prune_like",
    "kept_fractions",
    "threshold_for_keep",
    "threshold_error_abs_moment",
    "threshold_error_lp_norm",
    "prune_threshold_matrix",
]


# --------------------------------------------------------------------------- helpers
def _nonnegative(name: str, x: Any):
    """``x`` checked to be finite and >= 0: a float, a float64 array or a float tensor."""
    if isinstance(x, torch.Tensor):
        t = x if x.is_floating_point() else x.to(torch.float64)
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ParameterError(f"{name} must be finite and >= 0 (got a tensor with "
                                 f"min {float(t.min()) if t.numel() else 'n/a'})")
        return t
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return check_real(name, x, minimum=0.0)
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a number, array or tensor, got {x!r}") from exc
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ParameterError(f"{name} must be finite and >= 0, got {x!r}")
    return float(a) if a.ndim == 0 else a


def _ratio(d):
    """d / (d + 2), the factor of every moment of the rule (0 at d = 0)."""
    return d / (d + 2.0)


# --------------------------------------------------------------------------- formulas
def expected_keep_fraction(d):
    """Expected fraction of kept weights, chi(d) = 1 - sqrt(d / (d + 2)).

    Implements the kept fraction of the paper's rule (R) under the Gaussian assumption
    (paper, Section 4; brief "The pruning rule"). Derivation: with W ~ N(0, Psi), by (G)
    with g = 1, P(drop) = E exp(-W^2/(d Psi)) = (1 + 2/d)^{-1/2} = sqrt(d/(d+2)); the
    kept fraction is one minus that. It does not depend on Psi. chi(0) = 1,
    chi(1) = 1 - 1/sqrt(3) = 0.4226, chi(10) = 0.0871, chi(d) ~ 1/d for large d.

    Args:
        d: pruning parameter(s) >= 0; a float, numpy array or torch tensor.

    Returns:
        chi(d) of the same kind (a Python float for a scalar).

    Raises:
        ParameterError: if some d is negative or not finite.
    """
    d = _nonnegative("d", d)
    return 1.0 - _ratio(d) ** 0.5


def d_for_keep(keep: float) -> float:
    """The inverse of chi: the d with chi(d) = ``keep`` (:func:`expected_keep_fraction`).

    Inverts chi(d) = 1 - sqrt(d/(d+2)): with s = (1 - keep)^2 = d/(d+2),
    d = 2 s / (1 - s). keep = 1 gives d = 0 (nothing pruned); keep = 0.8 (one round at
    20% of iterative pruning) gives d = 1/12 = 0.0833. Raises for keep = 0 (no finite d
    prunes everything).
    """
    c = check_real("keep", keep, minimum=0.0, maximum=1.0)
    if c == 0.0:
        raise ParameterError("keep must be > 0: no finite d prunes every weight")
    s = (1.0 - c) ** 2
    return 2.0 * s / (1.0 - s)


def keep_probability(w, d: float, psi: float):
    """Probability that the rule keeps a weight of value w: 1 - exp(-w^2 / (d Psi)).

    The complement of the drop probability (R) of the authors' code (``get_mask``:
    ``1 - exp(-w^2/(alpha psi))`` is the Bernoulli parameter of the keep mask). Computed
    as ``-expm1(-w^2/(d psi))`` for accuracy at small weights. By convention d = 0
    (and psi = 0, a constant matrix) keeps everything, the limit d -> 0+ for w != 0.

    Args:
        w: weight value(s): float, numpy array or torch tensor.
        d: pruning parameter >= 0.
        psi: the layer's weight variance Psi >= 0.

    Returns:
        keep probabilities of the same kind and shape as ``w``.
    """
    d = check_real("d", d, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    if isinstance(w, torch.Tensor):
        w = w if w.is_floating_point() else w.to(torch.float64)
        if d == 0.0 or psi == 0.0:
            return torch.ones_like(w)
        return -torch.expm1(-(w * w) / (d * psi))
    arr = np.asarray(w, dtype=np.float64)
    out = np.ones_like(arr) if d == 0.0 or psi == 0.0 else -np.expm1(-(arr * arr) / (d * psi))
    return float(out) if out.ndim == 0 else out


def error_second_moment(d, psi):
    """E[Delta_ij^2] = Psi (d/(d+2))^{3/2} for the pruning error Delta = W - W_hat.

    Implements the variance of the pruning error under the Gaussian assumption (brief,
    "The pruning rule"; used in the paper's Lemma 4.1, reconstructed). Derivation:
    Delta_ij = W_ij 1[dropped], so E[Delta^2 | W] = W^2 exp(-W^2/(d Psi)); by (G) with
    g = w^2, E[Delta^2] = sqrt(d/(d+2)) s^2 with s^2 = Psi d/(d+2), i.e.
    Psi (d/(d+2))^{3/2}. Delta is symmetric (W is, and the drop probability depends on
    W^2 only), hence mean zero, and its entries are independent when those of W are.

    Args:
        d: pruning parameter(s) >= 0 (float, array or tensor).
        psi: weight variance(s) >= 0.
    """
    d = _nonnegative("d", d)
    psi = _nonnegative("psi", psi)
    return psi * _ratio(d) ** 1.5


def error_fourth_moment(d, psi):
    """E[Delta_ij^4] = 3 Psi^2 (d/(d+2))^{5/2} for the pruning error Delta = W - W_hat.

    Derivation as in :func:`error_second_moment` with g = w^4 in (G):
    E[Delta^4] = sqrt(d/(d+2)) * 3 s^4 = 3 Psi^2 (d/(d+2))^{5/2}. This is the moment
    that enters Latala's bound in the paper's Lemma 4.1 (reconstructed).
    """
    d = _nonnegative("d", d)
    psi = _nonnegative("psi", psi)
    return 3.0 * psi ** 2 * _ratio(d) ** 2.5


def error_abs_moment(d: float, psi: float, p: float) -> float:
    """E|Delta_ij|^p = Psi^{p/2} (d/(d+2))^{(p+1)/2} 2^{p/2} Gamma((p+1)/2) / sqrt(pi).

    The p-th absolute moment of the pruning error, from (G) with g = |w|^p and
    E|Z|^p = 2^{p/2} Gamma((p+1)/2)/sqrt(pi); p = 2 and p = 4 give
    :func:`error_second_moment` and :func:`error_fourth_moment`. The high moments
    (p of order log n) enter the Bandeira-van Handel bound for non-Gaussian symmetric
    entries (:func:`prunebounds.random_matrices.bandeira_van_handel_bound`).
    Computed in logarithms, so large p does not overflow.
    """
    d = check_real("d", d, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    p = check_real("p", p, minimum=0.0)
    if p == 0.0:
        return 1.0
    if d == 0.0 or psi == 0.0:
        return 0.0
    log_m = (0.5 * p * math.log(psi) + 0.5 * (p + 1.0) * math.log(_ratio(d))
             + 0.5 * p * math.log(2.0) + gammaln(0.5 * (p + 1.0)) - 0.5 * math.log(math.pi))
    return float(math.exp(log_m))


def error_lp_norm(d: float, psi: float, p: float) -> float:
    """||Delta_ij||_p = (E|Delta_ij|^p)^{1/p}, the L^p norm of one entry of the pruning error.

    :func:`error_abs_moment` to the power 1/p, computed in logarithms so that it stays
    finite for the large p (p ~ 2 alpha log(n + m), several hundred for big matrices)
    of the Bandeira-van Handel bound for symmetric entries, where the moment itself
    overflows a float. For p >= 1 it grows like sqrt(p): Delta is sub-Gaussian.
    """
    d = check_real("d", d, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    p = check_real("p", p, minimum=1.0)
    if d == 0.0 or psi == 0.0:
        return 0.0
    log_m = (0.5 * p * math.log(psi) + 0.5 * (p + 1.0) * math.log(_ratio(d))
             + 0.5 * p * math.log(2.0) + gammaln(0.5 * (p + 1.0)) - 0.5 * math.log(math.pi))
    return float(math.exp(log_m / p))


def drop_threshold(w: torch.Tensor, psi: float, u: torch.Tensor) -> torch.Tensor:
    """The pruning parameter from which the rule (R) drops each weight, given its uniform.

    The rule keeps w when u < 1 - exp(-w^2/(d Psi)) for a uniform u on [0, 1). For
    d > 0 this is the same event as d < w^2 / (Psi E) with E = -log(1 - u), an
    Exp(1) variable: every weight carries a random threshold, and the mask at d keeps
    the weights whose threshold exceeds d. So, with the uniforms fixed, masks are
    nested in d, and P(threshold > d) = P(E < w^2/(d Psi)) = 1 - exp(-w^2/(d Psi)),
    the keep probability (:func:`keep_probability`, tested by Monte Carlo). A zero
    weight gets threshold 0 (or NaN when u = 0), so no d > 0 keeps it.

    Args:
        w: weights (float64 tensor); psi: the layer's variance Psi > 0; u: uniforms
            of the same shape.
    """
    return (w * w) / (psi * -torch.log1p(-u))


def weight_variance(W: torch.Tensor) -> float:
    """Psi = population variance (``unbiased=False``, like the authors' ``np.var``)."""
    return float(W.detach().to(torch.float64).var(unbiased=False))


# --------------------------------------------------------------------------- the rule as a torch pruning method
class GaussianMagnitudePruning(prune.BasePruningMethod):
    """The paper's randomized magnitude pruning (R) as a ``torch.nn.utils.prune`` method.

    Each currently unmasked entry w is kept with probability 1 - exp(-w^2/(d Psi)),
    independently, with uniforms drawn from ``generator`` (so a seed fixes the mask).
    The uniforms are drawn in float64 where the generator lives (the package's
    generators are CPU generators) and moved to the tensor's device, so a seed gives
    the same mask on every device.
    The draw is made through :func:`drop_threshold`: w is kept when d is below its
    random threshold, which is the same event and makes the masks of one seed nested
    in d.

    Choice of Psi: the population variance (``unbiased=False``) of the **currently
    unmasked** entries of the tensor. On a fresh tensor this is the variance of all
    entries, exactly what the authors' code uses (``np.var`` of the whole layer). When
    the method is applied to an already pruned tensor (iterative pruning), the zeros
    left by earlier rounds are ignored, so Psi is the variance of the surviving weights;
    including them would shrink Psi and make each round prune more.

    Args:
        d: pruning parameter >= 0 (0 keeps everything).
        generator: source of the Bernoulli draws; ``None`` uses torch's global RNG.
        keep_diagonal: keep the entries w_ii whatever their size, as the paper's
            Algorithm 1 reportedly does (the authors' code prunes them like the rest).
            The uniforms are drawn for every entry either way, so with the same
            generator state the two masks differ on the diagonal only.
    """

    PRUNING_TYPE = "unstructured"

    def __init__(self, d: float, generator: torch.Generator | None = None,
                 keep_diagonal: bool = False) -> None:
        self.d = check_real("d", d, minimum=0.0)
        self.generator = generator
        self.keep_diagonal = bool(keep_diagonal)

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        mask = default_mask.clone(memory_format=torch.contiguous_format)
        alive = default_mask.bool()
        if self.d == 0.0 or not bool(alive.any()):
            return mask
        values = t.detach().to(torch.float64)
        psi = float(values[alive].var(unbiased=False))
        device = self.generator.device if self.generator is not None else values.device
        u = torch.rand(t.shape, generator=self.generator, dtype=torch.float64, device=device)
        if psi == 0.0:     # a constant tensor: keep_probability keeps everything
            return mask
        keep = drop_threshold(values, psi, u.to(values.device)) > self.d
        if self.keep_diagonal and t.dim() == 2:
            keep.diagonal().fill_(True)
        return mask * keep.to(device=mask.device, dtype=mask.dtype)

    @classmethod
    def apply(cls, module: nn.Module, name: str, d: float,  # type: ignore[override]
              generator: torch.Generator | None = None, keep_diagonal: bool = False):
        """Prune ``module.<name>`` in place (reparametrized as ``name_orig * name_mask``)."""
        return super().apply(module, name, d=d, generator=generator,
                             keep_diagonal=keep_diagonal)


def gaussian_magnitude_unstructured(module: nn.Module, name: str, d: float,
                                    generator: torch.Generator | None = None) -> nn.Module:
    """Functional form of :class:`GaussianMagnitudePruning`, like ``prune.l1_unstructured``."""
    GaussianMagnitudePruning.apply(module, name, d=d, generator=generator)
    return module


# --------------------------------------------------------------------------- pruned copies of a model
def _layers(model: nn.Module) -> list[nn.Linear]:
    layers = linear_layers(model)
    if not layers:
        raise ParameterError("the model has no nn.Linear layers to prune")
    return layers


def _fraction(name: str, value: Any) -> float:
    return check_real(name, value, minimum=0.0, maximum=1.0)


def _per_layer(fractions_pruned: Any, n_layers: int) -> list[float]:
    """One fraction in [0, 1] per layer, from a single number or a list of n_layers."""
    if isinstance(fractions_pruned, numbers.Real) and not isinstance(fractions_pruned, bool):
        return [_fraction("fractions_pruned", fractions_pruned)] * n_layers
    if isinstance(fractions_pruned, (str, bytes)) or not isinstance(fractions_pruned, Sequence):
        raise ParameterError(
            "fractions_pruned must be a number in [0, 1] or a list of one such number "
            f"per linear layer ({n_layers}), got {fractions_pruned!r}")
    fracs = list(fractions_pruned)
    if len(fracs) != n_layers:
        raise ParameterError(f"fractions_pruned has {len(fracs)} entries but the model "
                             f"has {n_layers} linear layers; give one fraction per layer")
    return [_fraction(f"fractions_pruned[{i}]", f) for i, f in enumerate(fracs)]


def _make_permanent(layers: Sequence[nn.Linear]) -> None:
    for layer in layers:
        prune.remove(layer, "weight")


def prune_paper(model: nn.Module, d: float, seed: int, *,
                keep_diagonal: bool = False) -> nn.Module:
    """A copy of ``model`` pruned by the paper's rule (R) with parameter d.

    Every linear layer's weight is pruned by :class:`GaussianMagnitudePruning` with its
    own Psi (the layer's weight variance); biases are never pruned. One generator seeded
    with ``seed`` draws the masks of all layers in forward order, so the result is
    reproducible. d = 0 returns an unpruned copy. ``keep_diagonal`` keeps every w_ii
    (Algorithm 1 as reported; same draws, so the masks differ on the diagonals only).
    """
    d = check_real("d", d, minimum=0.0)
    seed = check_int("seed", seed, minimum=0)
    pruned = copy.deepcopy(model)
    layers = _layers(pruned)
    generator = torch.Generator().manual_seed(seed)
    for layer in layers:
        GaussianMagnitudePruning.apply(layer, "weight", d=d, generator=generator,
                                       keep_diagonal=keep_diagonal)
    _make_permanent(layers)
    return pruned


def paper_rule_sweep(model: nn.Module, ds: Sequence[float], seed: int):
    """For each d in ``ds``: d and the weight matrices of ``prune_paper(model, d, seed)``.

    The masks of one seed are nested in d: :func:`prune_paper` draws the same uniforms
    u_ij for every d and keeps w_ij when u_ij < 1 - exp(-w_ij^2/(d Psi)). A sweep can
    therefore draw the uniforms once, in the same order from the same generator, and
    only recompare them at each d; no model is copied. The matrices yielded are equal,
    entry for entry, to ``weight_matrices(prune_paper(model, d, seed))`` (tested).

    Yields:
        (d, [A_hat^1, ..., A_hat^L]) with the weights' dtype, out x in.
    """
    seed = check_int("seed", seed, minimum=0)
    layers = _layers(model)
    weights = [layer.weight.detach() for layer in layers]
    values = [w.to(torch.float64) for w in weights]
    # Psi exactly as GaussianMagnitudePruning.compute_mask computes it (same reduction)
    psis = [float(v[torch.ones_like(v, dtype=torch.bool)].var(unbiased=False)) for v in values]
    generator = torch.Generator().manual_seed(seed)   # on the CPU: the same masks everywhere
    uniforms = [torch.rand(w.shape, generator=generator, dtype=torch.float64).to(w.device)
                for w in weights]
    # the mask at d keeps the weights whose drop threshold exceeds d (drop_threshold)
    thresholds = [drop_threshold(v, psi, u) if psi > 0.0 else None
                  for v, psi, u in zip(values, psis, uniforms)]
    zero = torch.zeros((), dtype=weights[0].dtype, device=weights[0].device)
    for d in ds:
        d = check_real("d", d, minimum=0.0)
        if d == 0.0:
            yield d, [w.clone() for w in weights]
            continue
        yield d, [w.clone() if thr is None else torch.where(thr > d, w, zero)
                  for w, thr in zip(weights, thresholds)]


def prune_magnitude(model: nn.Module, fractions_pruned: float | Sequence[float],
                    scope: str = "layer") -> nn.Module:
    """A copy of ``model`` with the smallest-magnitude weights set to zero (deterministic).

    The practitioner's magnitude pruning (Han et al. 2015) that a reviewer asked to
    compare with the paper's Bernoulli rule. ``scope="layer"`` prunes the given fraction
    of each layer (one number for all layers, or one per layer) with
    ``prune.l1_unstructured``; ``scope="global"`` prunes one fraction of all weights
    together with ``prune.global_unstructured`` (one threshold for the whole network).
    The number pruned in a layer is round(fraction * size). Biases are never pruned.
    """
    scope = check_choice("scope", scope, ("layer", "global"))
    pruned = copy.deepcopy(model)
    layers = _layers(pruned)
    if scope == "global":
        if not isinstance(fractions_pruned, numbers.Real) or isinstance(fractions_pruned, bool):
            raise ParameterError("scope='global' takes one fraction in [0, 1] for the whole "
                                 f"network, got {fractions_pruned!r}")
        amount = _fraction("fractions_pruned", fractions_pruned)
        prune.global_unstructured([(layer, "weight") for layer in layers],
                                  pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for layer, f in zip(layers, _per_layer(fractions_pruned, len(layers))):
            prune.l1_unstructured(layer, "weight", amount=f)
    _make_permanent(layers)
    return pruned


def prune_random(model: nn.Module, fractions_pruned: float | Sequence[float],
                 seed: int) -> nn.Module:
    """A copy of ``model`` with a uniformly random subset of each layer's weights zeroed.

    Same law as ``prune.random_unstructured`` (exactly round(fraction * size) entries
    of each layer, chosen uniformly), but the random scores come from a private
    generator seeded with ``seed``, so torch's global RNG is left untouched. Biases are
    never pruned.
    """
    seed = check_int("seed", seed, minimum=0)
    pruned = copy.deepcopy(model)
    layers = _layers(pruned)
    generator = torch.Generator().manual_seed(seed)
    for layer, f in zip(layers, _per_layer(fractions_pruned, len(layers))):
        scores = torch.rand(layer.weight.shape, generator=generator).to(layer.weight.device)
        prune.l1_unstructured(layer, "weight", amount=f, importance_scores=scores)
    _make_permanent(layers)
    return pruned


def prune_like(model: nn.Module, reference_pruned: nn.Module) -> nn.Module:
    """Deterministic magnitude pruning of ``model`` at the sparsity of ``reference_pruned``.

    For each layer, counts the zero weights of the reference (e.g. a paper-pruned copy
    from :func:`prune_paper`) and zeroes exactly that many smallest-magnitude weights of
    ``model`` (``prune.l1_unstructured`` with an integer amount). So both networks have
    the same number of non-zeros per layer, and only the choice of which weights differs:
    the comparison "Bernoulli rule vs top-k at equal sparsity".
    """
    layers_ref = _layers(reference_pruned)
    pruned = copy.deepcopy(model)
    layers = _layers(pruned)
    if len(layers) != len(layers_ref):
        raise ParameterError(f"the reference has {len(layers_ref)} linear layers, the model "
                             f"{len(layers)}; they must have the same architecture")
    for i, (layer, ref) in enumerate(zip(layers, layers_ref), start=1):
        if layer.weight.shape != ref.weight.shape:
            raise ParameterError(f"layer {i}: model weight is {tuple(layer.weight.shape)} but "
                                 f"the reference's is {tuple(ref.weight.shape)}")
        n_zero = int(ref.weight.numel() - torch.count_nonzero(ref.weight.detach()))
        prune.l1_unstructured(layer, "weight", amount=n_zero)
    _make_permanent(layers)
    return pruned


def kept_fractions(model: nn.Module) -> list[float]:
    """Per linear layer, the fraction of weight entries that are non-zero."""
    return [float(torch.count_nonzero(layer.weight.detach())) / layer.weight.numel()
            for layer in _layers(model)]


# --------------------------------------------------------------------------- deterministic threshold pruning
def threshold_for_keep(keep: float) -> float:
    """The standardized threshold tau with P(|Z| >= tau) = ``keep``, Z ~ N(0, 1).

    Deterministic magnitude pruning at a fixed threshold t = tau sqrt(Psi) removes every
    weight with |W_ij| < t. Under the paper's Gaussian assumption it keeps the fraction
    P(|W| >= t) = 2 (1 - Phi(tau)); so tau = Phi^{-1}(1 - keep/2) prunes to the same
    expected sparsity as the paper's rule at d when keep = chi(d)
    (:func:`expected_keep_fraction`). keep = 1 gives tau = 0 (nothing pruned).
    """
    c = check_real("keep", keep, minimum=0.0, maximum=1.0)
    if c == 0.0:
        raise ParameterError("keep must be > 0: no finite threshold prunes every weight")
    return float(max(ndtri(1.0 - 0.5 * c), 0.0))


def _threshold_log_moment(tau: float, psi: float, p: float) -> float:
    """log E|W 1{|W| < tau sqrt(psi)}|^p for W ~ N(0, psi) (p > 0, tau > 0, psi > 0)."""
    # E|Z|^p 1{|Z| < tau} = 2^{p/2} Gamma((p+1)/2) / sqrt(pi) * P((p+1)/2, tau^2/2),
    # P the regularized lower incomplete gamma function (substitute u = z^2/2).
    a, x = 0.5 * (p + 1.0), 0.5 * tau * tau
    return (0.5 * p * math.log(psi) + 0.5 * p * math.log(2.0) + gammaln(a)
            - 0.5 * math.log(math.pi) + _log_gammainc(a, x))


def _log_gammainc(a: float, x: float) -> float:
    """log P(a, x), the regularized lower incomplete gamma function, without underflow.

    For x < a + 1 by its series P(a, x) = x^a e^{-x} / Gamma(a + 1) *
    sum_k x^k / ((a+1)...(a+k)) (Abramowitz & Stegun 6.5.29), summed in logarithms, so
    that the tiny values of large a (the high moments of a truncated Gaussian) stay
    finite; otherwise ``scipy.special.gammainc`` directly.
    """
    if x <= 0.0:
        return -math.inf
    if x >= a + 1.0:
        return math.log(float(gammainc(a, x)))
    term, total, k = 1.0, 1.0, 0
    while term > 1e-17 * total:
        k += 1
        term *= x / (a + k)
        total += term
    return a * math.log(x) - x - gammaln(a + 1.0) + math.log(total)


def threshold_error_abs_moment(tau: float, psi: float, p: float) -> float:
    """E|Delta_ij|^p for deterministic pruning at the fixed threshold t = tau sqrt(Psi).

    With W_ij ~ N(0, Psi) i.i.d. (the paper's assumption) and Delta_ij = W_ij 1{|W_ij| < t},
    the entries of Delta are independent (each is a function of its own W_ij), symmetric
    (the indicator depends on |W_ij| only) and hence mean zero: the hypotheses of
    Latala's and Bandeira-van Handel's bounds hold exactly as for the random rule (R).
    Their moments are truncated Gaussian moments,

        E|Delta|^p = Psi^{p/2} 2^{p/2} Gamma((p+1)/2) / sqrt(pi) * P((p+1)/2, tau^2/2),

    P the regularized lower incomplete gamma function (``scipy.special.gammainc``);
    p = 0 gives P(|Z| < tau), the pruned fraction, p = 2 gives
    Psi (2 Phi(tau) - 1 - 2 tau phi(tau)). Every entry is bounded by t, so
    E|Delta|^p <= t^p. Computed in logarithms.
    """
    tau = check_real("tau", tau, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    p = check_real("p", p, minimum=0.0)
    if p == 0.0:
        return float(math.erf(tau / math.sqrt(2.0)))
    if tau == 0.0 or psi == 0.0:
        return 0.0
    return float(math.exp(_threshold_log_moment(tau, psi, p)))


def threshold_error_lp_norm(tau: float, psi: float, p: float) -> float:
    """||Delta_ij||_p = (E|Delta_ij|^p)^{1/p} for pruning at the fixed threshold tau sqrt(Psi).

    :func:`threshold_error_abs_moment` to the power 1/p, in logarithms (finite for the
    large p of the Bandeira-van Handel bound); it never exceeds the threshold t and
    tends to it as p grows.
    """
    tau = check_real("tau", tau, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    p = check_real("p", p, minimum=1.0)
    if tau == 0.0 or psi == 0.0:
        return 0.0
    return float(math.exp(_threshold_log_moment(tau, psi, p) / p))


def prune_threshold_matrix(W: torch.Tensor, keep: float, *, psi: float | None = None,
                           quantile: bool = False) -> torch.Tensor:
    """Deterministic magnitude pruning of one matrix: entries with |W_ij| < t set to zero.

    ``quantile=False``: the fixed threshold t = tau sqrt(Psi) with tau =
    :func:`threshold_for_keep` (``keep``) and Psi = ``psi`` (default: the population
    variance of W); under the Gaussian model the entries of the error W - W_hat are
    then independent. ``quantile=True``: the data-dependent threshold of practice,
    keeping exactly round(keep * size) largest-magnitude entries (the per-layer
    quantile of ``prune.l1_unstructured``); the entries of the error are then weakly
    coupled through the threshold. Returns the pruned copy (same device and dtype).
    """
    keep = check_real("keep", keep, minimum=0.0, maximum=1.0)
    if quantile:
        n_keep = int(round(keep * W.numel()))
        if n_keep == 0:
            return torch.zeros_like(W)
        if n_keep == W.numel():
            return W.clone()
        t = torch.topk(W.abs().flatten(), n_keep).values[-1]
        return torch.where(W.abs() >= t, W, torch.zeros_like(W))
    psi = float(W.detach().to(torch.float64).var(unbiased=False)) if psi is None else \
        check_real("psi", psi, minimum=0.0)
    t = threshold_for_keep(keep) * math.sqrt(psi) if keep > 0 else math.inf
    return torch.where(W.abs() >= t, W, torch.zeros_like(W))
