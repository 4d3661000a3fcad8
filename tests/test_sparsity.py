"""Checks of prunebounds.sparsity against direct counts, brute force and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from prunebounds.errors import ParameterError
from prunebounds.sparsity import (
    authors_predicted_nonzeros,
    binomial_gof,
    check_layer_index,
    conditional_count_moments,
    conditional_dead_lines,
    dead_cols,
    dead_rows,
    disconnected_neurons,
    dispersion_index,
    expected_dead_lines,
    expected_max_nonzeros,
    lemma51_bound,
    max_nonzeros_quantile,
    max_nonzeros_tail_bound,
    nonzeros_per_col,
    nonzeros_per_row,
    sparsity_summary,
)

N_LINES, LENGTH, KEEP = 40, 120, 0.155  # about chi(5), a small layer
TRIALS = 20_000


def chi(d: float) -> float:
    return 1.0 - math.sqrt(d / (d + 2.0))


@pytest.fixture(scope="module")
def mc_max() -> np.ndarray:
    """Monte Carlo maxima of N_LINES i.i.d. Binomial(LENGTH, KEEP) counts."""
    rng = np.random.default_rng(12345)
    return rng.binomial(LENGTH, KEEP, size=(TRIALS, N_LINES)).max(axis=1)


# ----------------------------------------------------------------------- counting


def test_counts_and_dead_lines_by_hand():
    W = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0], [0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(nonzeros_per_row(W), [1, 0, 2, 1])
    np.testing.assert_array_equal(nonzeros_per_col(W), [1, 3, 0])
    assert dead_rows(W) == 1 and dead_cols(W) == 1
    np.testing.assert_array_equal(nonzeros_per_row(torch.tensor(W)), [1, 0, 2, 1])
    assert nonzeros_per_row(W).dtype == np.int64
    with pytest.raises(ParameterError):
        nonzeros_per_row(np.zeros((2, 2, 2)))


def test_sparsity_summary_by_hand():
    W = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0], [0.0, 3.0, 0.0]])
    (s,) = sparsity_summary(W)
    assert s.shape == (4, 3)
    assert s.rows.max == 2 and s.rows.min == 0 and s.rows.dead == 1
    assert s.rows.mean == pytest.approx(1.0)
    assert s.rows.var == pytest.approx(np.var([1, 0, 2, 1], ddof=1))
    assert s.cols.spread == pytest.approx(3 / (4 / 3))
    assert len(sparsity_summary([W, W.T])) == 2


def test_disconnected_neurons_by_hand():
    A1 = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])  # hidden neuron 2 gets no input
    A2 = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])   # hidden neurons 2, 3 feed nobody
    assert disconnected_neurons([A1, A2]) == [2]
    with pytest.raises(ParameterError):
        disconnected_neurons([A1])
    with pytest.raises(ParameterError):
        disconnected_neurons([A1, A2.T])


def test_check_layer_index():
    assert check_layer_index(3, 5) == 3
    for bad in (0, 6, 2.5, "1"):
        with pytest.raises(ParameterError):
            check_layer_index(bad, 5)


def test_expected_dead_lines():
    assert expected_dead_lines(100, 10, 0.2) == pytest.approx(100 * 0.8 ** 10)
    rng = np.random.default_rng(3)
    dead = (rng.binomial(5, 0.3, size=(4000, 50)) == 0).sum(axis=1)
    se = dead.std() / np.sqrt(dead.size)
    assert abs(dead.mean() - expected_dead_lines(50, 5, 0.3)) < 4 * se


def _mc_masks(W: np.ndarray, d: float, trials: int, seed: int) -> np.ndarray:
    """Keep masks of the paper's rule, drawn directly: keep w.p. 1 - exp(-w^2/(d Psi))."""
    rng = np.random.default_rng(seed)
    p_keep = 1.0 - np.exp(-W ** 2 / (d * W.var()))
    return rng.random((trials,) + W.shape) < p_keep


def test_conditional_moments_match_mask_monte_carlo():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((6, 30)) * np.linspace(0.5, 2.0, 6)[:, None]
    masks = _mc_masks(W, 2.0, 20_000, 6)
    for axis, ax in (("rows", 2), ("cols", 1)):
        mean, var = conditional_count_moments(W, 2.0, axis=axis)
        counts = masks.sum(axis=ax)
        np.testing.assert_allclose(counts.mean(axis=0), mean, atol=4 * np.sqrt(var.max() / 20_000))
        np.testing.assert_allclose(counts.var(axis=0), var, rtol=0.06)


def test_conditional_dead_lines_matches_monte_carlo_and_gaussian_limit():
    rng = np.random.default_rng(8)
    W = rng.standard_normal((40, 4)) * 0.3
    masks = _mc_masks(W, 5.0, 20_000, 9)
    dead = (masks.sum(axis=2) == 0).sum(axis=1)
    assert abs(dead.mean() - conditional_dead_lines(W, 5.0)) < 4 * dead.std() / np.sqrt(dead.size)
    # averaged over Gaussian weights it becomes n (1 - chi(d))^L
    n, L, d = 200, 3, 4.0
    vals = [conditional_dead_lines(rng.standard_normal((n, L)), d) for _ in range(300)]
    assert np.mean(vals) == pytest.approx(expected_dead_lines(n, L, chi(d)), rel=0.05)


def test_dispersion_index_binomial_vs_mixture():
    rng = np.random.default_rng(10)
    binom_counts = rng.binomial(200, 0.2, size=500)
    ratio, p = dispersion_index(binom_counts, 200, 0.2)
    assert 0.8 < ratio < 1.2 and p > 1e-3
    mixed = np.concatenate([rng.binomial(200, 0.1, 250), rng.binomial(200, 0.3, 250)])
    ratio, p = dispersion_index(mixed, 200, 0.2)
    assert ratio > 3 and p < 1e-10
    with pytest.raises(ParameterError):
        dispersion_index(binom_counts, 200, 0.0)


def test_binomial_gof_against_scipy_chisquare():
    rng = np.random.default_rng(11)
    counts = rng.binomial(30, 0.25, size=400)
    res = binomial_gof(counts, 30, 0.25)
    # recompute with the same bins by hand and compare with scipy's chisquare
    observed = np.bincount(counts, minlength=31).astype(float)
    expected = 400 * stats.binom.pmf(np.arange(31), 30, 0.25)
    o_bins, e_bins, ao, ae = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        ao, ae = ao + o, ae + e
        if ae >= 5.0:
            o_bins.append(ao), e_bins.append(ae)
            ao = ae = 0.0
    o_bins[-1] += ao
    e_bins[-1] += ae
    ref = stats.chisquare(o_bins, e_bins)
    assert res.bins == len(o_bins) and res.dof == len(o_bins) - 1
    assert res.chi2 == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert 0 <= res.ks < 0.1


# ------------------------------------------------------- maximum of i.i.d. binomials


@pytest.mark.parametrize("n,L,p", [(50, 40, 0.3), (200, 100, 0.087), (10, 784, 0.42)])
def test_expected_max_matches_monte_carlo(n, L, p):
    rng = np.random.default_rng(n + L)
    sample = rng.binomial(L, p, size=(20_000, n)).max(axis=1)
    exact = expected_max_nonzeros(n, L, p)
    assert abs(exact - sample.mean()) < 4 * sample.std() / np.sqrt(sample.size)


def test_expected_max_special_cases():
    assert expected_max_nonzeros(1, 50, 0.3) == pytest.approx(15.0, rel=1e-10)
    assert expected_max_nonzeros(7, 10, 1.0) == pytest.approx(10.0)
    assert expected_max_nonzeros(7, 10, 0.0) == pytest.approx(0.0)


def test_quantile_by_brute_force(mc_max):
    for prob in (0.5, 0.9, 0.99):
        q = max_nonzeros_quantile(N_LINES, LENGTH, KEEP, prob)
        F = stats.binom.cdf(np.arange(LENGTH + 1), LENGTH, KEEP) ** N_LINES
        assert q == next(k for k in range(LENGTH + 1) if F[k] >= prob)
        slack = 4 * np.sqrt(prob * (1 - prob) / TRIALS)
        assert np.mean(mc_max <= q) >= prob - slack
        assert np.mean(mc_max <= q - 1) < prob + slack


@pytest.mark.parametrize("method", ["chernoff", "bernstein"])
def test_tail_bound_is_valid_and_above_quantile(mc_max, method):
    delta = 0.05
    b = max_nonzeros_tail_bound(N_LINES, LENGTH, KEEP, delta, method=method)
    assert np.mean(mc_max >= b) <= delta
    assert b >= max_nonzeros_quantile(N_LINES, LENGTH, KEEP, 1 - delta) - 1


def test_chernoff_tighter_than_bernstein_and_capped():
    for n, length, keep in [(784, 784, 0.155), (2000, 3072, 0.087), (10, 100, 0.5)]:
        c = max_nonzeros_tail_bound(n, length, keep, 0.01, "chernoff")
        b = max_nonzeros_tail_bound(n, length, keep, 0.01, "bernstein")
        assert length * keep < c <= b <= length
    assert max_nonzeros_tail_bound(1000, 5, 0.9, 1e-6) == 5.0


def test_lemma51_bounds_by_hand():
    mu, sd = 100 * 0.2, math.sqrt(100 * 0.2 * 0.8)
    assert lemma51_bound(100, 0.2, 2.0) == pytest.approx((mu + 2 * sd, 0.2))
    assert lemma51_bound(100, 0.2, 4.0, kind="markov") == pytest.approx((80.0, 0.25))
    b, f = lemma51_bound(1000, 0.1, 2.0, kind="markov-chebyshev")
    assert b == pytest.approx(min(200.0, 100 + 1000 ** (2 / 3)))
    assert f == pytest.approx(0.5 + 0.1)
    _, f10 = lemma51_bound(100, 0.2, 2.0, n_lines=10)
    assert f10 == pytest.approx(1.0)  # 10 * 0.2, capped


@pytest.mark.parametrize("kind,lam", [("chebyshev", 1.5), ("chebyshev", 3.0),
                                      ("markov", 1.2), ("markov", 3.0)])
def test_lemma51_bound_holds_with_its_probability(kind, lam):
    rng = np.random.default_rng(7)
    bound, fail = lemma51_bound(60, 0.155, lam, n_lines=1, kind=kind)
    J = rng.binomial(60, 0.155, size=TRIALS)
    assert np.mean(J >= bound) <= fail + 3 * np.sqrt(fail / TRIALS)


def test_lemma51_markov_chebyshev_is_valid_for_one_line():
    rng = np.random.default_rng(17)
    for L, keep, lam in [(784, 0.155, 1.5), (200, 0.42, 1.2)]:
        bound, fail = lemma51_bound(L, keep, lam, kind="markov-chebyshev")
        J = rng.binomial(L, keep, size=TRIALS)
        assert np.mean(J >= bound) <= fail


def test_lemma51_union_bound_holds_for_the_maximum(mc_max):
    bound, fail = lemma51_bound(LENGTH, KEEP, 10.0, n_lines=N_LINES)
    assert fail < 1 and np.mean(mc_max >= bound) <= fail


def test_authors_prediction_reproduces_their_endpoints():
    assert authors_predicted_nonzeros(784, chi(0.0)) == 2352
    assert authors_predicted_nonzeros(3072, chi(0.0)) == 9216
    assert authors_predicted_nonzeros(784, chi(10.0)) == pytest.approx(205, abs=1)
    assert authors_predicted_nonzeros(3072, chi(10.0)) == pytest.approx(800, abs=5)
    # the authors' value is Markov's bound with lambda = 3
    assert lemma51_bound(784, chi(10.0), 3.0, kind="markov")[0] == pytest.approx(
        authors_predicted_nonzeros(784, chi(10.0)))


@pytest.mark.parametrize("call", [
    lambda: expected_max_nonzeros(0, 10, 0.5),
    lambda: expected_max_nonzeros(3, -1, 0.5),
    lambda: expected_max_nonzeros(3, 10, 1.5),
    lambda: max_nonzeros_quantile(3, 10, 0.5, 0.0),
    lambda: max_nonzeros_quantile(3, 10, 0.5, 1.2),
    lambda: max_nonzeros_tail_bound(3, 10, 0.5, 0.1, method="hoeffding"),
    lambda: max_nonzeros_tail_bound(3, 10, 0.5, 0.0),
    lambda: lemma51_bound(10, 0.5, 0.5, kind="markov"),
    lambda: lemma51_bound(10, 0.5, 2.0, kind="cantelli"),
    lambda: authors_predicted_nonzeros(0, 0.5),
    lambda: expected_dead_lines(-1, 10, 0.5),
    lambda: conditional_count_moments(np.ones((2, 2)), 1.0, axis="diag"),
    lambda: binomial_gof([1, 2, 50], 10, 0.5),
])
def test_bad_input_raises(call):
    with pytest.raises(ParameterError):
        call()
