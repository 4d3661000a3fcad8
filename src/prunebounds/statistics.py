"""Statistical tests shared by the chapters: rank correlation of bounds with generalization.

The authors claim that their bound *correlates with generalization*. Jiang et al.
(ICLR 2020, "Fantastic generalization measures and where to find them") rank measures
by Kendall's tau over a family of trained networks. :func:`kendall_tau` is that
statistic (tau-b, with its two-sided p-value); :func:`rank_correlations` reports it
against both readings of "generalization": the test error and the generalization gap
(test error minus training error), with the family size n. :func:`bonferroni` adjusts
p-values when several measures are tested on one family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

from .errors import ParameterError
from .validate import check_real

__all__ = ["KendallTau", "kendall_tau", "RankCorrelations", "rank_correlations", "bonferroni",
           "TauDifference", "tau_difference"]


class KendallTau(NamedTuple):
    """Kendall's tau between two sequences, with its two-sided p-value."""

    tau: float
    pvalue: float


def kendall_tau(bound_values: Sequence[float], test_errors: Sequence[float]) -> KendallTau:
    """Kendall's tau-b (``scipy.stats.kendalltau``) of bounds against test errors.

    Jiang et al. (ICLR 2020) rank generalization measures this way: tau = 1 when the
    bound orders the models exactly as their test errors do. The p-value is that of the
    two-sided test of tau = 0 (no association).
    """
    x = [check_real("bound value", v) for v in bound_values]
    y = [check_real("test error", v) for v in test_errors]
    if len(x) != len(y):
        raise ParameterError(f"got {len(x)} bound values but {len(y)} test errors")
    if len(x) < 2:
        raise ParameterError("Kendall's tau needs at least two (bound, error) pairs")
    res = stats.kendalltau(x, y)
    return KendallTau(float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class RankCorrelations:
    """Kendall's tau of one measure over a family of n networks (see :func:`rank_correlations`)."""

    n: int               # networks in the family
    tau_error: float     # against the test error
    p_error: float
    tau_gap: float       # against the generalization gap, test error - training error
    p_gap: float


def rank_correlations(values: Sequence[float], test_errors: Sequence[float],
                      train_errors: Sequence[float]) -> RankCorrelations:
    """Kendall's tau of ``values`` against the test error and against the generalization gap.

    The gap of network i is test_errors[i] - train_errors[i]. Both taus come from
    :func:`kendall_tau` with their two-sided p-values.
    """
    gaps = [check_real("test error", t) - check_real("training error", s)
            for t, s in zip(test_errors, train_errors)]
    if len(gaps) != len(test_errors) or len(train_errors) != len(test_errors):
        raise ParameterError(f"got {len(test_errors)} test errors but {len(train_errors)} "
                             "training errors; give one of each per network")
    err, gap = kendall_tau(values, test_errors), kendall_tau(values, gaps)
    return RankCorrelations(len(gaps), err.tau, err.pvalue, gap.tau, gap.pvalue)


def bonferroni(pvalues: Sequence[float]) -> list[float]:
    """Bonferroni-adjusted p-values: min(1, k p) for k tests on one family.

    A measure is significant at level alpha over all k tests together when its adjusted
    p-value is below alpha. NaN p-values (tau undefined for constant values) stay NaN
    but count in k.
    """
    ps = [float(p) for p in pvalues]
    for p in ps:
        if p == p and not 0.0 <= p <= 1.0:
            raise ParameterError(f"p-values must lie in [0, 1], got {p}")
    k = len(ps)
    return [p if p != p else min(1.0, k * p) for p in ps]


@dataclass(frozen=True)
class TauDifference:
    """Is a measure's tau against the test error different from its tau against the gap?

    ``difference`` = tau(values, test error) - tau(values, gap) on the family;
    [``low``, ``high``] its paired-bootstrap percentile interval at ``level``;
    ``pvalue`` the two-sided bootstrap p-value of "no difference" (twice the smaller
    share of bootstrap differences on either side of 0, at most 1). See
    :func:`tau_difference`.
    """

    n: int
    difference: float
    low: float
    high: float
    pvalue: float
    level: float
    n_boot: int


def _tau_b_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row of x against the same row of y (B x n arrays).

    tau-b = sum_{i<j} s^x_ij s^y_ij / sqrt(sum s^x_ij^2 * sum s^y_ij^2), s_ij the sign of
    the difference: the concordant minus discordant pairs over the pairs untied in each
    variable (Kendall 1945). NaN where a row is constant.
    """
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    num = (sx * sy).sum(axis=(1, 2))
    den = np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def tau_difference(values: Sequence[float], test_errors: Sequence[float],
                   train_errors: Sequence[float], *, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> TauDifference:
    """Paired bootstrap of tau(values, test error) - tau(values, generalization gap).

    The two taus share the networks, so they are compared on the same resamples: draw
    n networks with replacement ``n_boot`` times, compute both taus (tau-b) on each
    draw, and take the percentile interval of their difference (Efron & Tibshirani
    1993, ch. 13) and the two-sided p-value 2 min(P*(diff <= 0), P*(diff >= 0)).
    Draws on which either tau is undefined (constant values) are dropped. With a
    dozen networks the interval is wide; the test only says whether the family
    distinguishes the two readings of "generalization" at all.
    """
    x = np.array([check_real("value", v) for v in values], dtype=float)
    t = np.array([check_real("test error", v) for v in test_errors], dtype=float)
    s = np.array([check_real("training error", v) for v in train_errors], dtype=float)
    if not len(x) == len(t) == len(s):
        raise ParameterError(f"got {len(x)} values, {len(t)} test errors and {len(s)} "
                             "training errors; give one of each per network")
    if len(x) < 3:
        raise ParameterError("a bootstrap of Kendall's tau needs at least three networks")
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 100:
        raise ParameterError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    level = check_real("level", level, minimum=0.5, maximum=0.999)
    gap = t - s
    point = _tau_b_rows(x[None], t[None])[0] - _tau_b_rows(x[None], gap[None])[0]
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    diffs = _tau_b_rows(x[idx], t[idx]) - _tau_b_rows(x[idx], gap[idx])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        nan = float("nan")
        return TauDifference(len(x), float(point), nan, nan, nan, level, n_boot)
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return TauDifference(len(x), float(point), float(lo), float(hi), p, level, n_boot)

