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

from scipy import stats

from .errors import ParameterError
from .validate import check_real

__all__ = ["KendallTau", "kendall_tau", "RankCorrelations", "rank_correlations", "bonferroni"]


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
