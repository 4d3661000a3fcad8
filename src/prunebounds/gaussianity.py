"""Are trained weights Gaussian? Diagnostics of the paper's weight assumption.

Guha, Dubey & Huo (arXiv 2305.18789) assume that the entries of every trained weight
matrix A^l are i.i.d. N(0, Psi_l), with Psi_l the layer's empirical variance (the
authors' code). Every closed form of the pruning rule rests on it (see
:mod:`prunebounds.pruning`): the kept fraction chi(d) = 1 - sqrt(d/(d+2)) and the
moments E Delta^2 = Psi (d/(d+2))^{3/2}, E Delta^4 = 3 Psi^2 (d/(d+2))^{5/2} of the
pruning error. This module measures how far a weight matrix is from that assumption
and what the departure costs:

* the **shape** of the entry distribution: excess kurtosis, Q-Q correlation, tail
  ratios, goodness-of-fit tests with their effect sizes (:func:`describe_entries`);
* heavier-tailed **fits**: Student-t and generalized normal (:func:`fit_families`);
* the **independence** the proofs need: spread of row and column norms against the
  i.i.d. prediction (:func:`norm_spread`), correlations between rows or columns
  (:func:`correlation_rms`), the singular-value spectrum against Marchenko-Pastur
  (:func:`mp_summary`);
* the rule's **expectations** under any distribution of the weights, by numerical
  integration (:func:`rule_expectations_quad`, :func:`rule_expectations_fit`), under
  the empirical distribution of the entries (:func:`rule_expectations_empirical`), and
  as measured on one pruned matrix (:func:`rule_measured`); all side by side in
  :func:`compare_predictions`;
* the **fixed-matrix** view: Delta = M + N with M = E[Delta | W] deterministic
  (:func:`conditional_error_mean`, :func:`error_norms`).

The kept fraction and the error moments are integrals of the drop probability
q(w) = exp(-w^2/(d Psi)) of the rule against the law f of one weight:

    chi = 1 - int q f,   E Delta = int w q f,   E Delta^2 = int w^2 q f,
    E Delta^4 = int w^4 q f,                                                    (E)

because Delta_ij = W_ij 1[dropped] and P(dropped | W_ij = w) = q(w). Psi is always the
layer's empirical variance, as in the rule, whatever law f is plugged in.

Functions take numpy arrays or torch tensors and return floats, numpy arrays or
JSON-able dicts of floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import integrate, stats

from .errors import ParameterError
from .norms import spectral_norm
from .validate import check_choice, check_int, check_real
from .pruning import (
    error_fourth_moment,
    error_second_moment,
    expected_keep_fraction,
    keep_probability,
)

__all__ = [
    "FAMILIES",
    "as_array",
    "as_matrix",
    "excess_kurtosis",
    "qq_correlation",
    "qq_points",
    "tail_ratios",
    "wasserstein_to_normal",
    "normality_tests",
    "pvalues_by_sample_size",
    "fit_families",
    "frozen",
    "family_pdf",
    "describe_entries",
    "rule_expectations_gaussian",
    "rule_expectations_quad",
    "density",
    "rule_expectations_fit",
    "rule_expectations_empirical",
    "rule_measured",
    "squared_norms",
    "norm_spread",
    "correlation_rms",
    "marchenko_pastur_edges",
    "marchenko_pastur_pdf",
    "normalized_spectrum",
    "mp_summary",
    "conditional_error_mean",
    "error_matrix",
    "iid_norm_prediction",
    "shuffled",
    "compare_predictions",
    "error_norms",
    "describe_layer",
]

#: Families of :func:`fit_families`: the normal of the paper, Student-t, generalized normal.
FAMILIES = ("normal", "t", "gennorm")


# --------------------------------------------------------------------------- inputs
def as_array(w: Any, *, min_size: int = 8) -> np.ndarray:
    """The entries of ``w`` (array or tensor of any shape) as a flat float64 array.

    Raises:
        ParameterError: fewer than ``min_size`` entries, or a non-finite entry.
    """
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().to(torch.float64).numpy()
    try:
        a = np.asarray(w, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"weights must be numbers, got {type(w).__name__}") from exc
    if a.size < min_size:
        raise ParameterError(f"need at least {min_size} weights, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ParameterError("weights must be finite (found NaN or inf)")
    return a


def as_matrix(W: Any) -> np.ndarray:
    """A weight matrix (out x in, as PyTorch stores it) as a 2-D float64 array."""
    if isinstance(W, torch.Tensor):
        W = W.detach().cpu().to(torch.float64).numpy()
    a = np.asarray(W, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 2:
        raise ParameterError(f"need a 2-D matrix with at least 2 rows and columns, "
                             f"got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ParameterError("weights must be finite (found NaN or inf)")
    return a


def _standardized(w: np.ndarray) -> np.ndarray:
    sd = w.std()
    if sd == 0:
        raise ParameterError("all weights are equal: the distribution has no spread")
    return (w - w.mean()) / sd


def _subsample(w: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= w.size:
        return w
    n = check_int("n", n, minimum=8)
    return np.random.default_rng(seed).choice(w, size=n, replace=False)


# --------------------------------------------------------------------------- shape
def excess_kurtosis(w: Any) -> float:
    """Excess kurtosis E[(W - mu)^4]/sigma^4 - 3 (plug-in moments): 0 normal, 3 Laplace.

    -1.2 for a uniform law (PyTorch's default initialisation of ``nn.Linear``), 6/(nu-4)
    for Student-t with nu > 4 degrees of freedom. Positive values mean heavier tails
    and a sharper peak than the normal of the same variance.
    """
    return float(stats.kurtosis(as_array(w), fisher=True, bias=True))


def qq_correlation(w: Any) -> float:
    """Correlation r of the normal Q-Q plot (``scipy.stats.probplot``); 1 for a normal law.

    The Shapiro-Francia / Filliben statistic: the correlation between the sorted sample
    and the normal quantiles at Filliben's plotting positions. For a large normal sample
    1 - r is of order 1/n; for a fixed non-normal law r tends to a constant < 1, so
    1 - r is an effect size that does not shrink with n.
    """
    (_, _), (_, _, r) = stats.probplot(as_array(w), dist="norm", fit=True)
    return float(r)


def qq_points(w: Any, n_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Points of the normal Q-Q plot of the standardized sample, thinned for drawing.

    Returns ``(z, q)``: normal quantiles z_i = Phi^{-1}((i - 1/2)/n) and the matching
    order statistics q_i of (w - mean)/sd, at about ``n_points`` indices evenly spaced in
    z from the smallest to the largest order statistic (so the tails are drawn).
    """
    z_sorted = np.sort(_standardized(as_array(w)))
    n = z_sorted.size
    n_points = check_int("n_points", n_points, minimum=2)
    z_all_lo, z_all_hi = stats.norm.ppf([0.5 / n, (n - 0.5) / n])
    grid = np.linspace(z_all_lo, z_all_hi, n_points)
    idx = np.unique(np.clip(np.round(stats.norm.cdf(grid) * n - 0.5), 0, n - 1).astype(int))
    return stats.norm.ppf((idx + 0.5) / n), z_sorted[idx]


def tail_ratios(w: Any, ks=(2.0, 3.0, 4.0)) -> dict[str, float]:
    """P(|W - mu| > k sigma) measured over the Gaussian value 2 Phi(-k), for each k.

    1 for a normal law; > 1 heavier tails, < 1 lighter (0 for a uniform law at
    k >= sqrt(3)). Keys ``"2"``, ``"3"``, ... (JSON-friendly).
    """
    z = np.abs(_standardized(as_array(w)))
    out = {}
    for k in ks:
        k = check_real("k", k, minimum=0.0)
        out[f"{k:g}"] = float(np.mean(z > k) / (2.0 * stats.norm.sf(k)))
    return out


def wasserstein_to_normal(w: Any) -> float:
    """W_1 distance between the standardized sample and N(0, 1), in units of sigma.

    The quantile form int_0^1 |F_n^{-1}(p) - Phi^{-1}(p)| dp, evaluated as the mean of
    |z_(i) - Phi^{-1}((i - 1/2)/n)| over the order statistics. An effect size: it tends
    to a constant for a fixed non-normal law and to 0 (like n^{-1/2} up to logs) for
    normal samples.
    """
    z = np.sort(_standardized(as_array(w)))
    n = z.size
    return float(np.mean(np.abs(z - stats.norm.ppf((np.arange(n) + 0.5) / n))))


@dataclass(frozen=True)
class NormalityTests:
    """Goodness-of-fit tests of normality (see :func:`normality_tests`).

    The short form (``describe_entries(..., full=False)``) has only ``n``, ``ks_D`` and
    ``ks_p``; the other fields are then ``None``.
    """

    n: int
    ks_D: float
    ks_p: float
    ad_A2: float | None = None
    ad_p: float | None = None
    dagostino_p: float | None = None
    jarque_bera_p: float | None = None
    w1: float | None = None


def normality_tests(w: Any) -> NormalityTests:
    """Goodness-of-fit tests of normality (``scipy.stats``) with their effect sizes.

    * Kolmogorov-Smirnov of the standardized sample against N(0, 1): statistic
      D = sup |F_n - Phi| (effect size) and its p-value. Mean and variance are
      estimated from the same data, so the p-value is conservative (Lilliefors).
    * Anderson-Darling (``method='interpolate'``, SciPy >= 1.17): statistic A^2 and a
      p-value interpolated from tables, which clips it to [0.01, 0.15].
    * D'Agostino-Pearson (skewness and kurtosis) and Jarque-Bera: p-values.
    * ``w1``: :func:`wasserstein_to_normal`.

    With n entries every test detects any fixed departure once n is large: the KS
    critical value at level 5% is about 1.36/sqrt(n), 0.0017 for a 784 x 784 layer.
    The p-values answer "is the law exactly normal?"; D, A^2/n and w1 answer "how far?".
    """
    a = as_array(w, min_size=20)
    z = _standardized(a)
    ks = stats.kstest(z, "norm")
    ad = stats.anderson(a, dist="norm", method="interpolate")
    return NormalityTests(
        n=int(a.size),
        ks_D=float(ks.statistic),
        ks_p=float(ks.pvalue),
        ad_A2=float(ad.statistic),
        ad_p=float(ad.pvalue),
        dagostino_p=float(stats.normaltest(a).pvalue),
        jarque_bera_p=float(stats.jarque_bera(a).pvalue),
        w1=wasserstein_to_normal(a),
    )


@dataclass(frozen=True)
class PValueCurve:
    """KS distance and p-values of the normality tests, per subsample size ``n``."""

    n: tuple[int, ...]
    ks_D: tuple[float, ...]
    ks_p: tuple[float, ...]
    ad_p: tuple[float, ...]
    dagostino_p: tuple[float, ...]


def pvalues_by_sample_size(w: Any, sizes, seed: int = 0) -> PValueCurve:
    """KS D and p-values of the tests on random subsamples of ``w`` of each size.

    Shows that the p-value of a fixed non-normal law falls to zero as n grows while the
    effect size D stays put. Each size is a fresh subsample (without replacement) from a
    generator seeded with ``seed``.
    """
    a = as_array(w, min_size=20)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"n": [], "ks_D": [], "ks_p": [], "ad_p": [],
                                   "dagostino_p": []}
    for n in sizes:
        n = check_int("sample size", n, minimum=20)
        if n > a.size:
            raise ParameterError(f"sample size {n} exceeds the {a.size} weights available")
        s = rng.choice(a, size=n, replace=False)
        z = _standardized(s)
        ks = stats.kstest(z, "norm")
        out["n"].append(n)
        out["ks_D"].append(float(ks.statistic))
        out["ks_p"].append(float(ks.pvalue))
        out["ad_p"].append(float(stats.anderson(s, dist="norm", method="interpolate").pvalue))
        out["dagostino_p"].append(float(stats.normaltest(s).pvalue))
    return PValueCurve(**{k: tuple(v) for k, v in out.items()})


# --------------------------------------------------------------------------- fits
def fit_families(w: Any, n_fit: int | None = None, seed: int = 0,
                 families=FAMILIES) -> dict[str, dict]:
    """Maximum-likelihood fits of the normal, Student-t and generalized normal laws.

    * ``normal``: loc = mean, scale = standard deviation (the paper's N(0, Psi) up to
      the mean), from all entries.
    * ``t``: ``scipy.stats.t.fit`` -> df (nu), loc, scale; nu -> infinity is the normal.
    * ``gennorm``: ``scipy.stats.gennorm.fit`` -> beta, loc, scale; density proportional
      to exp(-|x/scale|^beta): beta = 2 normal, 1 Laplace, beta -> infinity uniform.

    The heavy-tailed fits hold the location at the sample median (weights are close to
    symmetric; fixing it makes the fit several times faster) and use a random subsample
    of ``n_fit`` entries (``None``: all). Each entry also has ``loglik``, the mean
    log-likelihood per entry on that subsample, to compare the fits. ``families`` picks
    a subset of :data:`FAMILIES` (the normal is always fitted).
    """
    a = as_array(w)
    seed = check_int("seed", seed, minimum=0)
    s = _subsample(a, n_fit, seed)
    med = float(np.median(a))
    fits: dict[str, dict] = {"normal": {"loc": float(a.mean()), "scale": float(a.std())}}
    for f in families:
        check_choice("family", f, FAMILIES)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if "t" in families:
            df, loc, scale = stats.t.fit(s, floc=med)
            fits["t"] = {"df": float(df), "loc": float(loc), "scale": float(scale)}
        if "gennorm" in families:
            beta, loc, scale = stats.gennorm.fit(s, floc=med)
            fits["gennorm"] = {"beta": float(beta), "loc": float(loc), "scale": float(scale)}
        for name, params in fits.items():
            params["loglik"] = float(np.mean(frozen(name, params).logpdf(s)))
    return fits


def family_pdf(family: str, params: dict, x: Any) -> np.ndarray:
    """Density of a fit from :func:`fit_families` at ``x`` (overflow-safe for large beta)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(frozen(family, params).pdf(np.asarray(x, dtype=np.float64)))


def frozen(family: str, params: dict):
    """The frozen ``scipy.stats`` distribution of a fit from :func:`fit_families`."""
    family = check_choice("family", family, FAMILIES)
    if family == "normal":
        return stats.norm(loc=params["loc"], scale=params["scale"])
    if family == "t":
        return stats.t(params["df"], loc=params["loc"], scale=params["scale"])
    return stats.gennorm(params["beta"], loc=params["loc"], scale=params["scale"])


@dataclass(frozen=True)
class EntryDescription:
    """The shape diagnostics of one weight matrix (see :func:`describe_entries`)."""

    n: int
    mean: float
    psi: float
    skewness: float
    excess_kurtosis: float
    qq_r: float
    tail_ratio: dict[str, float]         # keyed by k: "2", "3", "4"
    tests: NormalityTests
    fits: dict[str, dict[str, float]]    # family -> parameters and "loglik"


def describe_entries(w: Any, n_fit: int | None = None, seed: int = 0,
                     full: bool = True) -> EntryDescription:
    """All shape diagnostics of one weight matrix.

    Mean, Psi (population variance, as the rule uses), skewness, excess kurtosis,
    Q-Q correlation, tail ratios at 2, 3 and 4 sigma, :func:`normality_tests` and
    :func:`fit_families`. With ``full=False`` (for many snapshots) the tests are only
    the Kolmogorov-Smirnov ``ks_D`` and ``ks_p`` and the fits only normal and gennorm.
    """
    a = as_array(w)
    if not full:
        ks = stats.kstest(_standardized(a), "norm")
        tests = NormalityTests(n=int(a.size), ks_D=float(ks.statistic), ks_p=float(ks.pvalue))
        fits = fit_families(a, n_fit=n_fit, seed=seed, families=("normal", "gennorm"))
    else:
        tests, fits = normality_tests(a), fit_families(a, n_fit=n_fit, seed=seed)
    return EntryDescription(
        n=int(a.size),
        mean=float(a.mean()),
        psi=float(a.var()),
        skewness=float(stats.skew(a, bias=True)),
        excess_kurtosis=excess_kurtosis(a),
        qq_r=qq_correlation(a),
        tail_ratio=tail_ratios(a),
        tests=tests,
        fits=fits,
    )


# --------------------------------------------------------------------------- the rule's expectations (E)
@dataclass(frozen=True)
class RuleExpectations:
    """The kept fraction and the moments of Delta of the rule, from one source."""

    keep: float   # kept fraction chi
    mean: float   # E Delta
    m2: float     # E Delta^2
    m4: float     # E Delta^4


def rule_expectations_gaussian(d: float, psi: float) -> RuleExpectations:
    """The paper's closed forms under W ~ N(0, Psi) (from :mod:`prunebounds.pruning`).

    keep = chi(d) = 1 - sqrt(d/(d+2)), mean = 0, m2 = Psi (d/(d+2))^{3/2},
    m4 = 3 Psi^2 (d/(d+2))^{5/2}.
    """
    return RuleExpectations(keep=float(expected_keep_fraction(d)), mean=0.0,
                            m2=float(error_second_moment(d, psi)),
                            m4=float(error_fourth_moment(d, psi)))


def rule_expectations_quad(pdf: Callable[[float], float], d: float, psi: float,
                           points=()) -> RuleExpectations:
    """The integrals (E) for a weight law with density ``pdf``, by ``scipy.integrate.quad``.

    Returns ``keep`` = 1 - int q f, ``mean`` = int w q f, ``m2`` = int w^2 q f and
    ``m4`` = int w^4 q f with q(w) = exp(-w^2/(d Psi)) and f = ``pdf`` (a function of one
    float). Psi is the rule's variance (the layer's empirical one), not that of f.
    Integrated in the variable v = w/sqrt(d Psi), where the factor exp(-v^2) confines
    the integrand to |v| <= 9 (the rest is below e^{-81}); the interval is cut at 0
    and at ``points`` (values of w where f has a kink or a jump: 0 for Laplace, the
    ends of the support for a uniform law). d = 0 keeps everything (keep 1, moments 0).
    """
    d = check_real("d", d, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    if d == 0.0 or psi == 0.0:
        return RuleExpectations(keep=1.0, mean=0.0, m2=0.0, m4=0.0)
    s = math.sqrt(d * psi)
    cuts = {-9.0, 0.0, 9.0, *(float(p) / s for p in points)}
    cuts = sorted(c for c in cuts if -9.0 <= c <= 9.0)

    def integral(power: int) -> float:
        def f(v: float) -> float:
            w = v * s
            return pdf(w) * s * math.exp(-v * v) * w ** power
        return sum(integrate.quad(f, a, b, epsabs=0.0, epsrel=1e-10, limit=200)[0]
                   for a, b in zip(cuts[:-1], cuts[1:]))

    return RuleExpectations(keep=1.0 - integral(0), mean=integral(1), m2=integral(2),
                            m4=integral(4))


def density(family: str, params: dict) -> Callable[[float], float]:
    """The density of a fit from :func:`fit_families` as a fast scalar function.

    Equal to ``frozen(family, params).pdf`` but written with ``math`` (quad calls it
    thousands of times): f(loc) times exp(-z^2/2) (normal), (1 + z^2/nu)^{-(nu+1)/2}
    (Student-t) or exp(-|z|^beta) (generalized normal), z = (w - loc)/scale; the
    constant f(loc) comes from ``scipy.stats``, which stays accurate for huge nu or beta.
    """
    family = check_choice("family", family, FAMILIES)
    loc, scale = float(params["loc"]), float(params["scale"])
    with np.errstate(over="ignore", under="ignore"):
        peak = float(frozen(family, params).pdf(loc))
    if family == "normal":
        return lambda w: peak * math.exp(-0.5 * ((w - loc) / scale) ** 2)
    if family == "t":
        nu = float(params["df"])
        return lambda w: peak * math.exp(-0.5 * (nu + 1.0) * math.log1p(((w - loc) / scale) ** 2 / nu))
    beta = float(params["beta"])

    def gennorm_pdf(w: float) -> float:
        z = abs(w - loc) / scale
        if z == 0.0:
            return peak
        e = beta * math.log(z)
        return 0.0 if e > 700.0 else peak * math.exp(-math.exp(e))
    return gennorm_pdf


def rule_expectations_fit(family: str, params: dict, d: float, psi: float) -> RuleExpectations:
    """:func:`rule_expectations_quad` under a fitted law of :func:`fit_families`.

    Cuts the integral at the law's centre and, for the generalized normal, at
    loc +- scale, where a large beta (a nearly uniform law) has its steep edges.
    """
    loc, scale = float(params["loc"]), float(params["scale"])
    points = (loc, loc - scale, loc + scale) if family == "gennorm" else (loc,)
    return rule_expectations_quad(density(family, params), d, psi, points=points)


def rule_expectations_empirical(w: Any, d: float, psi: float | None = None) -> RuleExpectations:
    """The integrals (E) under the empirical law of the entries: plain averages.

    keep = mean of keep_probability(w, d, Psi), mean/m2/m4 = means of w^k q(w). For a
    fixed matrix this is the exact expectation over the rule's coin flips, so a pruned
    copy's kept fraction and error moments scatter around these values only by the
    coin-flip noise. ``psi`` defaults to the population variance of ``w``.
    """
    a = as_array(w)
    psi = float(a.var()) if psi is None else check_real("psi", psi, minimum=0.0)
    p_keep = keep_probability(a, d, psi)
    q = 1.0 - p_keep
    return RuleExpectations(keep=float(np.mean(p_keep)), mean=float(np.mean(a * q)),
                            m2=float(np.mean(a * a * q)), m4=float(np.mean(a ** 4 * q)))


def rule_measured(W: Any, W_pruned: Any) -> RuleExpectations:
    """Kept fraction and moments of Delta = W - W_pruned measured on one pruned matrix.

    keep = fraction of non-zero entries of ``W_pruned`` (as
    :func:`prunebounds.pruning.kept_fractions`), mean/m2/m4 = averages of Delta,
    Delta^2, Delta^4 over the entries.
    """
    a, b = as_array(W), as_array(W_pruned)
    if a.shape != b.shape:
        raise ParameterError(f"W has {a.size} entries but W_pruned has {b.size}")
    delta = a - b
    return RuleExpectations(keep=float(np.count_nonzero(b) / b.size), mean=float(delta.mean()),
                            m2=float(np.mean(delta ** 2)), m4=float(np.mean(delta ** 4)))


# --------------------------------------------------------------------------- independence
def squared_norms(W: Any, axis: str = "rows") -> np.ndarray:
    """The squared norms of the rows (or columns) of W (out x in, PyTorch layout)."""
    A = as_matrix(W)
    axis = check_choice("axis", axis, ("rows", "cols"))
    return np.sum(A * A, axis=1 if axis == "rows" else 0)


@dataclass(frozen=True)
class NormSpread:
    """Spread of the squared row (or column) norms (see :func:`norm_spread`)."""

    n: int           # entries per line
    count: int       # lines
    mean: float
    sd: float
    sd_iid: float
    sd_gauss: float
    ratio_iid: float
    ratio_gauss: float


def norm_spread(W: Any, axis: str = "rows") -> NormSpread:
    """Spread of the squared row (or column) norms against the i.i.d. predictions.

    W is out x in (PyTorch layout); a row has n = fan-in entries, a column n = fan-out.
    If the entries are i.i.d. N(0, Psi), a squared row norm is Psi chi^2(n): mean Psi n,
    standard deviation Psi sqrt(2 n) (``sd_gauss``). If they are i.i.d. with the
    layer's own marginal law (any shape), the standard deviation is
    sqrt(n Var(W^2)) (``sd_iid``), with Var(W^2) = mean(W^4) - mean(W^2)^2 over all
    entries. ``ratio_iid`` = measured sd / sd_iid is about 1 (within sqrt(2/rows))
    under independence; a ratio far above 1 means some rows (neurons) carry
    systematically larger weights than others: the entries are not identically
    distributed across rows, whatever the marginal law.

    Returns a :class:`NormSpread`; the squared norms themselves are
    :func:`squared_norms`.
    """
    A = as_matrix(W)
    axis = check_choice("axis", axis, ("rows", "cols"))
    if axis == "cols":
        A = A.T
    count, n = A.shape
    sq = squared_norms(A, "rows")
    w2 = A * A
    var_w2 = float(np.mean(w2 * w2) - np.mean(w2) ** 2)
    psi = float(A.var())
    sd = float(sq.std())
    sd_iid = math.sqrt(n * var_w2)
    sd_gauss = psi * math.sqrt(2.0 * n)
    return NormSpread(n=n, count=count, mean=float(sq.mean()), sd=sd, sd_iid=sd_iid,
                      sd_gauss=sd_gauss, ratio_iid=sd / sd_iid, ratio_gauss=sd / sd_gauss)


def correlation_rms(W: Any, axis: str = "rows") -> float:
    """Root mean square of the correlations between distinct rows (or columns), x sqrt(n).

    For independent rows of length n the sample correlation of two rows has variance
    close to 1/n (exactly 1/(n-1) for normal entries), so the returned
    sqrt(n - 1) * rms is about 1; values well above 1 mean the rows share directions
    (low-rank structure), the dependence a trained layer acquires.
    """
    A = as_matrix(W)
    axis = check_choice("axis", axis, ("rows", "cols"))
    if axis == "cols":
        A = A.T
    count, n = A.shape
    Z = A - A.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(Z, axis=1)
    if np.any(norms == 0):
        raise ParameterError(f"a constant {axis[:-1]} has no correlation")
    Z = Z / norms[:, None]
    C = Z @ Z.T
    off = C[~np.eye(count, dtype=bool)]
    return float(math.sqrt(n - 1) * math.sqrt(np.mean(off * off)))


def marchenko_pastur_edges(ratio: float) -> tuple[float, float]:
    """Support [(1 - sqrt y)^2, (1 + sqrt y)^2] of the Marchenko-Pastur law, 0 < y <= 1."""
    y = check_real("ratio", ratio, minimum=0.0, maximum=1.0)
    if y == 0:
        raise ParameterError("ratio must be > 0")
    return (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2


def marchenko_pastur_pdf(x: Any, ratio: float) -> np.ndarray:
    """Marchenko-Pastur density sqrt((b - x)(x - a)) / (2 pi y x) on [a, b], 0 < y <= 1.

    The limit law of the eigenvalues of S = X X^T / N for a p x N matrix X with i.i.d.
    entries of variance 1 and p/N -> y (Marchenko & Pastur 1967); zero off [a, b].
    """
    a, b = marchenko_pastur_edges(ratio)
    x = np.asarray(x, dtype=np.float64)
    inside = (x > a) & (x < b)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((b - xi) * (xi - a)) / (2 * math.pi * ratio * xi)
    return out


def normalized_spectrum(W: Any, psi: float | None = None) -> tuple[np.ndarray, float]:
    """Eigenvalues of the Gram matrix of W scaled to the Marchenko-Pastur law.

    For W of size p x N (any orientation; p = the smaller side), returns the p
    eigenvalues of W W^T / (N Psi) (or W^T W / (N Psi)) in increasing order, and the
    ratio y = p / N. Under i.i.d. entries of variance Psi they follow
    :func:`marchenko_pastur_pdf`; the largest singular value of W is
    sqrt(N Psi lambda_max), whose i.i.d. prediction is sqrt(Psi) (sqrt N + sqrt p).
    ``psi`` defaults to the population variance of W.
    """
    A = as_matrix(W)
    if A.shape[0] > A.shape[1]:
        A = A.T
    p, N = A.shape
    psi = float(A.var()) if psi is None else check_real("psi", psi, minimum=0.0)
    if psi == 0:
        raise ParameterError("psi must be > 0")
    eig = np.linalg.eigvalsh(A @ A.T) / (N * psi)
    return np.clip(eig, 0.0, None), p / N


@dataclass(frozen=True)
class MPSummary:
    """How the spectrum of W departs from Marchenko-Pastur (see :func:`mp_summary`)."""

    top_over_edge: float
    frac_above: float
    n_above: int
    ratio: float


def mp_summary(W: Any) -> MPSummary:
    """How the spectrum of W departs from Marchenko-Pastur (i.i.d. entries).

    ``top_over_edge``: largest singular value of W over the i.i.d. prediction
    sqrt(Psi) (sqrt(d_1) + sqrt(d_2)); ``frac_above``: fraction of eigenvalues of the
    normalized Gram matrix above the upper edge (1 + sqrt y)^2 (zero up to edge
    fluctuations for i.i.d. entries); ``n_above``: their number; ``ratio``: y.
    """
    eig, y = normalized_spectrum(W)
    _, b = marchenko_pastur_edges(y)
    return MPSummary(top_over_edge=float(math.sqrt(eig[-1] / b)),
                     frac_above=float(np.mean(eig > b)), n_above=int(np.sum(eig > b)),
                     ratio=float(y))


def conditional_error_mean(W: Any, d: float, psi: float | None = None) -> np.ndarray:
    """M = E[Delta | W] = W * exp(-W^2/(d Psi)), entrywise.

    For a *fixed* matrix the only randomness of the rule is in the coin flips, so
    Delta = M + N with N = Delta - M independent and mean zero given W, while M is a
    deterministic matrix. The Gaussian argument's "mean-zero Delta" holds only on
    average over W; given W, ||Delta|| <= ||M|| + ||N|| and ||M|| must be measured.
    ``psi`` defaults to the population variance of W.
    """
    A = as_matrix(W)
    psi = float(A.var()) if psi is None else psi
    return A * (1.0 - keep_probability(A, d, psi))


def error_matrix(W: Any, d: float, seed: int, psi: float | None = None) -> np.ndarray:
    """Delta = W - W_hat for one draw of the paper's rule on a plain matrix.

    Each entry is kept with probability :func:`prunebounds.pruning.keep_probability`
    (uniforms from ``numpy.random.default_rng(seed)``); Delta holds the dropped entries.
    The same law as :func:`prunebounds.pruning.prune_paper` for one layer (different
    random numbers); used on shuffled copies of a layer. ``psi`` defaults to Var(W).
    """
    A = as_matrix(W)
    seed = check_int("seed", seed, minimum=0)
    psi = float(A.var()) if psi is None else psi
    u = np.random.default_rng(seed).random(A.shape)
    return np.where(u < keep_probability(A, d, psi), 0.0, A)


def shuffled(W: Any, seed: int) -> np.ndarray:
    """W with its entries randomly permuted: the same marginal law, independence restored.

    The reference "i.i.d. with the layer's own law" for every independence check: any
    row, column or spectral structure of W is destroyed, the histogram is unchanged.
    """
    A = as_matrix(W)
    seed = check_int("seed", seed, minimum=0)
    return np.random.default_rng(seed).permutation(A.ravel()).reshape(A.shape)


def iid_norm_prediction(second_moment: float, shape) -> float:
    """sqrt(E X^2) (sqrt(d_1) + sqrt(d_2)): ||X||_2 for i.i.d. mean-zero entries, to leading order.

    The Bai-Yin limit (the upper edge of the Marchenko-Pastur law): for a d_1 x d_2 matrix
    with i.i.d. mean-zero entries of variance s^2 and finite fourth moment,
    ||X||_2 / (s (sqrt(d_1) + sqrt(d_2))) -> 1 as both sizes grow proportionally. The
    constant-free version of the Latala bound of the paper's Lemma 4.1 (reconstructed).
    """
    m2 = check_real("second_moment", second_moment, minimum=0.0)
    d1, d2 = (check_int("shape", int(x), minimum=1) for x in shape)
    return math.sqrt(m2) * (math.sqrt(d1) + math.sqrt(d2))


@dataclass(frozen=True)
class PredictionComparison:
    """The rule's kept fraction and error moments of one layer, from every source."""

    gaussian: RuleExpectations
    t: RuleExpectations
    gennorm: RuleExpectations
    empirical: RuleExpectations
    measured: RuleExpectations


def compare_predictions(W: Any, W_pruned: Any, d: float, fits: dict,
                        psi: float | None = None) -> PredictionComparison:
    """The rule's kept fraction and error moments of one layer at one d, from every source.

    * ``gaussian``: the paper's closed forms under N(0, Psi) (:func:`rule_expectations_gaussian`);
    * ``t``, ``gennorm``: (E) under the fitted laws (:func:`rule_expectations_fit`);
    * ``empirical``: (E) under the empirical law of the entries (:func:`rule_expectations_empirical`);
    * ``measured``: on the pruned copy ``W_pruned`` (:func:`rule_measured`).

    ``fits`` is the output of :func:`fit_families` for W; ``psi`` defaults to Var(W).
    """
    a = as_array(W)
    psi = float(a.var()) if psi is None else check_real("psi", psi, minimum=0.0)
    return PredictionComparison(
        gaussian=rule_expectations_gaussian(d, psi),
        t=rule_expectations_fit("t", fits["t"], d, psi),
        gennorm=rule_expectations_fit("gennorm", fits["gennorm"], d, psi),
        empirical=rule_expectations_empirical(a, d, psi),
        measured=rule_measured(a, W_pruned),
    )


@dataclass(frozen=True)
class ErrorNorms:
    """Spectral norms of one layer's pruning error and its references (see :func:`error_norms`)."""

    actual: float
    shuffled: float
    conditional_mean: float
    conditional_mean_iid: float
    gaussian_iid: float


def error_norms(W: Any, W_pruned: Any, d: float, seed: int) -> ErrorNorms:
    """Spectral norm of the pruning error of one layer, measured and i.i.d. references.

    * ``actual``: ||W - W_pruned||_2 on the layer itself;
    * ``shuffled``: ||Delta||_2 for one draw of the rule on :func:`shuffled` W (same
      entries, independence restored);
    * ``conditional_mean``: ||M||_2 with M = E[Delta | W] (:func:`conditional_error_mean`);
    * ``conditional_mean_iid``: :func:`iid_norm_prediction` for M, sqrt(mean M_ij^2)
      (sqrt(d_1) + sqrt(d_2)): what ||M||_2 would be if the entries of W were i.i.d.
      (then M has i.i.d. mean-zero entries for a symmetric law);
    * ``gaussian_iid``: :func:`iid_norm_prediction` with the Gaussian E Delta^2 =
      Psi (d/(d+2))^{3/2}, the value the paper's assumption predicts.
    """
    A = as_matrix(W)
    seed = check_int("seed", seed, minimum=0)
    psi = float(A.var())
    M = conditional_error_mean(A, d, psi)
    return ErrorNorms(
        actual=spectral_norm(A - as_matrix(W_pruned)),
        shuffled=spectral_norm(error_matrix(shuffled(A, seed), d, seed, psi=psi)),
        conditional_mean=spectral_norm(M),
        conditional_mean_iid=iid_norm_prediction(float(np.mean(M * M)), A.shape),
        gaussian_iid=iid_norm_prediction(float(error_second_moment(d, psi)), A.shape),
    )


@dataclass(frozen=True)
class LayerDescription(EntryDescription):
    """Every diagnostic of one weight matrix (see :func:`describe_layer`)."""

    shape: tuple[int, int] = (0, 0)
    spread_rows: NormSpread | None = None
    spread_cols: NormSpread | None = None
    corr_rows: float | None = None   # only with full=True
    corr_cols: float | None = None
    mp: MPSummary | None = None


def describe_layer(W: Any, n_fit: int | None = None, seed: int = 0,
                   full: bool = True) -> LayerDescription:
    """Every diagnostic of one weight matrix.

    :func:`describe_entries` plus the independence checks: :func:`norm_spread` of rows
    and columns, :func:`correlation_rms` of rows and columns (only with ``full``),
    :func:`mp_summary`.
    """
    A = as_matrix(W)
    entries = describe_entries(A, n_fit=n_fit, seed=seed, full=full)
    return LayerDescription(
        **{f: getattr(entries, f) for f in EntryDescription.__dataclass_fields__},
        shape=(int(A.shape[0]), int(A.shape[1])),
        spread_rows=norm_spread(A, "rows"), spread_cols=norm_spread(A, "cols"),
        corr_rows=correlation_rms(A, "rows") if full else None,
        corr_cols=correlation_rms(A, "cols") if full else None,
        mp=mp_summary(A))
