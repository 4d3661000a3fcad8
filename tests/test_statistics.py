"""Tests of prunebounds.statistics: Kendall's tau against hand-counted pairs."""

from __future__ import annotations

import math

import pytest

from prunebounds.errors import ParameterError
from prunebounds.statistics import bonferroni, kendall_tau, rank_correlations


def test_kendall_tau_wrapper():
    t = kendall_tau([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4])
    assert t.tau == pytest.approx(1.0) and 0 <= t.pvalue <= 1
    assert kendall_tau([4.0, 3.0, 2.0, 1.0], [0.1, 0.2, 0.3, 0.4]).tau == pytest.approx(-1.0)


def test_kendall_tau_by_counting_pairs():
    """x = (1, 2, 3, 4), y = (1, 3, 2, 4): 5 concordant pairs, 1 discordant -> tau = 4/6."""
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]).tau == pytest.approx(4 / 6)


def test_rank_correlations_against_error_and_gap():
    """The bound orders the networks by test error exactly, and by gap in reverse."""
    bound = [1.0, 2.0, 3.0, 4.0]
    test = [0.10, 0.20, 0.30, 0.40]
    train = [0.00, 0.15, 0.28, 0.39]          # gaps 0.10, 0.05, 0.02, 0.01
    r = rank_correlations(bound, test, train)
    assert r.n == 4 and r.tau_error == pytest.approx(1.0) and r.tau_gap == pytest.approx(-1.0)
    assert r.p_error == pytest.approx(r.p_gap) and 0 < r.p_error < 1
    with pytest.raises(ParameterError, match="one of each per network"):
        rank_correlations(bound, test, train[:3])


def test_bonferroni():
    assert bonferroni([0.01, 0.2, 0.5]) == pytest.approx([0.03, 0.6, 1.0])
    adj = bonferroni([0.01, float("nan")])
    assert adj[0] == pytest.approx(0.02) and math.isnan(adj[1])
    with pytest.raises(ParameterError, match="p-values"):
        bonferroni([1.5])


def test_kendall_tau_bad_input():
    with pytest.raises(ParameterError, match="at least two"):
        kendall_tau([1.0], [2.0])
    with pytest.raises(ParameterError, match="3 bound values but 2"):
        kendall_tau([1.0, 2.0, 3.0], [1.0, 2.0])


def test_tau_b_rows_match_scipy_with_ties():
    import numpy as np
    from scipy import stats

    from prunebounds.statistics import _tau_b_rows

    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(5, 12)).astype(float)   # many ties
    y = rng.normal(size=(5, 12))
    y[:, 3] = y[:, 4]
    ours = _tau_b_rows(x, y)
    for row, t in zip(range(5), ours):
        assert t == pytest.approx(stats.kendalltau(x[row], y[row]).statistic)


def test_tau_difference_detects_a_reversed_gap_and_not_an_equal_one():
    from prunebounds.statistics import tau_difference

    test = [0.05 + 0.01 * i for i in range(12)]
    values = [t + 0.001 * (-1) ** i for i, t in enumerate(test)]
    same = tau_difference(values, test, [0.0] * 12, n_boot=500)      # gap == test error
    assert same.difference == 0.0 and same.pvalue == 1.0
    train = [2 * t - 0.04 for t in test]                               # gap = 0.04 - t, reversed
    rev = tau_difference(values, test, train, n_boot=500)
    assert rev.difference > 1.5 and rev.low > 0 and rev.pvalue < 0.05 and rev.n == 12


def test_tau_difference_bad_input():
    from prunebounds.statistics import tau_difference

    with pytest.raises(ParameterError, match="at least three"):
        tau_difference([1.0, 2.0], [0.1, 0.2], [0.0, 0.0])
    with pytest.raises(ParameterError, match="one of each per network"):
        tau_difference([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [0.0, 0.0])
    with pytest.raises(ParameterError, match="n_boot"):
        tau_difference([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [0.0] * 3, n_boot=10)
