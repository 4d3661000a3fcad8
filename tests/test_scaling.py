"""Tests of prunebounds.scaling against independent computations."""

import math

import numpy as np
import pytest
import torch

from prunebounds import models, pruning, scaling
from prunebounds.errors import ParameterError
from prunebounds.perturbation import PruningProbe


def test_loglog_slope_recovers_power():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    assert scaling.loglog_slope(x, 3 * x ** 0.75) == pytest.approx(0.75)
    with pytest.raises(ParameterError):
        scaling.loglog_slope([1.0], [1.0])


def test_student_t_scale_gives_variance():
    s = scaling.student_t_scale(5.0, 2.0)
    assert s ** 2 * 5.0 / 3.0 == pytest.approx(2.0)
    with pytest.raises(ParameterError):
        scaling.student_t_scale(2.0, 1.0)


def test_student_t_rule_gaussian_limit_and_large_df():
    d = 1.0
    g = scaling.student_t_rule(math.inf, d)
    assert g.keep == pytest.approx(pruning.expected_keep_fraction(d), rel=1e-8)
    assert g.m2 == pytest.approx(pruning.error_second_moment(d, 1.0), rel=1e-8)
    t = scaling.student_t_rule(1000.0, d)
    assert t.keep == pytest.approx(g.keep, rel=1e-2)


def test_student_t_rule_matches_monte_carlo():
    d, df = 0.5, 5.0
    exact = scaling.student_t_rule(df, d)
    mc = scaling.student_t_monte_carlo(df, d, (300, 300), seed=0)
    assert mc.keep == pytest.approx(exact.keep, abs=0.01)
    assert mc.m2 == pytest.approx(exact.m2, rel=0.1)


def test_rules_share_sparsity_and_magnitude_drops_smallest():
    torch.manual_seed(0)
    net = models.build((20, 16, 12, 3), seed=0)
    out = scaling.pruned_by_rules(net, 1.0, seed=1)
    nnz = {k: [int(torch.count_nonzero(w)) for w in models.weight_matrices(g)]
           for k, g in out.items()}
    assert nnz["paper"] == nnz["magnitude"] == nnz["random"]
    for w, wm in zip(models.weight_matrices(net), models.weight_matrices(out["magnitude"])):
        kept, dropped = w[wm != 0].abs(), w[wm == 0].abs()
        assert dropped.max() <= kept.min()


def test_compare_rules_rows():
    net = models.build((20, 16, 3), seed=0)
    X, y = torch.randn(50, 20), torch.randint(0, 3, (50,))
    probe = PruningProbe(net, X, y)
    rows = scaling.compare_rules(net, probe, [0.5], 0, X, y)
    assert [r.rule for r in rows] == list(scaling.RULES)
    for r in rows:
        W = models.weight_matrices(net)
        assert len(r.delta_norms) == len(W)
        assert r.needed > 0 and 0 <= r.test_error <= 1


def test_student_t_rule_matches_scipy_density():
    from scipy import stats
    from prunebounds.gaussianity import rule_expectations_quad
    df, d, psi = 4.0, 0.7, 2.0
    ref = rule_expectations_quad(
        lambda w: float(stats.t(df, scale=scaling.student_t_scale(df, psi)).pdf(w)), d, psi)
    got = scaling.student_t_rule(df, d, psi)
    assert got.keep == pytest.approx(ref.keep, rel=1e-8)
    assert got.m2 == pytest.approx(ref.m2, rel=1e-8)
