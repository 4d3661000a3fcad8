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
