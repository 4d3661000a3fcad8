"""Chapter "Are trained weights Gaussian?" (``notebooks/gaussian_weights.md``).

Everything the chapter measures on the main network of the profile, at initialisation,
after the profile's snapshot epochs and at the end of training, as one cached
:class:`GaussianWeightsResult`:

* every shape and independence diagnostic of every layer
  (:func:`prunebounds.gaussianity.describe_layer`) at every epoch seen;
* histograms, p-value curves against the sample size, row and column norms and the
  singular-value spectrum of the layer shown in detail;
* the rule's kept fraction and error moments of every layer over a grid of d, from the
  paper's Gaussian closed forms, the fitted Student-t and generalized-normal laws, the
  empirical law of the entries, and as measured on the pruned network
  (:func:`prunebounds.gaussianity.compare_predictions`);
* the spectral norm of the pruning error against its i.i.d. predictions, with the
  non-random part E[Delta | W] of the weights-fixed view
  (:func:`prunebounds.gaussianity.error_norms`).

Every statistic is a scipy/numpy computation on the CPU (maximum-likelihood fits, tests,
eigenvalues of 784 x 784 Gram matrices); nothing here gains from a GPU, so the chapter
reads the trained weights onto the CPU whatever the profile's device.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import cache, gaussianity, models, pruning, runs
from ..claims import Claim, Value, criteria
from ..profiles import Profile

LABEL = "chap-gaussian-weights"
REQUIRES: tuple[str, ...] = ()

#: Subsample of the Student-t and generalized-normal fits, per profile.
N_FIT = {"smoke": 2_000, "quick": 20_000, "full": 100_000}
#: The layer shown in detail (1 is the first).
LAYER = 2
#: The values of d of the tables and of the spectral-norm comparison.
D_TABLE = (0.5, 1.0, 2.0, 5.0, 10.0)
#: Bins of the standardized histograms.
HIST_EDGES = tuple(np.linspace(-5.0, 5.0, 81).tolist())
#: Thresholds of the verdict (ours): closed forms within SHAPE_TOL (percent) for every d
#: of the grid; row-norm spread at most SPREAD_TOL times and the largest singular value
#: at most EDGE_TOL times their i.i.d. values.
SHAPE_TOL, SPREAD_TOL, EDGE_TOL = 5.0, 1.5, 1.1
SOURCES = ("gaussian", "t", "gennorm", "empirical", "measured")


@dataclass(frozen=True)
class GaussianWeightsResult:
    profile: str
    epochs: int
    layer: int                                   # the layer shown in detail, 1-based
    n_fit: int
    shapes: tuple[tuple[int, int], ...]          # (out, in) per layer
    epochs_seen: tuple[int, ...]                 # 0, the snapshots, the last epoch
    layers: dict[int, tuple[gaussianity.LayerDescription, ...]]   # epoch -> per layer
    hist_trained: tuple[tuple[float, ...], ...]  # density of standardized entries, per layer
    hist_init: tuple[tuple[float, ...], ...]
    moved: float                                 # ||W_end - W_0||_F / ||W_0||_F, shown layer
    pvalues_layer: gaussianity.PValueCurve       # subsamples of the shown layer
    pvalues_gaussian: gaussianity.PValueCurve    # a Gaussian sample of the same size
    sq_norms: dict[str, tuple[float, ...]]       # "<rows|cols>-<trained|init|permuted>", / mean
    spectrum: dict[str, tuple[float, ...]]       # "init", "trained": Gram eigenvalues / (N Psi)
    spectrum_ratio: float                        # y = p / N
    d_grid: tuple[float, ...]
    predictions: dict[str, tuple[tuple[gaussianity.PredictionComparison, ...], ...]]
    #                                            # "init"/"trained" -> [layer][d]
    error_norms: tuple[tuple[gaussianity.ErrorNorms, ...], ...]  # [layer][D_TABLE]


# --------------------------------------------------------------------------- compute
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def d_grid(P: Profile) -> tuple[float, ...]:
    """The values of d of the predictions: an even grid over (0, 10], D_TABLE and 0.25."""
    grid = np.linspace(0.0, 10.0, min(P.n_d, 11))[1:]
    return tuple(sorted({round(float(d), 10) for d in grid} | set(D_TABLE) | {0.25}))


def compute(P: Profile, *, progress: bool = True) -> GaussianWeightsResult:
    """Everything the chapter shows, for profile ``P`` (cached; see the module docstring)."""
    cfg = runs.RunConfig.from_profile(P)
    config = dict(run=cfg.key, profile=P.name, n_fit=N_FIT[P.name], seed=P.seed,
                  d=list(d_grid(P)), chapter=_source_hash())
    return cache.cached_result("chapter-gaussian-weights", config,
                               lambda: _compute(P, cfg, progress), GaussianWeightsResult)


def _weights(net) -> list[np.ndarray]:
    return [W.detach().to(torch.float64).cpu().numpy() for W in models.weight_matrices(net)]


def _hist(W: np.ndarray) -> tuple[float, ...]:
    z = (W.ravel() - W.mean()) / W.std()
    return tuple(np.histogram(z, bins=HIST_EDGES, density=True)[0].tolist())


def _compute(P: Profile, cfg: runs.RunConfig, progress: bool) -> GaussianWeightsResult:
    run = runs.train_cached(cfg, progress=progress)
    epochs = (0, *sorted(run.snapshots), P.epochs)
    nets = {e: run.model_at(e) for e in epochs}
    weights = {e: _weights(net) for e, net in nets.items()}
    n_fit, L = N_FIT[P.name], len(weights[0])
    layers = {e: tuple(gaussianity.describe_layer(W, n_fit=n_fit, seed=P.seed,
                                                  full=e in (0, P.epochs)) for W in weights[e])
              for e in tqdm(epochs, desc="layers along training", disable=not progress)}
    k = min(LAYER, L) - 1
    W0, W1 = weights[0][k], weights[P.epochs][k]
    sizes = np.unique(np.logspace(2, np.log10(W1.size), 9).astype(int)).tolist()
    control = np.random.default_rng(P.seed).normal(size=W1.size)
    sq = {}
    for axis in ("rows", "cols"):
        for name, M in (("trained", W1), ("init", W0),
                        ("permuted", gaussianity.shuffled(W1, P.seed))):
            v = gaussianity.squared_norms(M, axis)
            sq[f"{axis}-{name}"] = tuple((v / v.mean()).tolist())
    spectrum = {name: tuple(gaussianity.normalized_spectrum(M)[0].tolist())
                for name, M in (("init", W0), ("trained", W1))}
    grid = d_grid(P)
    predictions = {}
    for name, e in (("init", 0), ("trained", P.epochs)):
        per = [[] for _ in range(L)]
        for d, pruned in pruning.paper_rule_sweep(nets[e], grid, P.seed):
            for l in range(L):
                per[l].append(gaussianity.compare_predictions(
                    weights[e][l], pruned[l].to(torch.float64), d, layers[e][l].fits))
        predictions[name] = tuple(tuple(p) for p in per)
    norms = [[] for _ in range(L)]
    for d, pruned in pruning.paper_rule_sweep(nets[P.epochs], D_TABLE, P.seed):
        for l in range(L):
            norms[l].append(gaussianity.error_norms(weights[P.epochs][l],
                                                    pruned[l].to(torch.float64), d, P.seed))
    return GaussianWeightsResult(
        profile=P.name, epochs=P.epochs, layer=k + 1, n_fit=n_fit,
        shapes=tuple(tuple(W.shape) for W in weights[0]), epochs_seen=epochs, layers=layers,
        hist_trained=tuple(_hist(W) for W in weights[P.epochs]),
        hist_init=tuple(_hist(W) for W in weights[0]),
        moved=float(np.linalg.norm(W1 - W0) / np.linalg.norm(W0)),
        pvalues_layer=gaussianity.pvalues_by_sample_size(W1.ravel(), sizes, seed=P.seed),
        pvalues_gaussian=gaussianity.pvalues_by_sample_size(control, sizes, seed=P.seed),
        sq_norms=sq, spectrum=spectrum,
        spectrum_ratio=float(min(W1.shape) / max(W1.shape)), d_grid=grid,
        predictions=predictions, error_norms=tuple(tuple(n) for n in norms))


# --------------------------------------------------------------------------- derived numbers
def rel_err(R: GaussianWeightsResult, state: str, layer: int, source: str,
            quantity: str) -> np.ndarray:
    """Prediction of ``source`` over the measured value, minus 1, in percent, over d.

    ``state`` is "init" or "trained", ``layer`` 0-based, ``quantity`` one of "keep",
    "m2", "m4" (fields of :class:`prunebounds.gaussianity.RuleExpectations`).
    """
    comps = R.predictions[state][layer]
    pred = np.array([getattr(getattr(c, source), quantity) for c in comps])
    meas = np.array([getattr(c.measured, quantity) for c in comps])
    return 100.0 * (pred / meas - 1.0)


def worst_err(R: GaussianWeightsResult, layer: int, source: str, quantity: str) -> float:
    """The largest |rel_err| over the grid of d (trained network), in percent."""
    return float(np.max(np.abs(rel_err(R, "trained", layer, source, quantity))))


def layer_passes(R: GaussianWeightsResult) -> tuple[list[bool], list[bool]]:
    """Per trained layer: Gaussian enough (shape) and independent enough (our thresholds)."""
    final = R.layers[R.epochs]
    shape = [max(worst_err(R, l, "gaussian", "keep"), worst_err(R, l, "gaussian", "m2"))
             <= SHAPE_TOL for l in range(len(final))]
    indep = [s.spread_rows.ratio_iid <= SPREAD_TOL and s.mp.top_over_edge <= EDGE_TOL
             for s in final]
    return shape, indep


def tails(beta: float) -> str:
    """The tails a generalized-normal shape beta describes (2 is the normal)."""
    return "lighter" if beta > 2.5 else ("heavier" if beta < 1.6 else "near normal")


def mean_share(R: GaussianWeightsResult) -> np.ndarray:
    """||E[Delta | W]||_2 / ||Delta||_2 per (layer, d of D_TABLE): the non-random share."""
    return np.array([[e.conditional_mean / e.actual for e in row] for row in R.error_norms])


def mean_over_iid(R: GaussianWeightsResult) -> np.ndarray:
    """||E[Delta | W]||_2 over its value for i.i.d. entries, per (layer, d of D_TABLE).

    For i.i.d. symmetric weights M = E[Delta | W] has i.i.d. mean-zero entries and its
    norm is about sqrt(mean M_ij^2)(sqrt(d_1) + sqrt(d_2)); a ratio well above 1 means
    structure of the trained W (a spike) that passes into the error.
    """
    return np.array([[e.conditional_mean / e.conditional_mean_iid for e in row]
                     for row in R.error_norms])


def numbers(R: GaussianWeightsResult) -> dict[str, float | int | str]:
    """The numbers the chapter's text quotes, by glue name (``gauss_*``)."""
    k, final, init = R.layer - 1, R.layers[R.epochs], R.layers[0]
    show, show0 = final[k], init[k]
    e1 = R.epochs_seen[1]
    kurt = [R.layers[e][k].excess_kurtosis for e in (0, e1, R.epochs)]
    pv = R.pvalues_layer
    reject = [n for n, p in zip(pv.n, pv.ks_p) if p < 0.05]
    i1, i10 = R.d_grid.index(1.0), R.d_grid.index(10.0)
    j1, j10 = D_TABLE.index(1.0), D_TABLE.index(10.0)
    emp = [max(worst_err(R, l, "empirical", q) for q in ("keep", "m2")) for l in range(len(final))]
    shape, indep = layer_passes(R)
    betas = [s.fits["gennorm"]["beta"] for s in final]
    en = R.error_norms[k]
    mean_ratio = max(abs(c.empirical.mean) / math.sqrt(c.empirical.m2)
                     for row in R.predictions["trained"] for c in row)
    return {
        "gauss_layer": R.layer, "gauss_L": len(final), "gauss_epochs": R.epochs,
        "gauss_epochs_seen": ", ".join(map(str, R.epochs_seen)), "gauss_n_fit": R.n_fit,
        "gauss_first_epoch": e1, "gauss_moved": R.moved,
        "gauss_kurt_init": show0.excess_kurtosis, "gauss_kurt": show.excess_kurtosis,
        "gauss_kurt_min": min(s.excess_kurtosis for s in final),
        "gauss_kurt_max": max(s.excess_kurtosis for s in final),
        "gauss_tail3": show.tail_ratio["3"],
        "gauss_kurt_e1": kurt[1],
        "gauss_kurt_share": (kurt[1] - kurt[0]) / (kurt[2] - kurt[0]) if kurt[2] != kurt[0] else math.nan,
        "gauss_edge_e1": R.layers[e1][k].mp.top_over_edge,
        "gauss_edge_final": show.mp.top_over_edge,
        "gauss_n_reject": reject[0] if reject else 0,
        "gauss_D_small": pv.ks_D[0], "gauss_D_large": pv.ks_D[-1],
        "gauss_n_ks_reject": sum(s.tests.ks_p < 0.05 for s in final),
        "gauss_beta": show.fits["gennorm"]["beta"],
        "gauss_beta_min": min(betas), "gauss_beta_max": max(betas),
        "gauss_n_light": sum(b > 2.5 for b in betas), "gauss_n_heavy": sum(b < 1.6 for b in betas),
        "gauss_spread": show.spread_rows.ratio_iid, "gauss_spread_init": show0.spread_rows.ratio_iid,
        "gauss_spread_min": min(s.spread_rows.ratio_iid for s in final),
        "gauss_spread_max": max(s.spread_rows.ratio_iid for s in final),
        "gauss_n_above": show.mp.n_above,
        "gauss_chi1": float(pruning.expected_keep_fraction(1.0)),
        "gauss_chi1_meas": R.predictions["trained"][k][i1].measured.keep,
        "gauss_chi1_err": float(rel_err(R, "trained", k, "gaussian", "keep")[i1]),
        "gauss_m2_1_err": float(rel_err(R, "trained", k, "gaussian", "m2")[i1]),
        "gauss_chi1_err_init": float(rel_err(R, "init", k, "gaussian", "keep")[i1]),
        "gauss_chi10_err": float(rel_err(R, "trained", k, "gaussian", "keep")[i10]),
        "gauss_gn_err": worst_err(R, k, "gennorm", "keep"), "gauss_t_err": worst_err(R, k, "t", "keep"),
        "gauss_emp_err": max(emp), "gauss_emp_layer": int(np.argmax(emp)) + 1,
        "gauss_emp_err_median": float(np.median(emp)),
        "gauss_mean_ratio": mean_ratio,
        "gauss_norm_ratio1": en[j1].actual / en[j1].gaussian_iid,
        "gauss_norm_ratio10": en[j10].actual / en[j10].gaussian_iid,
        "gauss_norm_shuf10": en[j10].shuffled / en[j10].gaussian_iid,
        "gauss_M_share1": en[j1].conditional_mean / en[j1].actual,
        "gauss_M_share10": en[j10].conditional_mean / en[j10].actual,
        "gauss_M_iid10": en[j10].conditional_mean / en[j10].conditional_mean_iid,
        "gauss_M_share_max": float(mean_share(R).max()),
        "gauss_M_iid_max": float(mean_over_iid(R).max()),
        "gauss_n_gauss": sum(shape), "gauss_n_indep": sum(indep),
    }


# --------------------------------------------------------------------------- claims
def claims(R: GaussianWeightsResult) -> list[Claim]:
    """The chapter's claim records (see :mod:`prunebounds.claims`)."""
    n = numbers(R)
    L = n["gauss_L"]
    share = mean_share(R)
    return [
        Claim(id="gaussian-weights", origin="paper", chapter=LABEL, evidence="tab-gauss-verdict",
              statement="Trained weights are i.i.d. Gaussian (assumption)",
              measured=(Value("n_gauss", "layers Gaussian enough", n["gauss_n_gauss"], "d"),
                        Value("n_indep", "layers independent enough", n["gauss_n_indep"], "d"),
                        Value("layers", "layers", L, "d"),
                        Value("chi1_err", "error of $\\keep(1)$ on a trained layer (%)", n["gauss_chi1_err"], ".1f")),
              authors="not validated",
              judgement=criteria.all_of(
                  criteria.all_layers(n["gauss_n_gauss"], L,
                                      what=f"layers Gaussian enough (closed forms within {SHAPE_TOL:g}%)"),
                  criteria.all_layers(n["gauss_n_indep"], L, what="layers independent enough"))),
        Claim(id="weights-fixed-view", origin="ours", chapter=LABEL, evidence="sec-gauss-two-views",
              statement="Given the trained weights, the non-random part $E[\\Delta\\mid W]$ of the pruning "
                        "error is no larger than for i.i.d. weights, so the weights-random view of Lemma 4.1 "
                        "describes $\\opnorm{\\Delta}$",
              measured=(Value("mean_iid_max", "largest $\\opnorm{E[\\Delta\\mid W]}$ / its i.i.d. value over layers and $d$",
                              n["gauss_M_iid_max"], ".2f"),
                        Value("share_d10", f"$\\opnorm{{E[\\Delta\\mid W]}}/\\opnorm{{\\Delta}}$, layer {R.layer}, $d=10$",
                              n["gauss_M_share10"], ".2f"),
                        Value("norm_ratio10", f"$\\opnorm{{\\Delta}}$ / Gaussian i.i.d. prediction, layer {R.layer}, $d=10$",
                              n["gauss_norm_ratio10"], ".2f")),
              judgement=criteria.at_most(n["gauss_M_iid_max"], EDGE_TOL,
                                         what="the largest ‖E[Δ|W]‖₂ / its i.i.d. value over the layers and d ≤ 10")),
    ]
