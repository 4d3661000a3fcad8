"""The sparsity-pattern chapter: non-zeros per row and column after pruning (Lemma 5.1).

What the chapter measures (:func:`compute`, one :class:`SparsityResult`):

* for every layer and both directions (rows, columns), over a grid of d: the largest,
  smallest and dead line counts of the paper's rule (several masks) and of
  deterministic magnitude pruning at the same per-layer sparsity, with the Gaussian
  predictions (exact expected maximum and 99% quantile, the reconstructed Lemma 5.1,
  the authors' 3 L chi) (:class:`LineSeries`);
* at one d, whether the counts follow the binomial law (:class:`Dispersion`), and the
  histogram and first-layer column counts behind the figures (:class:`Detail`);
* which hidden neurons pruning disconnects, and what happens to the input pixels that
  are constant on the training set (:class:`PixelFinding`).

:func:`claims` turns the result into the chapter's claim records.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import data, models, pruning, runs
from ..devices import resolve_device
from .. import sparsity as sp
from ..cache import cached_result
from ..claims import Claim, Value, criteria
from ..profiles import Profile
from ..validate import check_int, check_real

LABEL = "chap-sparsity-pattern"
REQUIRES = ()  # reads only the main network, which full-results trains first

#: Masks of the paper's rule per d.
N_SEEDS = {"smoke": 2, "quick": 2, "full": 5}
#: The reconstructed Lemma 5.1 and the authors' prediction use Markov's lambda = 3.
LAMBDA = 3.0
#: Lines shorter than this are left out of the realized / binomial ratio (10 outputs).
LONG_LINE = 50


@dataclass(frozen=True)
class LineSeries:
    """The rows (or columns) of one layer over the grid of d."""

    layer: int                # 0-based
    axis: str                 # "rows" or "cols"
    n_lines: int
    length: int
    paper_max: tuple[tuple[int, ...], ...]     # [d][mask]
    paper_dead: tuple[tuple[int, ...], ...]
    paper_spread: tuple[tuple[float, ...], ...]
    magnitude_max: tuple[int, ...]             # [d]
    magnitude_min: tuple[int, ...]
    magnitude_dead: tuple[int, ...]
    magnitude_spread: tuple[float, ...]
    expected_max: tuple[float, ...]            # Gaussian: E max of n Binomial(L, chi(d))
    quantile99: tuple[float, ...]
    lemma51: tuple[float, ...]                 # reconstructed Lemma 5.1, lambda = 3, one line
    authors: tuple[float, ...]                 # 3 L chi(d)
    chernoff99_last: float                     # at the largest d: all lines, probability 0.99
    lemma51_failure_last: float                # its failure probability, all lines (capped)
    expected_dead: tuple[float, ...]           # n (1 - chi)^L

    @property
    def label(self) -> str:
        return f"{self.layer + 1} {self.axis}"

    def paper_mean(self, field: str) -> np.ndarray:
        """The mean over masks of a per-mask series, over d."""
        return np.asarray(getattr(self, field), dtype=float).mean(axis=1)


@dataclass(frozen=True)
class Dispersion:
    """Is one layer's line count binomial? (at the chapter's histogram d)"""

    label: str
    lines: int
    length: int
    p_hat: float
    chi: float
    ratio: float              # dispersion index (1 for binomial counts)
    explained: float          # its prediction from the trained weights
    chi2: float
    dof: int
    p_value: float
    ks: float


@dataclass(frozen=True)
class Detail:
    """Counts at the histogram's d: one layer's rows and columns, the first layer's columns."""

    hist_rows: tuple[int, ...]
    hist_cols: tuple[int, ...]
    first_cols_paper: tuple[int, ...]
    first_cols_magnitude: tuple[int, ...]


@dataclass(frozen=True)
class PixelFinding:
    """The first layer's inputs that are constant on the training set (the image border)."""

    n_constant: int
    moved_ratio: float | None        # mean |W - W_0| of their weights / of the others
    magnitude_ratio: float | None    # mean |W| of their weights / of the layer
    cols_magnitude_ratio: float | None  # their column counts / the mean, magnitude pruning
    cols_paper_ratio: float | None      # ... the paper's rule


@dataclass(frozen=True)
class SparsityResult:
    """Everything the sparsity-pattern chapter shows."""

    profile: str
    d_grid: tuple[float, ...]
    n_seeds: int
    hist_d: float
    hist_layer: int                       # 1-based
    shapes: tuple[tuple[int, int], ...]   # (out, in)
    lines: tuple[LineSeries, ...]
    disconnected_paper: tuple[tuple[int, ...], ...]   # [d][mask], all hidden layers
    disconnected_magnitude: tuple[int, ...]
    conditional_dead_out: tuple[float, ...]   # expected dead output columns given the weights
    dispersion: tuple[Dispersion, ...]
    detail: Detail
    pixels: PixelFinding
    input_shape: tuple[int, ...]

    def series(self, layer: int, axis: str) -> LineSeries:
        """The :class:`LineSeries` of ``layer`` (0-based) and ``axis``."""
        return next(s for s in self.lines if s.layer == layer and s.axis == axis)

    @property
    def chis(self) -> np.ndarray:
        return np.asarray(pruning.expected_keep_fraction(np.asarray(self.d_grid)))

    @property
    def n_hidden(self) -> int:
        return int(sum(o for o, _ in self.shapes[:-1]))

    @property
    def ratios_last(self) -> list[float]:
        """Realized / expected maximum at the largest d, lines of more than 50 entries in
        layers whose both sides are longer than 50."""
        return [float(np.mean(s.paper_max[-1]) / s.expected_max[-1]) for s in self.lines
                if min(self.shapes[s.layer]) > LONG_LINE and s.expected_max[-1] > 0]


# --------------------------------------------------------------------------- pieces
def theory_series(n: int, L: int, chis: np.ndarray) -> dict[str, tuple[float, ...]]:
    """The Gaussian predictions over d for n lines of length L (keep fractions ``chis``)."""
    tup = lambda xs: tuple(float(x) for x in xs)  # noqa: E731
    return dict(
        expected_max=tup(sp.expected_max_nonzeros(n, L, k) for k in chis),
        quantile99=tup(sp.max_nonzeros_quantile(n, L, k, 0.99) for k in chis),
        lemma51=tup(sp.lemma51_bound(L, k, LAMBDA, kind="markov-chebyshev")[0] for k in chis),
        authors=tup(sp.authors_predicted_nonzeros(L, k) for k in chis),
        expected_dead=tup(sp.expected_dead_lines(n, L, k) for k in chis))


def sweep(net: torch.nn.Module, d_grid: np.ndarray, n_seeds: int, seed: int,
          progress: bool = False) -> tuple[dict, dict, list, list]:
    """Line statistics of every layer over d: the paper's rule (``n_seeds`` masks) and
    magnitude pruning at the first mask's per-layer sparsity.

    Returns (paper, magnitude, disconnected_paper, disconnected_magnitude): the first two
    map (layer, axis) to lists over d of :class:`prunebounds.sparsity.LineCounts`
    (paper: a list over masks at each d).
    """
    masks = zip(*(pruning.paper_rule_sweep(net, d_grid, seed + s) for s in range(n_seeds)))
    paper, magnitude, disc_p, disc_m = {}, {}, [], []
    for drawn in tqdm(masks, total=len(d_grid), desc="sparsity sweep", disable=not progress):
        per_seed = [W for _, W in drawn]
        kept = [float(torch.count_nonzero(w)) / w.numel() for w in per_seed[0]]
        Wm = models.weight_matrices(pruning.prune_magnitude(net, [1.0 - k for k in kept]))
        summaries = [sp.sparsity_summary(W) for W in per_seed]
        for l, layer in enumerate(sp.sparsity_summary(Wm)):
            for axis in ("rows", "cols"):
                paper.setdefault((l, axis), []).append([getattr(s[l], axis) for s in summaries])
                magnitude.setdefault((l, axis), []).append(getattr(layer, axis))
        disc_p.append(tuple(sum(sp.disconnected_neurons(W)) for W in per_seed))
        disc_m.append(sum(sp.disconnected_neurons(Wm)))
    return paper, magnitude, disc_p, disc_m


def line_series(l: int, axis: str, shape: tuple[int, int], paper: list, magnitude: list,
                chis: np.ndarray) -> LineSeries:
    """A :class:`LineSeries` from the sweep's counts of layer ``l`` and the theory."""
    o, i = shape
    n, L = (o, i) if axis == "rows" else (i, o)
    th = theory_series(n, L, chis)
    _, fail = sp.lemma51_bound(L, float(chis[-1]), LAMBDA, n_lines=n, kind="markov-chebyshev")
    per = lambda f: tuple(tuple(getattr(c, f) for c in cs) for cs in paper)  # noqa: E731
    mag = lambda f: tuple(getattr(c, f) for c in magnitude)  # noqa: E731
    return LineSeries(
        layer=l, axis=axis, n_lines=n, length=L, paper_max=per("max"), paper_dead=per("dead"),
        paper_spread=per("spread"), magnitude_max=mag("max"), magnitude_min=mag("min"),
        magnitude_dead=mag("dead"), magnitude_spread=mag("spread"),
        chernoff99_last=sp.max_nonzeros_tail_bound(n, L, float(chis[-1]), 0.01, "chernoff"),
        lemma51_failure_last=float(fail), **th)


def dispersion_rows(W: list[torch.Tensor], pruned: list[torch.Tensor], d: float) -> list[Dispersion]:
    """Dispersion index, its prediction from the weights and a chi-square test, per layer
    and direction (lines with too few members or a degenerate kept fraction skipped)."""
    chi = float(pruning.expected_keep_fraction(d))
    out = []
    for l, (w, g) in enumerate(zip(W, pruned)):
        o, i = w.shape
        for axis, L in (("rows", i), ("cols", o)):
            c = sp.nonzeros_per_row(g) if axis == "rows" else sp.nonzeros_per_col(g)
            p_hat = c.mean() / L
            if c.size < 20 or not 0 < p_hat < 1:
                continue  # too few lines (the output layer's rows) for a test
            ratio, _ = sp.dispersion_index(c, L, p_hat)
            gof = sp.binomial_gof(c, L, p_hat, estimated=True)
            m_c, v_c = sp.conditional_count_moments(w, d, axis)
            explained = (m_c.var(ddof=1) + v_c.mean()) / (L * p_hat * (1 - p_hat))
            out.append(Dispersion(f"{l + 1} {axis}", int(c.size), int(L), float(p_hat), chi,
                                  float(ratio), float(explained), float(gof.chi2), int(gof.dof),
                                  float(gof.p_value), float(gof.ks)))
    return out


def pixel_finding(X: torch.Tensor, W1: torch.Tensor, W1_init: torch.Tensor,
                  cols_paper: np.ndarray, cols_mag: np.ndarray) -> PixelFinding:
    """How the first-layer weights of inputs constant on the training set behave."""
    const = (X.reshape(len(X), -1).std(dim=0) == 0).cpu().numpy()
    if not const.any() or const.all():
        return PixelFinding(int(const.sum()), None, None, None, None)
    W1, W1_init = W1.detach().cpu(), W1_init.detach().cpu()
    absw = W1.abs().mean(dim=0).numpy()
    moved = (W1 - W1_init).abs().mean(dim=0).numpy()
    ratio = lambda v: float(v[const].mean() / v.mean())  # noqa: E731
    return PixelFinding(int(const.sum()), float(moved[const].mean() / moved[~const].mean()),
                        ratio(absw), ratio(cols_mag), ratio(cols_paper))


# --------------------------------------------------------------------------- the chapter
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def compute(P: Profile, *, n_seeds: int | None = None, hist_layer: int = 2,
            hist_d: float = 5.0, progress: bool = True) -> SparsityResult:
    """Everything the chapter measures for profile ``P`` (cached)."""
    n_seeds = check_int("n_seeds", N_SEEDS[P.name] if n_seeds is None else n_seeds, minimum=1)
    hist_d = check_real("hist_d", hist_d, minimum=0.01, maximum=10.0)
    cfg = runs.RunConfig.from_profile(P)
    n_layers = len(cfg.widths) - 1
    hist_layer = sp.check_layer_index(hist_layer, n_layers, name="hist_layer")
    d_grid = np.linspace(0.0, 10.0, P.n_d)
    config = dict(run=cfg.key, profile=P.name, n_d=P.n_d, seed=P.seed, n_seeds=n_seeds,
                  hist_layer=hist_layer, hist_d=hist_d, chapter=_source_hash())

    def work() -> SparsityResult:
        run = runs.train_cached(cfg, progress=progress)
        net = run.model.to(resolve_device(P.device))
        W = models.weight_matrices(net)
        shapes = tuple((int(w.shape[0]), int(w.shape[1])) for w in W)
        chis = np.asarray(pruning.expected_keep_fraction(d_grid))
        paper, magnitude, disc_p, disc_m = sweep(net, d_grid, n_seeds, P.seed, progress)
        lines = tuple(line_series(l, axis, shapes[l], paper[l, axis], magnitude[l, axis], chis)
                      for l in range(len(shapes)) for axis in ("rows", "cols"))
        g = pruning.prune_paper(net, hist_d, P.seed)
        Wg = models.weight_matrices(g)
        Wm = models.weight_matrices(pruning.prune_magnitude(
            net, [1.0 - k for k in pruning.kept_fractions(g)]))
        lh = hist_layer - 1
        cols_p, cols_m = sp.nonzeros_per_col(Wg[0]), sp.nonzeros_per_col(Wm[0])
        detail = Detail(tuple(int(c) for c in sp.nonzeros_per_row(Wg[lh])),
                        tuple(int(c) for c in sp.nonzeros_per_col(Wg[lh])),
                        tuple(int(c) for c in cols_p), tuple(int(c) for c in cols_m))
        D = data.load(P.dataset, max_train=P.max_train)
        W0 = models.weight_matrices(run.model_at(0))[0]
        return SparsityResult(
            profile=P.name, d_grid=tuple(float(d) for d in d_grid), n_seeds=n_seeds,
            hist_d=hist_d, hist_layer=hist_layer, shapes=shapes, lines=lines,
            disconnected_paper=tuple(disc_p), disconnected_magnitude=tuple(disc_m),
            conditional_dead_out=tuple(sp.conditional_dead_lines(W[-1], float(d), "cols")
                                       for d in d_grid),
            dispersion=tuple(dispersion_rows(W, Wg, hist_d)), detail=detail,
            pixels=pixel_finding(D.train.X, W[0], W0, cols_p, cols_m),
            input_shape=tuple(D.input_shape))

    return cached_result("chapter-sparsity-pattern", config, work, SparsityResult)


def claims(R: SparsityResult) -> list[Claim]:
    """The chapter's claim records."""
    ratios = R.ratios_last
    ratio_lo, ratio_hi = float(min(ratios, default=math.nan)), float(max(ratios, default=math.nan))
    first = R.series(0, "rows")
    L1, d_last = first.length, R.d_grid[-1]
    out_cols = R.series(len(R.shapes) - 1, "cols")
    dead_out = float(np.mean(out_cols.paper_dead[-1]))
    hidden = out_cols.n_lines
    sparsity = criteria.caveat_unless(
        criteria.caveat_unless(
            criteria.at_most(ratio_hi, 1.5, what="the realized / binomial maximum per line"),
            criteria.at_most(ratio_hi, 1.1, what="the realized / binomial maximum per line"),
            "wider than binomial"),
        criteria.at_most(first.authors[0], L1, what="the authors' prediction at d = 0",
                         limit_what="the row length"),
        "the authors' prediction exceeds the row length near d = 0")
    chapter = dict(chapter=LABEL)
    return [
        Claim(id="lemma-5-1-sparsity", origin="reconstructed", **chapter, evidence="tab-sparsity-max",
              statement="Lemma 5.1: distributed sparsity, a line of length $n$ keeps about "
                        "$\\mathrm{Binomial}(n, \\keep(d))$ entries",
              measured=(Value("ratio_lo", "realized max non-zeros per line / binomial expectation, from",
                              ratio_lo, ".2f"),
                        Value("ratio_hi", "to", ratio_hi, ".2f"),
                        Value("authors_d0", "first layer, the authors' prediction at $d = 0$",
                              first.authors[0], ".0f"),
                        Value("authors_last", f"at $d = {d_last:g}$", first.authors[-1], ".0f"),
                        Value("row_max_d0", "realized at $d = 0$", float(np.mean(first.paper_max[0])), ".0f"),
                        Value("row_max_last", f"at $d = {d_last:g}$", float(np.mean(first.paper_max[-1])), ".0f")),
              authors="predicted 2,352 → 205, realized 784 → ≈115",
              judgement=sparsity),
        Claim(id="rev-q7-dead-neurons", origin="reviewer", **chapter, evidence="tab-sparsity-dead",
              statement="Q7. Distributed sparsity survives real pruning: no neuron of the last "
                        "hidden layer is cut off from the output",
              measured=(Value("dead_out", f"dead output-layer columns at $d = {d_last:g}$ under "
                              "the paper's rule", dead_out, ".0f"),
                        Value("hidden", "neurons of the last hidden layer", int(hidden), "d")),
              judgement=criteria.caveat_unless(
                  criteria.at_most(dead_out / hidden, 0.5, what="the share of dead columns",
                                   limit_what="half"),
                  criteria.at_most(dead_out, 0.0, what="the dead output-layer columns"),
                  "some neurons are cut off from the output")),
    ]


def numbers(R: SparsityResult) -> dict[str, float | int]:
    """The numbers the chapter's text quotes, by glue name."""
    chis = R.chis
    first, n_layers = R.series(0, "rows"), len(R.shapes)
    out_cols = R.series(n_layers - 1, "cols")
    ratios = R.ratios_last
    hidden_lines = [s for s in R.lines if s.layer < n_layers - 1]
    spread_p = [float(np.mean(s.paper_spread[-1])) for s in hidden_lines]
    spread_m = [float(s.magnitude_spread[-1]) for s in hidden_lines]
    disp = [x.ratio for x in R.dispersion]
    h = [x.ratio for x in R.dispersion if x.label == f"{R.hist_layer} rows"]
    px = R.pixels
    nan = math.nan
    dead_p = [float(np.mean(s.paper_dead[-1])) for s in R.lines]
    chi10 = float(pruning.expected_keep_fraction(10.0))
    return {
        "sparsity_n_seeds": R.n_seeds, "sparsity_n_d": len(R.d_grid),
        "sparsity_d_last": R.d_grid[-1], "sparsity_L1": first.length,
        "sparsity_first_row_max_d0": float(np.mean(first.paper_max[0])),
        "sparsity_first_row_max": float(np.mean(first.paper_max[-1])),
        "sparsity_first_emax": first.expected_max[-1], "sparsity_first_q99": first.quantile99[-1],
        "sparsity_first_lemma": first.lemma51[-1], "sparsity_first_authors": first.authors[-1],
        "sparsity_first_authors_d0": first.authors[0],
        "sparsity_ratio_lo": float(min(ratios, default=nan)),
        "sparsity_ratio_hi": float(max(ratios, default=nan)),
        "sparsity_mnist_emax": sp.expected_max_nonzeros(784, 784, chi10),
        "sparsity_cifar_emax": sp.expected_max_nonzeros(2000, 3072, chi10),
        "sparsity_d_vacuous": 8 / 5,
        "sparsity_pdead_784": sp.expected_dead_lines(1, 784, chi10),
        "sparsity_pdead_10": sp.expected_dead_lines(1, 10, chi10),
        "sparsity_n_mag_larger": int(sum(s.magnitude_max[-1] > np.mean(s.paper_max[-1])
                                         for s in R.lines)),
        "sparsity_n_lines_cases": len(R.lines),
        "sparsity_hist_d": R.hist_d, "sparsity_hist_layer": R.hist_layer,
        "sparsity_hist_disp": h[0] if h else nan,
        "sparsity_disp_lo": float(min(disp, default=nan)),
        "sparsity_disp_hi": float(max(disp, default=nan)),
        "sparsity_expl_err": float(max((abs(x.explained / x.ratio - 1) for x in R.dispersion),
                                       default=nan)),
        "sparsity_n_rejected": int(sum(x.p_value < 0.01 for x in R.dispersion)),
        "sparsity_n_tests": len(R.dispersion),
        "sparsity_phat_ratio": float(np.mean(R.detail.hist_rows) / R.shapes[R.hist_layer - 1][1]
                                     / float(pruning.expected_keep_fraction(R.hist_d))),
        "sparsity_dead_out_paper": float(np.mean(out_cols.paper_dead[-1])),
        "sparsity_dead_out_mag": float(out_cols.magnitude_dead[-1]),
        "sparsity_dead_out_exp": out_cols.expected_dead[-1],
        "sparsity_dead_out_cond": R.conditional_dead_out[-1],
        "sparsity_n_last_hidden": out_cols.n_lines,
        "sparsity_dead_out_frac": float(np.mean(out_cols.paper_dead[-1]) / out_cols.n_lines),
        "sparsity_disc_paper": float(np.mean(R.disconnected_paper[-1]) / R.n_hidden),
        "sparsity_disc_mag": float(R.disconnected_magnitude[-1] / R.n_hidden),
        "sparsity_dead_other": float(sum(dead_p) - np.mean(out_cols.paper_dead[-1])
                                     + sum(s.magnitude_dead[-1] for s in R.lines)
                                     - out_cols.magnitude_dead[-1]),
        "sparsity_spread_paper_hi": float(max(spread_p, default=nan)),
        "sparsity_spread_mag_hi": float(max(spread_m, default=nan)),
        "sparsity_spread_gauss": first.expected_max[-1] / (first.length * float(chis[-1])),
        "sparsity_mag_over_paper": float(np.mean(np.array(spread_m) / np.array(spread_p))),
        "sparsity_n_const": px.n_constant,
        "sparsity_const_moved": nan if px.moved_ratio is None else px.moved_ratio,
        "sparsity_const_absw": nan if px.magnitude_ratio is None else px.magnitude_ratio,
        "sparsity_const_cols_mag": nan if px.cols_magnitude_ratio is None else px.cols_magnitude_ratio,
        "sparsity_const_cols_paper": nan if px.cols_paper_ratio is None else px.cols_paper_ratio,
        "sparsity_layer1_dead_mag": int(R.series(0, "cols").magnitude_dead[-1]),
        "sparsity_layer1_dead_paper": float(np.mean(R.series(0, "cols").paper_dead[-1])),
        "sparsity_layer1_min_mag": int(R.series(0, "cols").magnitude_min[-1]),
        "sparsity_lemma_fail_first": first.lemma51_failure_last,
        "sparsity_out_cols_authors": out_cols.authors[-1],
        "sparsity_out_cols_max": float(np.mean(out_cols.paper_max[-1])),
    }
