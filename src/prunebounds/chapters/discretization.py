"""The discretization chapter: rounding the pruned network to a grid, and what it costs.

:func:`compute` prunes the profile's main network with the paper's rule at each d, rounds
every weight matrix and bias vector of the pruned network to its own b-bit grid
(:mod:`prunebounds.discretization`), and measures, for each (d, b): the number of values
r, the spectral norms of the pruning and rounding errors and their deterministic bounds,
the change of the outputs over the training set, the perturbation bound with both errors
(:func:`prunebounds.discretization.combined_perturbation_bound`) and the test error.

Biases are handled as everywhere in the book: the network with biases is the bias-free
network of the augmented matrices [[A, b], [0, 1]] on inputs [x; 1]
(:func:`prunebounds.perturbation.augmented_weights`), so the perturbation lemma applies
with those matrices and B~ = sqrt(B^2 + 1). Pruning leaves the bias column alone;
rounding moves it, and the rounding error of a layer is measured on its augmented matrix.

The kept fraction of a pruned network is the book's one definition: kept weights divided
by all weights of the pruned layers (:func:`kept_fraction`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..bounds import compression_term, sparse_count_bound
from ..cache import cached_result, sha256
from ..claims import Claim, Value, criteria
from ..data import load
from ..devices import resolve_device
from ..errors import ParameterError
from ..discretization import (check_bits_list, combined_perturbation_bound, count_levels,
                              discretize_model, grid_spacing_for_bits, rounding_error_bounds)
from ..margins import error_rate, logits, margin_percentile, margins
from ..models import linear_layers, weight_matrices
from ..norms import max_input_norm, spectral_norm
from ..perturbation import (augmented_weights, output_change_from_logits, perturbation_bound,
                            perturbation_condition_holds)
from ..profiles import Profile
from ..pruning import prune_paper
from ..runs import RunConfig, train_cached
from ..sketching import bipartite_adjacency, default_degree
from ..validate import check_real

__all__ = ["LABEL", "REQUIRES", "BITS", "D_VALUES", "SKETCH_LAYER", "kept_fraction",
           "augmented_rounding_bounds", "check_d_values", "SketchLevels", "RoundedNetwork",
           "PrunedNetwork", "DiscretizationResult", "compute", "claims"]

LABEL = "chap-discretization"
REQUIRES = ("setting",)

#: Bit widths per profile.
BITS = {"smoke": (2, 4, 8), "quick": (2, 5, 10), "full": tuple(range(2, 17))}
#: Pruning parameters of the paper's rule (default of every profile).
D_VALUES = (1.0, 5.0)
#: The layer (1-based) whose sketches are counted.
SKETCH_LAYER = 2
#: Tolerances of the chapter's summaries: rounding adds at most 1% to the bound; the
#: rounded network's test error is within half a point of the pruned one's.
BOUND_TOL, ERROR_TOL = 0.01, 0.005


def kept_fraction(nnz: Sequence[int], sizes: Sequence[int]) -> float:
    """The book's kept fraction: kept weights / all weights of the pruned layers.

    A fraction of all weights (sum of non-zeros over sum of sizes), not an unweighted
    mean of the per-layer fractions: the small output layer counts in proportion to its
    size.
    """
    if len(nnz) != len(sizes) or not sizes or sum(sizes) <= 0:
        raise ParameterError(f"need one size per layer, got {len(nnz)} counts and {len(sizes)} sizes")
    return float(sum(nnz)) / float(sum(sizes))


def check_d_values(prune_d: Any) -> list[float]:
    """The chapter's pruning parameters: None (:data:`D_VALUES`), one number or a list,
    each >= 0; sorted, without repeats."""
    values = D_VALUES if prune_d is None else (
        prune_d if isinstance(prune_d, (list, tuple)) else [prune_d])
    # d <= 100: the smallest layer of any preset (smoke's 64 x 10) keeps 640 chi(100) = 6.3
    # weights on average; an emptied layer (d = 1000: 0.6 on average) has one level, r = 1.
    return sorted({check_real("prune_d", d, minimum=0.0, maximum=100.0) for d in values})


@dataclass(frozen=True)
class RoundingBounds:
    """Bounds on the spectral norm of one augmented rounding error (see
    :func:`augmented_rounding_bounds`)."""

    frobenius: float
    schur: float
    rms_scale: float


def augmented_rounding_bounds(W_hat: torch.Tensor, rho: float, b_hat: torch.Tensor | None,
                              rho_b: float) -> RoundingBounds:
    """Bounds on ||[E_W, e_b]||_2, the rounding error of an augmented layer [W, b].

    The weight part E_W obeys the discretization chapter's lemma
    (:func:`prunebounds.discretization.rounding_error_bounds`: (rho/2) sqrt(nnz) and
    Schur's (rho/2) sqrt(j_r j_c)); the bias column e_b has at most (rho_b/2) per entry,
    so ||e_b||_2 <= (rho_b/2) sqrt(#non-zero biases). The triangle inequality
    ||[E_W, e_b]||_2 <= ||E_W||_2 + ||e_b||_2 adds the two; the zero row below them
    changes no norm. ``rms_scale`` adds the heuristic sizes (rho/sqrt 12 per entry).
    """
    w = rounding_error_bounds(W_hat, rho)
    n_b = 0 if b_hat is None else int(torch.count_nonzero(b_hat))
    bias, bias_rms = rho_b / 2 * math.sqrt(n_b), rho_b / math.sqrt(12.0) * math.sqrt(n_b)
    return RoundingBounds(w.frobenius + bias, w.schur + bias, w.rms_scale + bias_rms)


@dataclass(frozen=True)
class SketchLevels:
    """Values of the sketch Y = A X B^T of a rounded layer X, for one sketch size k.

    n_summed: the most non-zeros of X that one entry of Y sums; level_bound: 2 K N + 1.
    """

    k: int
    n_summed: int
    levels: int
    level_bound: int


@dataclass(frozen=True)
class RoundedNetwork:
    """A pruned network with every weight and bias rounded to its own b-bit grid.

    Per layer: rho (weight grid spacing), levels (values of the rounded weights, zero
    included), nnz (non-zero rounded weights), round_norms ||~Delta_round^l||_2 of the
    augmented matrices and total_norms ||~A^l - round(~A_hat^l)||_2, and the bounds on
    round_norms. eps: max over the training set of ||f(x) - g(x)||_2; eps_round: the same
    against the unrounded pruned network; bound / bound_exact: the perturbation bound with
    the two errors' norms added (triangle) / with the exact total norm.
    """

    bits: int
    rho: tuple[float, ...]
    levels: tuple[int, ...]
    bias_levels: tuple[int, ...]
    nnz: tuple[int, ...]
    round_norms: tuple[float, ...]
    total_norms: tuple[float, ...]
    frobenius: tuple[float, ...]
    schur: tuple[float, ...]
    rms: tuple[float, ...]
    eps: float
    eps_round: float
    test_err: float
    bound: float
    bound_exact: float
    condition_holds: bool
    sketch: tuple[SketchLevels, ...]

    @property
    def r(self) -> int:
        """The most values of any rounded tensor (weights or biases)."""
        return max(self.levels + self.bias_levels)


@dataclass(frozen=True)
class PrunedNetwork:
    """The network pruned by the paper's rule at d, and its roundings."""

    d: float
    nnz: tuple[int, ...]
    kept: float
    prune_norms: tuple[float, ...]
    eps: float
    test_err: float
    bound: float
    rounded: tuple[RoundedNetwork, ...]


@dataclass(frozen=True)
class DiscretizationResult:
    """Everything the discretization chapter shows (errors are fractions; ties are errors)."""

    profile: str
    device: str
    m: int
    B: float
    B_aug: float
    margin_q: float
    gamma: float
    f_test_err: float
    weight_norms: tuple[float, ...]
    shapes: tuple[tuple[int, int], ...]
    n_biases: int
    bits: tuple[int, ...]
    pruned: tuple[PrunedNetwork, ...]

    def ratio_sums(self, p: PrunedNetwork, key: str) -> np.ndarray:
        """Per bit width, sum_l x^l / ||~A^l||_2 for x = a per-layer field of the roundings
        (``round_norms``, ``frobenius``, ``schur``, ``rms``)."""
        return np.array([sum(v / a for v, a in zip(getattr(g, key), self.weight_norms))
                         for g in p.rounded])

    def _over(self, key: str) -> float:
        return float(np.mean([self.ratio_sums(p, key) / self.ratio_sums(p, "round_norms")
                              for p in self.pruned]))

    @property
    def schur_over(self) -> float:
        """Mean of Schur's bound / the measured rounding norm (summed over layers)."""
        return self._over("schur")

    @property
    def rms_over(self) -> float:
        """Mean of the uniform-error heuristic / the measured rounding norm."""
        return self._over("rms")

    @property
    def n_bound_violations(self) -> int:
        """Layers and (d, b) where a measured rounding norm exceeds its smaller bound."""
        return sum(r > min(f, s) * (1 + 1e-9) for p in self.pruned for g in p.rounded
                   for r, f, s in zip(g.round_norms, g.frobenius, g.schur))

    @property
    def n_layer_checks(self) -> int:
        return sum(len(g.round_norms) for p in self.pruned for g in p.rounded)

    @property
    def bound_gap(self) -> float:
        """The smallest bound / measured output change over all (d, b)."""
        return min(g.bound / g.eps for p in self.pruned for g in p.rounded)

    @property
    def triangle_over(self) -> float:
        """The largest (triangle bound) / (bound with the exact total norm)."""
        return max(g.bound / g.bound_exact for p in self.pruned for g in p.rounded)

    @property
    def n_condition_holds(self) -> int:
        return sum(g.condition_holds for p in self.pruned for g in p.rounded)

    @property
    def n_pairs(self) -> int:
        return sum(len(p.rounded) for p in self.pruned)

    @staticmethod
    def bits_negligible(p: PrunedNetwork) -> int | None:
        """The fewest bits at which rounding adds at most 1% to the pruning-only bound."""
        return next((g.bits for g in p.rounded if g.bound <= (1 + BOUND_TOL) * p.bound), None)

    @staticmethod
    def bits_accurate(p: PrunedNetwork) -> int | None:
        """The fewest bits at which the rounded test error is within half a point of the
        pruned network's."""
        return next((g.bits for g in p.rounded if g.test_err <= p.test_err + ERROR_TOL), None)

    def prune_over_margin(self, p: PrunedNetwork) -> float:
        """The pruning-only bound's margin cost sqrt(2) bound over the percentile margin
        (inf when that margin is not positive)."""
        return math.sqrt(2.0) * p.bound / self.gamma if self.gamma > 0 else math.inf

    def counting_terms(self, p: PrunedNetwork) -> tuple[list[float], list[float]]:
        """Per bit width, the counting term of Arora et al.'s theorem for the rounded
        network with q = its non-zero weights and its biases, r = :attr:`RoundedNetwork.r`:
        values only, sqrt(q ln r / m), and with the positions of the weights added (the
        paper's Lemma D.1, :func:`prunebounds.bounds.sparse_count_bound`; the biases are
        one dense "layer" whose positions cost nothing)."""
        shapes = [*self.shapes, (1, self.n_biases)]
        values = [compression_term(sum(g.nnz) + self.n_biases, g.r, self.m) for g in p.rounded]
        positions = [sparse_count_bound(0.0, [*g.nnz, self.n_biases], shapes, g.r,
                                        self.m).terms["complexity"] for g in p.rounded]
        return values, positions

    @property
    def sketch_extra_nats(self) -> float:
        """The most nats a sketch entry needs beyond the layer's weights."""
        i = SKETCH_LAYER - 1
        return max(math.log(s.levels) - math.log(g.levels[i])
                   for p in self.pruned for g in p.rounded for s in g.sketch)


def _sketch_levels(X: np.ndarray, rho: float, K: int, seed: int) -> tuple[SketchLevels, ...]:
    p1, p2 = X.shape
    s1, s2 = default_degree(p1), default_degree(p2)
    p = min(p1, p2)
    out = []
    for k in sorted({max(p // 4, s1, s2), max(p // 2, s1, s2), p}):
        A = bipartite_adjacency(k, p1, s1, seed=seed)
        Bm = bipartite_adjacency(k, p2, s2, seed=seed + 1)
        Y = A @ X @ Bm.T
        N = int((A @ (X != 0).astype(float) @ Bm.T).max())
        out.append(SketchLevels(k, N, count_levels(torch.from_numpy(Y), rho), 2 * K * N + 1))
    return tuple(out)


def _norms(mats) -> tuple[float, ...]:
    return tuple(spectral_norm(M) for M in mats)


def _round(pr, bits, D, f_train, p_train, a_norms, prune_norms, B_aug, seed, sketch: bool):
    g = discretize_model(pr, bits, biases=True)
    layers_p, layers_g = linear_layers(pr), linear_layers(g)
    aug_p, aug_g = augmented_weights(pr), augmented_weights(g)
    rhos = [grid_spacing_for_bits(lp.weight, bits) for lp in layers_p]
    rho_b = [grid_spacing_for_bits(lp.bias, bits) for lp in layers_p]
    bounds = [augmented_rounding_bounds(lp.weight.detach(), r, lp.bias.detach(), rb)
              for lp, r, rb in zip(layers_p, rhos, rho_b)]
    round_norms = _norms(Mp - Mg for Mp, Mg in zip(aug_p, aug_g))
    g_train = logits(g, D.train.X)
    i = SKETCH_LAYER - 1
    return RoundedNetwork(
        bits=bits, rho=tuple(rhos),
        levels=tuple(count_levels(lg.weight.detach(), r) for lg, r in zip(layers_g, rhos)),
        bias_levels=tuple(count_levels(lg.bias.detach(), r) for lg, r in zip(layers_g, rho_b)),
        nnz=tuple(int(torch.count_nonzero(w)) for w in weight_matrices(g)),
        round_norms=round_norms, total_norms=(), frobenius=tuple(b.frobenius for b in bounds),
        schur=tuple(b.schur for b in bounds), rms=tuple(b.rms_scale for b in bounds),
        eps=output_change_from_logits(f_train, g_train, D.train.y).max_l2_change,
        eps_round=output_change_from_logits(p_train, g_train, D.train.y).max_l2_change,
        test_err=error_rate(logits(g, D.test.X), D.test.y),
        bound=combined_perturbation_bound(a_norms, prune_norms, round_norms, B_aug),
        bound_exact=math.nan,
        condition_holds=perturbation_condition_holds(
            a_norms, [p + r for p, r in zip(prune_norms, round_norms)]),
        sketch=_sketch_levels(layers_g[i].weight.detach().double().cpu().numpy(), rhos[i],
                              2 ** (bits - 1) - 1, seed) if sketch else (),
    ), aug_g


def _prune(net, d, bits, D, f_train, a_norms, aug_f, B_aug, seed, sketch_bits, bar):
    pr = prune_paper(net, d, seed=seed)
    aug_p = augmented_weights(pr)
    prune_norms = _norms(Mf - Mp for Mf, Mp in zip(aug_f, aug_p))
    p_train = logits(pr, D.train.X)
    nnz = tuple(int(torch.count_nonzero(w)) for w in weight_matrices(pr))
    rounded = []
    for b in bits:
        g, aug_g = _round(pr, b, D, f_train, p_train, a_norms, prune_norms, B_aug, seed,
                          b in sketch_bits)
        total = _norms(Mf - Mg for Mf, Mg in zip(aug_f, aug_g))
        rounded.append(dataclasses.replace(
            g, total_norms=total, bound_exact=perturbation_bound(a_norms, total, B_aug)))
        bar.update()
    return PrunedNetwork(
        d=d, nnz=nnz, kept=kept_fraction(nnz, [w.numel() for w in weight_matrices(pr)]),
        prune_norms=prune_norms,
        eps=output_change_from_logits(f_train, p_train, D.train.y).max_l2_change,
        test_err=error_rate(logits(pr, D.test.X), D.test.y),
        bound=perturbation_bound(a_norms, prune_norms, B_aug), rounded=tuple(rounded))


def _measure(P: Profile, run, bits: list[int], ds: list[float], device, progress):
    D = load(P.dataset, max_train=P.max_train).to(device)
    net = run.model.to(device)
    f_train = logits(net, D.train.X)
    aug_f = augmented_weights(net)
    a_norms = _norms(aug_f)
    B = max_input_norm(D.train.X)
    B_aug = math.sqrt(B ** 2 + 1.0)
    sketch_bits = {bits[len(bits) // 2], bits[-1]}
    with tqdm(total=len(ds) * len(bits), desc="prune and round", disable=not progress,
              leave=False) as bar:
        pruned = tuple(_prune(net, d, bits, D, f_train, a_norms, aug_f, B_aug, P.seed,
                              sketch_bits, bar) for d in ds)
    return DiscretizationResult(
        profile=P.name, device=str(device), m=len(D.train), B=B, B_aug=B_aug,
        margin_q=P.margin_q, gamma=margin_percentile(margins(f_train, D.train.y), P.margin_q),
        f_test_err=error_rate(logits(net, D.test.X), D.test.y), weight_norms=a_norms,
        shapes=tuple(tuple(w.shape) for w in weight_matrices(net)),
        n_biases=sum(layer.bias.numel() for layer in linear_layers(net)),
        bits=tuple(bits), pruned=pruned)


def compute(P: Profile, *, bits: list[int] | None = None, prune_d: Any = None,
            progress: bool = True) -> DiscretizationResult:
    """Prune the main network at each d, round it to each bit width, measure (cached).

    ``bits``: bit widths in [2, 24] (default :data:`BITS` of the profile); ``prune_d``:
    one d >= 0 or a list (default :data:`D_VALUES`).
    """
    bits = check_bits_list(list(BITS[P.name]) if bits is None else bits)
    ds = check_d_values(prune_d)
    device = resolve_device(P.device)
    cfg = RunConfig.from_profile(P)
    run = train_cached(cfg, progress=progress)
    config = {"profile": dataclasses.asdict(P), "run": cfg.key, "bits": bits, "ds": ds,
              "sketch_layer": SKETCH_LAYER, "device": device.type,
              "chapter": sha256(Path(__file__).read_bytes())[:16]}
    return cached_result("chapter-discretization", config,
                         lambda: _measure(P, run, bits, ds, device, progress),
                         DiscretizationResult)


def claims(R: DiscretizationResult) -> list[Claim]:
    """Discretization costs a log r term (with the margin's caveat); the rounding lemma."""
    p0 = R.pruned[0]
    return [
        Claim(
            id="discretization-log-r",
            statement="Discretization costs only a $\\log r$ term",
            origin="reconstructed", chapter=LABEL, evidence="fig-disc-bound",
            measured=(Value("bound_gap", "bound with rounding / measured change (at least)",
                            R.bound_gap, ".3g"),
                      Value("prune_part", f"pruning part of the bound at $d={p0.d:g}$",
                            p0.bound, ".3g"),
                      Value("margin", f"training margin ({R.margin_q:g}th percentile)",
                            R.gamma, ".3g"),
                      Value("kept", f"kept fraction at $d={p0.d:g}$ (of all weights)",
                            p0.kept, ".3f")),
            judgement=criteria.caveat_unless(
                criteria.at_least(R.bound_gap, 1.0, what="the bound / the largest measured change"),
                criteria.at_most(math.sqrt(2.0) * p0.bound, R.gamma,
                                 what="the margin cost √2 × the pruning part of the bound",
                                 limit_what="the margin"),
                "the margin, not log r, decides the bits: the pruning part alone exceeds "
                "the margin"),
        ),
        Claim(
            id="rounding-norm-bounds",
            statement="The spectral norm of a rounding error is at most "
                      "$(\\rho/2)\\sqrt{j_r j_c}$ and $(\\rho/2)\\sqrt{\\alpha}$ "
                      "(plus the bias column)",
            origin="ours", chapter=LABEL, evidence="fig-disc-rounding-norm",
            measured=(Value("schur_over", "Schur bound / measured norm (mean)",
                            R.schur_over, ".3g"),
                      Value("rms_over", "uniform-error heuristic / measured norm (mean)",
                            R.rms_over, ".3g")),
            judgement=criteria.all_layers(R.n_layer_checks - R.n_bound_violations,
                                          R.n_layer_checks,
                                          what="layer roundings within their bounds"),
        ),
    ]
