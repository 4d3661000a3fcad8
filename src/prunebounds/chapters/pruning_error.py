"""Chapter "Magnitude-based pruning as a random perturbation" (``notebooks/pruning_error.md``).

Everything the chapter measures on the main network of the profile and on i.i.d.
Gaussian matrices, as one cached :class:`PruningErrorResult`:

* the rule (R) on one trained layer (:class:`RuleExample`) and its kept fraction and
  error moments by Monte Carlo (:class:`MonteCarloMoments`);
* the sweep over d of the trained network: masks of (R) and, at the sparsity of the
  first mask, layer-wise and global magnitude pruning and random pruning, each with
  every bound of :class:`prunebounds.perturbation.PruningProbe` (:class:`Sweep`);
* the random-matrix bounds against the measured ||Delta|| by layer and by matrix size,
  the crossover width of the provable bound, and Markov's lambda against the observed
  concentration (:class:`SizeSweep`, :class:`MarkovCheck`);
* deterministic pruning at a fixed or a quantile threshold against (R) at equal
  sparsity, with the random-matrix prediction of each (:class:`DeterministicRow`);
* the authors' Gamma, the needed margin against the training margins and the largest d
  that fits, Algorithm 1's diagonal, and the factors of the bound with the provable
  chain (:class:`prunebounds.perturbation.ProvableChain`).

Monte Carlo over random matrices runs on the profile's device, with batched spectral
norms (:func:`prunebounds.norms.batched_spectral_norms`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import cache, data, margins, models, norms, perturbation, pruning, runs
from .. import random_matrices as rm
from ..claims import Claim, Value, criteria
from ..devices import resolve_device
from ..profiles import Profile

LABEL = "chap-pruning-error"
REQUIRES: tuple[str, ...] = ()

#: Sizes that are not fields of the profile: masks of (R) per d, masks whose true
#: change of the outputs is measured, the largest n of the size sweep, the n of the
#: Markov check, every k-th d of the grid in the network sweep, the n of the
#: deterministic-pruning check.
SIZES = {
    "smoke": dict(n_seeds=2, error_seeds=1, max_size=128, markov_n=64, sweep_every=1, det_n=64),
    "quick": dict(n_seeds=3, error_seeds=1, max_size=2000, markov_n=200, sweep_every=3, det_n=784),
    "full": dict(n_seeds=5, error_seeds=3, max_size=4000, markov_n=784, sweep_every=1, det_n=784),
}
#: The d of the example mask of the rule on the trained layer, and its layer (index).
EXAMPLE_D, EXAMPLE_LAYER = 3.0, 1
#: The d at which the bounds are compared by matrix size, and Markov's check.
SIZE_D = 1.0
#: The values of lambda of the Markov table.
LAMBDAS = (1.01, 1.02, 1.05, 1.1, 2.0, 10.0)
#: The d of the deterministic-pruning check.
DETERMINISTIC_D = (1.0, 10.0)
#: Total failure probability of the provable chain (union bound over the layers).
FAILURE = 0.1
#: The paper's widths (MNIST, CIFAR-10).
PAPER_WIDTHS = (784, 2000)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RuleExample:
    """The rule at ``d`` on one trained layer: the fraction dropped per bin of |w|/sqrt(Psi)."""

    layer: int                       # 1-based
    d: float
    edges: tuple[float, ...]         # bins of |w| / sqrt(Psi)
    density: tuple[float, ...]       # density of |w| / sqrt(Psi) per bin
    dropped: tuple[float, ...]       # fraction dropped per bin (NaN: fewer than 20 weights)
    kept: float                      # kept fraction of the layer
    excess_kurtosis: float


@dataclass(frozen=True)
class MonteCarloMoments:
    """Kept fraction and moments of Delta by Monte Carlo on N(0, 1) weights, per d."""

    d: tuple[float, ...]
    draws: int
    kept: tuple[float, ...]
    kept_se: tuple[float, ...]
    m2: tuple[float, ...]
    m2_se: tuple[float, ...]
    m4: tuple[float, ...]
    m4_se: tuple[float, ...]
    max_z: float                     # largest |MC - formula| / standard error


@dataclass(frozen=True)
class Pruned:
    """One pruned copy of the network: the probe's bounds and its test error."""

    probe: perturbation.ProbeResult
    test_error: float | None


@dataclass(frozen=True)
class Sweep:
    """The trained network pruned at each d: masks of (R) and three baselines."""

    d: tuple[float, ...]
    paper: tuple[tuple[Pruned, ...], ...]    # [d][mask]
    layer: tuple[Pruned, ...]                # magnitude, per layer, sparsity of mask 0
    global_magnitude: tuple[Pruned, ...]     # magnitude, one threshold for all layers
    random: tuple[Pruned, ...]               # uniformly random, per-layer sparsity of mask 0


@dataclass(frozen=True)
class SizeSweep:
    """||Delta|| of pruned i.i.d. N(0, 1) n x n matrices at d = SIZE_D, and the bounds."""

    d: float
    n: tuple[int, ...]
    norms: tuple[tuple[float, ...], ...]     # [size][matrix]
    bounds: tuple[rm.ErrorNormBounds, ...]
    n_far: tuple[int, ...]                   # closed forms far beyond
    bounds_far: tuple[rm.ErrorNormBounds, ...]


@dataclass(frozen=True)
class MarkovCheck:
    """Markov's guarantee against the observed concentration of ||Delta||."""

    n: int
    d: float
    trials: int
    mean: float
    max: float
    lambdas: tuple[float, ...]
    observed: tuple[float, ...]              # fraction of trials with ||Delta|| <= lambda mean
    lambda_union: float                      # L / FAILURE
    observed_union: float


@dataclass(frozen=True)
class DeterministicRow:
    """Random rule vs thresholds at equal expected sparsity chi(d) on i.i.d. N(0, 1) n x n."""

    d: float
    keep: float
    tau: float
    rule: float                  # mean measured ||Delta||: the rule (R)
    fixed: float                 # threshold tau (fixed)
    quantile: float              # threshold at the matrix's own quantile (top-k)
    rule_bounds: rm.ErrorNormBounds
    threshold_bounds: rm.ErrorNormBounds


@dataclass(frozen=True)
class GammaRow:
    layer: int
    fan_in: int
    fan_out: int
    t: float
    gamma_closed: float
    gamma_bisect: float


@dataclass(frozen=True)
class DiagonalRow:
    shape: tuple[int, int]
    n_diag: int
    diag_pruned: int
    norm_plain: float
    norm_kept: float


@dataclass(frozen=True)
class LoosenessRow:
    """The bounds at one d (first mask) against the truth."""

    d: float
    authors: perturbation.MarginBreakdown
    textbook: float
    provable: perturbation.ProvableMargin
    true_correct: float          # the authors' measure: max |change of the correct logit|
    true_l2: float               # max ||change of the logits||_2, what Lemma (P) bounds


@dataclass(frozen=True)
class PruningErrorResult:
    profile: str
    epochs: int
    m: int
    input_norm: float
    test_error: float
    shapes: tuple[tuple[int, int], ...]
    psis: tuple[float, ...]
    example: RuleExample
    monte_carlo: MonteCarloMoments
    sweep: Sweep
    error_seeds: int
    layer_bounds: tuple[tuple[rm.ErrorNormBounds, ...], ...]  # [layer][d of the sweep]
    mean_part: tuple[tuple[float, ...], ...]   # ||E[Delta | W]|| [layer][d of the sweep]
    sizes: SizeSweep
    crossover: dict[float, int]                # d -> width n where BvH-sym < Frobenius
    markov: MarkovCheck
    deterministic: tuple[DeterministicRow, ...]
    det_n: int
    gamma: tuple[GammaRow, ...]
    train_margins: dict[str, float]            # "minimum", "p1", "q"
    margin_q: float
    d_star: float | None                       # largest d whose needed margin fits (q-margin)
    d_star_provable: float | None              # the same for the provable chain
    diagonal: tuple[DiagonalRow, ...]
    diagonal_d: float
    diagonal_true: tuple[float, float]         # largest change of the correct logit: pruned, kept
    looseness: tuple[LoosenessRow, ...]


# --------------------------------------------------------------------------- helpers
def _norms_of(matrices: list[torch.Tensor]) -> list[float]:
    """Spectral norms of matrices of mixed shapes, batched per shape, in input order."""
    out: list[float | None] = [None] * len(matrices)
    by_shape: dict[tuple, list[int]] = {}
    for i, M in enumerate(matrices):
        by_shape.setdefault((tuple(M.shape), M.device.type), []).append(i)
    for idx in by_shape.values():
        vals = norms.batched_spectral_norms(torch.stack([matrices[i] for i in idx]))
        for i, v in zip(idx, vals):
            out[i] = v
    return [float(v) for v in out]


def _d_grid(P: Profile) -> tuple[np.ndarray, np.ndarray]:
    """The grid of d in (0, 10] and the sweep's every k-th d (ending at 10)."""
    grid = np.linspace(0.0, 10.0, P.n_d)[1:]
    return grid, grid[::-1][::SIZES[P.name]["sweep_every"]][::-1]


def _pruned_rule(W: torch.Tensor, U: torch.Tensor, d: float) -> torch.Tensor:
    """Delta of the rule (R) with psi = 1 from weights W and uniforms U (any shape)."""
    return torch.where(U < pruning.keep_probability(W, d, 1.0), torch.zeros_like(W), W)


def _gaussian_stack(count: int, n: int, seed: int, device: torch.device,
                    on_device: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """count i.i.d. N(0, 1) n x n matrices and uniforms (float64) on ``device``.

    Drawn by a CPU generator (the same numbers on every device) unless ``on_device``,
    for Monte Carlo too large to draw on the host (the Markov check of the full profile).
    """
    gen = torch.Generator(device=device if on_device else "cpu").manual_seed(seed)
    where = device if on_device else "cpu"
    W = torch.randn(count, n, n, generator=gen, dtype=torch.float64, device=where)
    U = torch.rand(count, n, n, generator=gen, dtype=torch.float64, device=where)
    return W.to(device), U.to(device)


# --------------------------------------------------------------------------- the parts
def rule_example(net: torch.nn.Module, seed: int) -> RuleExample:
    """The rule at EXAMPLE_D on layer EXAMPLE_LAYER + 1: fraction dropped per bin."""
    W = models.weight_matrices(net)[EXAMPLE_LAYER].detach().to(torch.float64).cpu()
    Wp = models.weight_matrices(pruning.prune_paper(net, EXAMPLE_D, seed))[EXAMPLE_LAYER].cpu()
    psi = pruning.weight_variance(W)
    z = (W.abs() / math.sqrt(psi)).flatten().numpy()
    dropped = (Wp == 0).flatten().numpy()
    edges = np.linspace(0.0, 5.0, 26)
    idx = np.digitize(z, edges)
    frac = [float(dropped[idx == i].mean()) if (idx == i).sum() >= 20 else math.nan
            for i in range(1, len(edges))]
    dens, _ = np.histogram(z, bins=edges, density=True)
    s = (W - W.mean()) / W.std(unbiased=False)
    return RuleExample(layer=EXAMPLE_LAYER + 1, d=EXAMPLE_D, edges=tuple(edges.tolist()),
                       density=tuple(dens.tolist()), dropped=tuple(frac),
                       kept=float(1.0 - dropped.mean()),
                       excess_kurtosis=float((s ** 4).mean() - 3.0))


def monte_carlo_moments(d_grid: np.ndarray, draws: int, seed: int,
                        device: torch.device) -> MonteCarloMoments:
    """Kept fraction and E Delta^2, E Delta^4 of (R) by Monte Carlo on N(0, 1) weights."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(draws, generator=gen, dtype=torch.float64).to(device)
    u = torch.rand(draws, generator=gen, dtype=torch.float64).to(device)
    rows = []
    for d in d_grid:
        keep = u < pruning.keep_probability(w, float(d), 1.0)
        delta = torch.where(keep, torch.zeros_like(w), w)
        kept = keep.to(torch.float64)
        rows.append(torch.stack([f(x) for x in (kept, delta ** 2, delta ** 4)
                                 for f in (torch.mean, lambda t: t.std() / math.sqrt(draws))]))
    a = torch.stack(rows).cpu().numpy()          # one transfer: (d, 6)
    r = d_grid / (d_grid + 2.0)
    z = np.concatenate([(a[:, 0] - pruning.expected_keep_fraction(d_grid)) / a[:, 1],
                        (a[:, 2] - r ** 1.5) / a[:, 3], (a[:, 4] - 3 * r ** 2.5) / a[:, 5]])
    return MonteCarloMoments(d=tuple(map(float, d_grid)), draws=draws,
                             kept=tuple(a[:, 0]), kept_se=tuple(a[:, 1]), m2=tuple(a[:, 2]),
                             m2_se=tuple(a[:, 3]), m4=tuple(a[:, 4]), m4_se=tuple(a[:, 5]),
                             max_z=float(np.abs(z).max()))


def network_sweep(net, probe, D, d_sweep, n_seeds, error_seeds, seed, progress) -> Sweep:
    """Masks of (R) and the three baselines at every d of the sweep, with every bound."""
    A = probe.weights
    res = {"paper": [], "layer": [], "global": [], "random": []}
    for d in tqdm(d_sweep, desc="sweep over d", disable=not progress):
        nets = [pruning.prune_paper(net, float(d), seed=seed + s) for s in range(n_seeds)]
        ref = nets[0]
        frac = [1.0 - k for k in pruning.kept_fractions(ref)]
        total = sum(w.numel() for w in A)
        overall = 1.0 - sum(int(torch.count_nonzero(w)) for w in models.weight_matrices(ref)) / total
        base = [pruning.prune_like(net, ref), pruning.prune_magnitude(net, overall, scope="global"),
                pruning.prune_random(net, frac, seed=seed)]
        everything = nets + base
        deltas = [a - w.to(torch.float64) for g in everything
                  for a, w in zip(A, models.weight_matrices(g))]
        dn = _norms_of(deltas)
        L = len(A)
        out = []
        for i, g in enumerate(everything):   # test error: mask 0 and the baselines
            r = probe.evaluate(g, true_error=i < error_seeds, delta_norms=dn[i * L:(i + 1) * L])
            tested = i == 0 or i >= n_seeds
            test = margins.model_error_rate(g, D.test.X, D.test.y) if tested else None
            out.append(Pruned(r, test))
        res["paper"].append(tuple(out[:n_seeds]))
        for name, p in zip(("layer", "global", "random"), out[n_seeds:]):
            res[name].append(p)
    return Sweep(d=tuple(map(float, d_sweep)), paper=tuple(res["paper"]), layer=tuple(res["layer"]),
                 global_magnitude=tuple(res["global"]), random=tuple(res["random"]))


def size_sweep(max_size: int, n_seeds: int, seed: int, device, progress) -> SizeSweep:
    """Measured ||Delta|| of pruned N(0, 1) n x n matrices at SIZE_D, and the bounds."""
    sizes = np.unique(np.geomspace(16, max_size, 8).astype(int))
    measured = []
    for n in tqdm(sizes, desc="matrix sizes", disable=not progress):
        W, U = _gaussian_stack(n_seeds, int(n), seed, device)
        measured.append(tuple(norms.batched_spectral_norms(_pruned_rule(W, U, SIZE_D))))
        del W, U
    n_far = np.unique(np.geomspace(16, 10 ** 6, 60).astype(int))
    return SizeSweep(d=SIZE_D, n=tuple(map(int, sizes)), norms=tuple(measured),
                     bounds=tuple(rm.pruning_error_norm_bounds(int(n), int(n), SIZE_D, 1.0)
                                  for n in sizes),
                     n_far=tuple(map(int, n_far)),
                     bounds_far=tuple(rm.pruning_error_norm_bounds(int(n), int(n), SIZE_D, 1.0)
                                      for n in n_far))


def markov_check(n: int, trials: int, n_layers: int, seed: int, device, progress) -> MarkovCheck:
    """||Delta|| over ``trials`` pruned N(0, 1) n x n matrices at SIZE_D against Markov."""
    on_device = device.type != "cpu"
    vals: list[float] = []
    chunk = 64
    for start in tqdm(range(0, trials, chunk), desc="Markov", disable=not progress):
        k = min(chunk, trials - start)
        W, U = _gaussian_stack(k, n, seed + 1 + start, device, on_device=on_device)
        vals += norms.batched_spectral_norms(_pruned_rule(W, U, SIZE_D))
    x = np.array(vals)
    lam_union = n_layers / FAILURE
    return MarkovCheck(n=n, d=SIZE_D, trials=trials, mean=float(x.mean()), max=float(x.max()),
                       lambdas=LAMBDAS,
                       observed=tuple(float((x <= lam * x.mean()).mean()) for lam in LAMBDAS),
                       lambda_union=lam_union,
                       observed_union=float((x <= lam_union * x.mean()).mean()))


def deterministic_check(n: int, n_seeds: int, seed: int, device) -> tuple[DeterministicRow, ...]:
    """(R) against fixed-threshold and quantile-threshold pruning at equal sparsity chi(d)."""
    W, U = _gaussian_stack(n_seeds, n, seed + 7, device)
    rows = []
    for d in DETERMINISTIC_D:
        keep = float(pruning.expected_keep_fraction(d))
        fixed = torch.stack([w - pruning.prune_threshold_matrix(w, keep, psi=1.0) for w in W])
        quant = torch.stack([w - pruning.prune_threshold_matrix(w, keep, quantile=True) for w in W])
        vals = norms.batched_spectral_norms(torch.cat([_pruned_rule(W, U, d), fixed, quant]))
        k = n_seeds
        rows.append(DeterministicRow(
            d=d, keep=keep, tau=pruning.threshold_for_keep(keep),
            rule=float(np.mean(vals[:k])), fixed=float(np.mean(vals[k:2 * k])),
            quantile=float(np.mean(vals[2 * k:])),
            rule_bounds=rm.pruning_error_norm_bounds(n, n, d, 1.0),
            threshold_bounds=rm.threshold_error_norm_bounds(n, n, keep, 1.0)))
    return tuple(rows)


def gamma_table(shapes, m: int) -> tuple[GammaRow, ...]:
    """The authors' t and Gamma_l of every layer (closed form and their bisection)."""
    return tuple(GammaRow(layer=l, fan_in=i, fan_out=o, t=perturbation.authors_t(i, m),
                          gamma_closed=perturbation.authors_gamma(i, o, m, "closed"),
                          gamma_bisect=perturbation.authors_gamma(i, o, m, "bisect"))
                 for l, (o, i) in enumerate(shapes, 1))


def diagonal_check(net, probe, d: float, seed: int):
    """The rule at d with and without Algorithm 1's unpruned diagonal (same draws)."""
    plain = pruning.prune_paper(net, d, seed=seed)
    kept = pruning.prune_paper(net, d, seed=seed, keep_diagonal=True)
    A = probe.weights
    Wp, Wk = models.weight_matrices(plain), models.weight_matrices(kept)
    dn = _norms_of([a - w.to(torch.float64) for a, w in zip(A, Wp)]
                   + [a - w.to(torch.float64) for a, w in zip(A, Wk)])
    L = len(A)
    rows = tuple(DiagonalRow(shape=tuple(a.shape), n_diag=min(a.shape),
                             diag_pruned=int((w.diagonal() == 0).sum()),
                             norm_plain=dn[l], norm_kept=dn[L + l])
                 for l, (a, w) in enumerate(zip(A, Wp)))
    true = tuple(perturbation.output_change(None, g, probe.X, probe.y,
                                            reference_logits=probe.reference_logits)
                 .max_correct_logit_change for g in (plain, kept))
    return rows, true


# --------------------------------------------------------------------------- compute
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def compute(P: Profile, *, progress: bool = True) -> PruningErrorResult:
    """Everything the chapter shows, for profile ``P`` (cached; see the module docstring)."""
    cfg = runs.RunConfig.from_profile(P)
    sizes = SIZES[P.name]
    config = dict(run=cfg.key, profile=P.name, n_d=P.n_d, mc_trials=P.mc_trials,
                  margin_q=P.margin_q, seed=P.seed, max_train=P.max_train, sizes=sizes,
                  device=resolve_device(P.device).type, chapter=_source_hash())
    return cache.cached_result("chapter-pruning-error", config,
                               lambda: _compute(P, cfg, progress), PruningErrorResult)


def _compute(P: Profile, cfg: runs.RunConfig, progress: bool) -> PruningErrorResult:
    sizes, device = SIZES[P.name], resolve_device(P.device)
    run = runs.train_cached(cfg, progress=progress)
    net = run.model.to(device)  # pruning, norms and forward passes on the device
    D = data.load(P.dataset, max_train=P.max_train).to(device)
    probe = perturbation.PruningProbe(net, D.train.X, D.train.y, norm_method="lanczos")
    shapes = tuple(tuple(w.shape) for w in probe.weights)
    psis = tuple(pruning.weight_variance(w) for w in probe.weights)
    L = len(shapes)
    d_grid, d_sweep = _d_grid(P)
    n_seeds, error_seeds = sizes["n_seeds"], min(sizes["error_seeds"], sizes["n_seeds"])

    sweep = network_sweep(net, probe, D, d_sweep, n_seeds, error_seeds, P.seed, progress)
    layer_bounds = tuple(tuple(rm.pruning_error_norm_bounds(sh[0], sh[1], float(d), psi)
                               for d in d_sweep) for sh, psi in zip(shapes, psis))
    mean_part = tuple(tuple(_norms_of([w * torch.exp(-w ** 2 / (float(d) * psi))
                                       for d in d_sweep]))
                      for w, psi in zip(probe.weights, psis))

    m_train = margins.margins(probe.reference_logits, D.train.y)
    train_margins = {"minimum": margins.min_margin(m_train),
                     "p1": margins.margin_percentile(m_train, 1.0),
                     "q": margins.margin_percentile(m_train, P.margin_q)}
    gamma_q = train_margins["q"]
    authors_last = [masks[0].probe.authors.value for masks in sweep.paper]
    above = [d for d, v in zip(d_sweep, authors_last) if v > gamma_q]
    d_hi = float(above[0]) if above else float(d_sweep[-1])
    chain = perturbation.ProvableChain(net, probe.input_norm, failure=FAILURE)
    d_star = (perturbation.certified_d(probe, net, gamma_q, seed=P.seed, d_max=d_hi, rel_tol=0.02)
              if gamma_q > 0 else None)
    d_star_provable = chain.certified_d(gamma_q) if gamma_q > 0 else None

    picks = sorted({int(np.argmin(np.abs(d_sweep - t))) for t in (1.0, 5.0, 10.0)})
    looseness = tuple(LoosenessRow(
        d=float(d_sweep[i]), authors=sweep.paper[i][0].probe.authors,
        textbook=sweep.paper[i][0].probe.textbook, provable=chain.margin(float(d_sweep[i])),
        true_correct=sweep.paper[i][0].probe.output.max_correct_logit_change,
        true_l2=sweep.paper[i][0].probe.output.max_l2_change) for i in picks)
    diag_rows, diag_true = diagonal_check(net, probe, float(d_sweep[-1]), P.seed)

    return PruningErrorResult(
        profile=P.name, epochs=P.epochs, m=len(D.train), input_norm=probe.input_norm,
        test_error=margins.model_error_rate(net, D.test.X, D.test.y), shapes=shapes, psis=psis,
        example=rule_example(net, P.seed),
        monte_carlo=monte_carlo_moments(d_grid, P.mc_trials * 1000, P.seed, device),
        sweep=sweep, error_seeds=error_seeds, layer_bounds=layer_bounds, mean_part=mean_part,
        sizes=size_sweep(sizes["max_size"], n_seeds, P.seed, device, progress),
        crossover={d: rm.crossover_width(d) for d in (1.0, 10.0)},
        markov=markov_check(sizes["markov_n"], P.mc_trials, L, P.seed, device, progress),
        deterministic=deterministic_check(sizes["det_n"], n_seeds, P.seed, device),
        det_n=sizes["det_n"], gamma=gamma_table(shapes, len(D.train)),
        train_margins=train_margins, margin_q=P.margin_q, d_star=d_star,
        d_star_provable=d_star_provable, diagonal=diag_rows, diagonal_d=float(d_sweep[-1]),
        diagonal_true=diag_true, looseness=looseness)


# --------------------------------------------------------------------------- derived numbers
def kept_fractions(R: PruningErrorResult) -> np.ndarray:
    """Kept fraction per (d, mask, layer) of the rule's masks."""
    return np.array([[m.probe.kept for m in masks] for masks in R.sweep.paper])


def network_kept(R: PruningErrorResult) -> np.ndarray:
    """The network's kept fraction per (d, mask): kept weights over all weights.

    The one definition of the kept fraction of a network in the book: a fraction of
    all its weights (layers weighted by their size), not a mean over layers.
    """
    sizes = np.array([o * i for o, i in R.shapes], dtype=float)
    return (kept_fractions(R) * sizes).sum(axis=2) / sizes.sum()


def kept_deviation(R: PruningErrorResult) -> np.ndarray:
    """kept_l(d) / chi(d) - 1 per (layer, d), mean over the masks."""
    chi = pruning.expected_keep_fraction(np.array(R.sweep.d))
    return (kept_fractions(R).mean(axis=1) / chi[:, None] - 1.0).T


def kept_z_last(R: PruningErrorResult) -> float:
    """The largest |kept_l / chi - 1| at the largest d over its sampling standard error.

    For Gaussian weights the kept count of a layer with N entries over k masks is
    Binomial(N k, chi), so the relative deviation has standard error
    sqrt((1 - chi) / (chi N k)); larger deviations come from the weights, not the coins.
    """
    chi = float(pruning.expected_keep_fraction(R.sweep.d[-1]))
    k = len(R.sweep.paper[-1])
    dev = kept_deviation(R)[:, -1]
    return float(max(abs(dv) / math.sqrt((1 - chi) / (chi * o * i * k))
                     for dv, (o, i) in zip(dev, R.shapes)))


def numbers(R: PruningErrorResult) -> dict[str, float | int]:
    """The numbers the chapter's text quotes, by glue name (``pruning_*``)."""
    last = R.sweep.paper[-1]
    hidden = R.layer_bounds[1][-1]
    meas_hidden = float(np.mean([m.probe.delta_norms[1] for m in last]))
    b784 = rm.pruning_error_norm_bounds(784, 784, SIZE_D, 1.0)
    b2000 = rm.pruning_error_norm_bounds(2000, 2000, SIZE_D, 1.0)
    dev = kept_deviation(R)
    loose = R.looseness[-1]
    det = {r.d: r for r in R.deterministic}
    a0 = R.sweep.paper[0][0].probe.authors
    cond = [all(m.probe.authors.condition_holds for m in masks) for masks in R.sweep.paper]
    ok = [d for d, c in zip(R.sweep.d, cond) if c]
    factors = {"e B": loose.authors.e_times_b, "the product of the norms":
               loose.authors.product_of_norms, "the sum of ratios": loose.authors.sum_of_ratios}
    return {
        "pruning_example_kept": R.example.kept,
        "pruning_example_chi": float(pruning.expected_keep_fraction(R.example.d)),
        "pruning_kurtosis": R.example.excess_kurtosis,
        "pruning_mc_n": R.monte_carlo.draws, "pruning_mc_max_z": R.monte_carlo.max_z,
        "pruning_n_sweep": len(R.sweep.d), "pruning_n_seeds": len(R.sweep.paper[0]),
        "pruning_error_seeds": R.error_seeds,
        "pruning_kept_maxdev": float(np.abs(dev).max()),
        "pruning_kept_dev_d10": float(np.abs(dev[:, -1]).max()),
        "pruning_kept_mean_d10": float(dev[:, -1].mean()),
        "pruning_kept_z_d10": kept_z_last(R),
        "pruning_hidden_ratio_frob": hidden.frobenius / meas_hidden,
        "pruning_hidden_ratio_sym": hidden.bvh_symmetric / meas_hidden,
        "pruning_hidden_ratio_latala": hidden.latala_c1 / meas_hidden,
        "pruning_hidden_ratio_bvhg": hidden.bvh_gaussian / meas_hidden,
        "pruning_hidden_asym": meas_hidden / hidden.asymptotic,
        "pruning_hidden_mean_ratio": meas_hidden / R.mean_part[1][-1],
        "pruning_max_size": R.sizes.n[-1],
        "pruning_784_sym": b784.bvh_symmetric / b784.asymptotic,
        "pruning_784_frob": b784.frobenius / b784.asymptotic,
        "pruning_784_bvhg": b784.bvh_gaussian / b784.asymptotic,
        "pruning_784_latala": b784.latala_c1 / b784.asymptotic,
        "pruning_cross_d1": R.crossover[1.0], "pruning_cross_d10": R.crossover[10.0],
        "pruning_2000_sym_frob": b2000.bvh_symmetric / b2000.frobenius,
        "pruning_mc_trials": R.markov.trials, "pruning_markov_n": R.markov.n,
        "pruning_markov_spread": R.markov.max / R.markov.mean - 1.0,
        "pruning_markov_obs_105": R.markov.observed[R.markov.lambdas.index(1.05)],
        "pruning_lambda_union": R.markov.lambda_union,
        "pruning_det_n": R.det_n,
        "pruning_det_tau10": det[10.0].tau,
        "pruning_det_rule10": det[10.0].rule, "pruning_det_fixed10": det[10.0].fixed,
        "pruning_det_quant10": det[10.0].quantile,
        "pruning_det_rule_pred10": det[10.0].rule_bounds.asymptotic,
        "pruning_det_fixed_pred10": det[10.0].threshold_bounds.asymptotic,
        "pruning_det_fixed_over_rule10": det[10.0].fixed / det[10.0].rule,
        "pruning_det_quant_gap": max(abs(r.quantile / r.fixed - 1) for r in R.deterministic),
        "pruning_det_sym_ratio1": det[1.0].threshold_bounds.bvh_symmetric
        / det[1.0].threshold_bounds.frobenius,
        "pruning_det_rule_sym_ratio1": det[1.0].rule_bounds.bvh_symmetric
        / det[1.0].rule_bounds.frobenius,
        "pruning_prod_gamma": math.prod(g.gamma_bisect for g in R.gamma),
        "pruning_B": R.input_norm, "pruning_m": R.m, "pruning_epochs": R.epochs,
        "pruning_bound_d10": float(np.mean([m.probe.authors.value for m in last])),
        "pruning_textbook_d10": float(np.mean([m.probe.textbook for m in last])),
        "pruning_true_y_d10": float(np.mean([m.probe.output.max_correct_logit_change
                                             for m in last[:R.error_seeds]])),
        "pruning_true_l2_d10": float(np.mean([m.probe.output.max_l2_change
                                              for m in last[:R.error_seeds]])),
        "pruning_d_first": R.sweep.d[0],
        "pruning_cond_ratio_first": max(L * dn / an for L in [len(R.shapes)]
                                        for dn, an in zip(a0.delta_norms, a0.weight_norms)),
        "pruning_cond_n_ok": len(ok),
        "pruning_min_margin": R.train_margins["minimum"],
        "pruning_p1_margin": R.train_margins["p1"],
        "pruning_q": R.margin_q, "pruning_q_margin": R.train_margins["q"],
        "pruning_d_star": R.d_star if R.d_star is not None else 0.0,
        "pruning_chi_d_star": float(pruning.expected_keep_fraction(R.d_star or 0.0)),
        "pruning_d_star_provable": R.d_star_provable if R.d_star_provable is not None else 0.0,
        "pruning_bound_d_first": float(np.mean([m.probe.authors.value for m in R.sweep.paper[0]])),
        "pruning_test_error": R.test_error,
        "pruning_kept_d10": float(network_kept(R)[-1].mean()),
        "pruning_err_paper_d10": last[0].test_error,
        "pruning_err_layer_d10": R.sweep.layer[-1].test_error,
        "pruning_err_global_d10": R.sweep.global_magnitude[-1].test_error,
        "pruning_err_random_d10": R.sweep.random[-1].test_error,
        "pruning_ratio_paper_d10": float(np.mean([m.probe.authors.sum_of_ratios for m in last])),
        "pruning_ratio_layer_d10": R.sweep.layer[-1].probe.authors.sum_of_ratios,
        "pruning_ratio_global_d10": R.sweep.global_magnitude[-1].probe.authors.sum_of_ratios,
        "pruning_ratio_random_d10": R.sweep.random[-1].probe.authors.sum_of_ratios,
        "pruning_diag_d": R.diagonal_d,
        "pruning_diag_share": max(r.n_diag / (r.shape[0] * r.shape[1]) for r in R.diagonal),
        "pruning_diag_norm_change": max(abs(r.norm_kept / r.norm_plain - 1) for r in R.diagonal),
        "pruning_diag_true_plain": R.diagonal_true[0],
        "pruning_diag_true_kept": R.diagonal_true[1],
        "pruning_eb": loose.authors.e_times_b,
        "pruning_prod_norms": loose.authors.product_of_norms,
        "pruning_sum_ratios_d10": loose.authors.sum_of_ratios,
        "pruning_top_factor_value": max(factors.values()),
        "pruning_textbook_ratio": loose.textbook / loose.true_l2,
        "pruning_provable_d10": loose.provable.value,
        "pruning_provable_ratio": loose.provable.value / loose.true_l2,
        "pruning_provable_lam": loose.provable.lam,
    }


def top_factor(R: PruningErrorResult) -> str:
    """The largest factor of the authors' needed margin at the largest d of the sweep."""
    a = R.looseness[-1].authors
    factors = {"e·B": a.e_times_b, "∏‖Aˡ‖₂": a.product_of_norms,
               "Σ‖Δˡ‖₂/‖Aˡ‖₂": a.sum_of_ratios, "∏Γₗ": a.product_of_gammas}
    return max(factors, key=factors.get)


# --------------------------------------------------------------------------- claims
def claims(R: PruningErrorResult) -> list[Claim]:
    """The chapter's claim records (see :mod:`prunebounds.claims`)."""
    n = numbers(R)
    chapter = dict(origin="reconstructed", chapter=LABEL)
    d_last = R.sweep.d[-1]
    rmt_ratio = min(b.bvh_symmetric / float(np.mean(m)) for b, m in zip(R.sizes.bounds, R.sizes.norms))
    last = R.sweep.paper[-1]
    cond_masks = sum(m.probe.authors.condition_holds for m in last)
    det = {r.d: r for r in R.deterministic}[10.0]
    loose = R.looseness[-1]
    return [
        Claim(id="kept-fraction-moments", **chapter, evidence="fig-pruning-kept",
              statement="Kept fraction $\\keep(d)=1-\\sqrt{d/(d+2)}$ and the moments of $\\Delta$ (derived)",
              measured=(Value("mc_max_z", "largest Monte Carlo deviation (standard errors)", n["pruning_mc_max_z"], ".2f"),
                        Value("kept_dev", f"kept fraction of the trained layers off by, at $d = {d_last:g}$",
                              n["pruning_kept_dev_d10"], ".1%"),
                        Value("kept_z", "that is, in standard errors", n["pruning_kept_z_d10"], ".1f")),
              judgement=criteria.caveat_unless(
                  criteria.at_most(n["pruning_mc_max_z"], 4.0, what="the largest Monte Carlo deviation in standard errors"),
                  criteria.at_most(n["pruning_kept_z_d10"], 4.0,
                                   what="the trained layers' largest deviation from χ(d) in standard errors"),
                  "on trained weights the kept fraction departs from χ(d)")),
        Claim(id="lemma-4-1-rmt", **chapter, evidence="fig-pruning-norm-vs-size",
              statement="Lemma 4.1: $\\opnorm{\\Delta}$ by random-matrix theory",
              measured=(Value("sym784", "provable (Bandeira–van Handel, symmetric) bound at $n=784$ / large-$n$ value",
                              n["pruning_784_sym"], ".1f"),
                        Value("frob784", "Frobenius bound at $n=784$ / large-$n$ value", n["pruning_784_frob"], ".1f"),
                        Value("cross_d1", "width from which the provable bound beats Frobenius, $d=1$", n["pruning_cross_d1"], ",d"),
                        Value("cross_d10", "the same at $d=10$", n["pruning_cross_d10"], ",d")),
              judgement=criteria.caveat_unless(
                  criteria.at_least(rmt_ratio, 1.0, what="the smallest ratio of the provable bound to the measured ‖Δ‖₂ over the sizes"),
                  criteria.at_most(n["pruning_784_sym"], n["pruning_784_frob"], what="the provable bound at n = 784",
                                   limit_what="the Frobenius bound"),
                  "the provable bound gains nothing over the Frobenius bound at the paper's MNIST width")),
        Claim(id="lemma-4-1-markov", **chapter, evidence="tab-pruning-markov",
              statement="Markov's inequality turns $\\E\\opnorm{\\Delta}$ into a bound holding with "
                        "probability $\\ge 1-1/\\lambda$ (Lemma 4.1)",
              measured=(Value("spread", "largest Monte Carlo norm above their mean by", n["pruning_markov_spread"], ".2%"),
                        Value("lambda_union", "$\\lambda$ for all layers at once with probability 0.9", R.markov.lambda_union, ".0f")),
              judgement=criteria.caveat_unless(
                  criteria.at_least(R.markov.observed_union, 1 - 1 / R.markov.lambda_union,
                                    what="the share of trials with ‖Δ‖₂ ≤ λ E‖Δ‖₂", limit_what="Markov's guarantee 1 − 1/λ"),
                  criteria.at_most(R.markov.lambda_union, 2.0, what="λ"), "λ multiplies the bound")),
        Claim(id="perturbation-lemma", **chapter, evidence="tab-pruning-looseness",
              statement="Perturbation lemma {cite:p}`neyshabur2018pacbayes`: the output moves by at most "
                        "$eB\\prod_l\\opnorm{A^l}\\sum_l\\opnorm{\\Delta^l}/\\opnorm{A^l}$",
              measured=(Value("textbook_ratio", f"textbook bound / true largest $\\norm{{\\Delta f}}_2$ at $d={loose.d:g}$",
                              n["pruning_textbook_ratio"], ".3g"),
                        Value("provable_ratio", "with the random-matrix bound and Markov instead of measured norms",
                              n["pruning_provable_ratio"], ".3g"),
                        Value("top_factor", "largest factor", top_factor(R), "s")),
              judgement=criteria.caveat_unless(
                  criteria.at_least(n["pruning_textbook_ratio"], 1.0, what="the textbook bound / the true change"),
                  criteria.at_most(n["pruning_textbook_ratio"], 10.0, what="the textbook bound / the true change"),
                  "loose by orders of magnitude")),
        Claim(id="authors-gamma", **{**chapter, "origin": "paper"}, evidence="tab-pruning-gamma",
              statement="The factors $\\Gamma_l$ of the needed margin (not defined in the paper; the authors' code)",
              measured=(Value("prod_gamma", "$\\prod_l\\Gamma_l$ for the trained network", n["pruning_prod_gamma"], ".3f"),),
              authors="used in every figure",
              judgement=criteria.at_least(n["pruning_prod_gamma"], 1.0, what="∏Γ_l",
                                          limit_what="1, as an unexplained factor may only enlarge a bound")),
        Claim(id="needed-margin", **{**chapter, "origin": "paper"}, evidence="fig-pruning-error",
              statement="Pruning error fits inside the margin (needed margin, with $\\Gamma_l$)",
              measured=(Value("needed", f"needed margin at $d={d_last:g}$", n["pruning_bound_d10"], ".4g"),
                        Value("true_change", "true largest logit change", n["pruning_true_y_d10"], ".3g"),
                        Value("margin", f"training margin ({R.margin_q:g}th percentile)", n["pruning_q_margin"], ".3g"),
                        Value("condition_masks", "masks meeting $\\opnorm{\\Delta^l} \\le \\opnorm{A^l}/L$", int(cond_masks), "d")),
              authors="bound ≈ 5,300, true ≈ 0 (MNIST); 305 vs 15 (CIFAR-10)",
              judgement=criteria.caveat_unless(
                  criteria.vacuous_unless(
                      criteria.at_least(n["pruning_bound_d10"], n["pruning_true_y_d10"], what="the needed margin",
                                        limit_what="the true change"),
                      criteria.at_most(n["pruning_bound_d10"], n["pruning_q_margin"], what="the needed margin",
                                       limit_what="the training margin")),
                  criteria.all_layers(int(cond_masks), len(last), what="masks meet the lemma's condition at the largest d"),
                  "the lemma's condition ‖Δˡ‖₂ ≤ ‖Aˡ‖₂/L fails")),
        Claim(id="algorithm-1-diagonal", **{**chapter, "origin": "paper"}, evidence="tab-pruning-diagonal",
              statement="Algorithm 1 keeps the diagonal entries $W_{ii}$ (the authors' code prunes them): "
                        "the difference is immaterial",
              measured=(Value("norm_change", f"largest change of $\\opnorm{{\\Delta^l}}$ at $d={R.diagonal_d:g}$",
                              n["pruning_diag_norm_change"], ".2%"),
                        Value("true_plain", "largest logit change, diagonal pruned", R.diagonal_true[0], ".5g"),
                        Value("true_kept", "diagonal kept", R.diagonal_true[1], ".5g")),
              judgement=criteria.all_of(
                  criteria.at_most(n["pruning_diag_norm_change"], 0.05, what="the largest relative change of ‖Δˡ‖₂",
                                   limit_what="5%"),
                  criteria.within_factor(R.diagonal_true[1], R.diagonal_true[0], 1.05,
                                         what="the largest logit change with the diagonal kept", reference_what="without it"))),
        Claim(id="deterministic-pruning-rmt", origin="ours", chapter=LABEL, evidence="sec-pruning-deterministic",
              statement="Under the paper's Gaussian model, pruning at a fixed threshold meets Lemma 4.1's hypotheses "
                        "(independent, symmetric, mean-zero error) and its $\\opnorm{\\Delta}$ follows the "
                        "random-matrix prediction, as for the random rule",
              measured=(Value("fixed_over_pred", f"fixed threshold: measured / predicted $\\opnorm{{\\Delta}}$ ($n={R.det_n}$, $d=10$)",
                              det.fixed / det.threshold_bounds.asymptotic, ".3f"),
                        Value("rule_over_pred", "random rule: measured / predicted", det.rule / det.rule_bounds.asymptotic, ".3f"),
                        Value("fixed_over_rule", "fixed threshold / random rule at equal sparsity", det.fixed / det.rule, ".3f"),
                        Value("quantile_gap", "quantile threshold vs fixed, largest difference", n["pruning_det_quant_gap"], ".2%")),
              judgement=criteria.caveat(criteria.all_of(
                  criteria.within_factor(det.fixed, det.threshold_bounds.asymptotic, 1.1,
                                         what="the fixed threshold's ‖Δ‖₂", reference_what="its random-matrix prediction"),
                  criteria.within_factor(det.rule, det.rule_bounds.asymptotic, 1.1,
                                         what="the random rule's ‖Δ‖₂", reference_what="its random-matrix prediction")),
                  "given the trained weights neither error is mean zero, and a per-layer quantile couples the entries weakly")),
    ]


def per_mask(R: PruningErrorResult, field) -> np.ndarray:
    """``field(pruned)`` for every mask of the rule in the sweep, as an array (d, mask)."""
    return np.array([[field(m) for m in masks] for masks in R.sweep.paper], dtype=float)
