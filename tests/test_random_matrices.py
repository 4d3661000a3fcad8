"""Tests of prunebounds.random_matrices: Latala, Bandeira-van Handel, Frobenius, Markov."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunebounds import cache
from prunebounds.errors import ParameterError
from prunebounds.pruning import (
    error_abs_moment,
    error_fourth_moment,
    error_second_moment,
    keep_probability,
)
from prunebounds.random_matrices import (
    bandeira_van_handel_bound,
    bandeira_van_handel_bound_iid,
    frobenius_bound,
    frobenius_bound_iid,
    latala_bound,
    latala_bound_iid,
    markov_factor,
    markov_probability,
)


def pruning_errors(n_rows: int, n_cols: int, d: float, psi: float, trials: int, seed: int):
    """Sampled Delta = W 1[dropped] with W_ij ~ N(0, psi) i.i.d., shape (trials, n, m)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, math.sqrt(psi), (trials, n_rows, n_cols))
    return np.where(rng.random(W.shape) < keep_probability(W, d, psi), 0.0, W)


def mean_spectral_norm(X: np.ndarray) -> float:
    return float(np.linalg.norm(X, ord=2, axis=(1, 2)).mean())


# --------------------------------------------------------------------------- closed forms
def test_latala_hand_computed():
    m2 = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 1.0]])
    m4 = np.array([[1.0, 1.0, 2.0], [3.0, 0.0, 9.0]])
    # rows sums 6, 5 -> sqrt 6; column sums 5, 2, 4 -> sqrt 5; total m4 = 16 -> 2
    assert latala_bound(m2, m4) == pytest.approx(math.sqrt(6) + math.sqrt(5) + 2.0)
    assert latala_bound(torch.tensor(m2), torch.tensor(m4)) == pytest.approx(
        math.sqrt(6) + math.sqrt(5) + 2.0)


def test_iid_versions_agree_with_general():
    n, m, m2, m4 = 7, 4, 0.3, 0.5
    assert latala_bound_iid(n, m, m2, m4) == pytest.approx(
        latala_bound(np.full((n, m), m2), np.full((n, m), m4)))
    assert latala_bound_iid(n, m, m2, m4) == pytest.approx(
        math.sqrt(m * m2) + math.sqrt(n * m2) + (n * m * m4) ** 0.25)
    assert frobenius_bound_iid(n, m, m2) == pytest.approx(frobenius_bound(np.full((n, m), m2)))
    assert frobenius_bound_iid(n, m, m2) == pytest.approx(math.sqrt(n * m * m2))
    assert bandeira_van_handel_bound_iid(n, m, m2) == pytest.approx(
        bandeira_van_handel_bound(np.full((n, m), m2)))


def test_bvh_closed_form_iid():
    n, m, b2, eps = 30, 20, 0.25, 0.5
    c = 6 / math.sqrt(math.log(1 + eps))
    expected = (1 + eps) * (math.sqrt(m * b2) + math.sqrt(n * b2) + c * 0.5 * math.sqrt(math.log(20)))
    assert bandeira_van_handel_bound_iid(n, m, b2, eps=eps) == pytest.approx(expected)
    dil = (1 + eps) * (2 * math.sqrt(n * b2) + c * 0.5 * math.sqrt(math.log(50)))
    assert bandeira_van_handel_bound_iid(n, m, b2, eps=eps, version="dilation") == pytest.approx(dil)
    best = bandeira_van_handel_bound_iid(n, m, b2, eps="best")
    assert best <= expected + 1e-9
    for e in (0.05, 0.1, 0.2, 0.3, 0.4):
        assert best <= bandeira_van_handel_bound_iid(n, m, b2, eps=e) + 1e-9


def test_markov_factor():
    assert markov_factor(0.5) == pytest.approx(2.0)
    assert markov_factor(0.9) == pytest.approx(10.0)
    assert markov_factor(0.0) == 1.0
    for p in (0.0, 0.3, 0.95):
        assert markov_probability(markov_factor(p)) == pytest.approx(p)
    with pytest.raises(ParameterError):
        markov_factor(1.0)
    with pytest.raises(ParameterError):
        markov_probability(0.5)


# --------------------------------------------------------------------------- bounds that are theorems, against sampled norms
def test_frobenius_bound_dominates_pruning_error_norm():
    n, m, d, psi = 40, 30, 2.0, 0.5
    X = pruning_errors(n, m, d, psi, trials=200, seed=0)
    bound = frobenius_bound_iid(n, m, error_second_moment(d, psi))
    fro = np.sqrt((X ** 2).sum(axis=(1, 2)))
    mc_spec = mean_spectral_norm(X)
    assert mc_spec <= float(fro.mean())
    # E||X||_F <= sqrt(E||X||_F^2) = bound (Jensen), nearly tight: allow MC noise (3 se)
    assert float(fro.mean()) <= bound + 3 * float(fro.std()) / math.sqrt(len(fro))
    assert mc_spec < 0.5 * bound                            # the spectral norm is far below
    # and the moment matrix itself matches the sampled second moments (sanity)
    assert float((X ** 2).mean()) == pytest.approx(error_second_moment(d, psi), rel=0.03)


def test_bvh_gaussian_dominates_monte_carlo():
    """Inhomogeneous Gaussian matrix b_ij g_ij: all Gaussian versions >= MC mean norm."""
    rng = np.random.default_rng(1)
    n, m, trials = 50, 30, 200
    b = rng.uniform(0.0, 1.0, (n, m))
    b[:10, :] *= 3.0                                       # a few heavy rows
    X = b * rng.standard_normal((trials, n, m))
    mc = mean_spectral_norm(X)
    se = float(np.linalg.norm(X, ord=2, axis=(1, 2)).std()) / math.sqrt(trials)
    for version in ("gaussian", "dilation"):
        for eps in (0.5, "best"):
            assert bandeira_van_handel_bound(b ** 2, eps=eps, version=version) >= mc + 3 * se
    assert frobenius_bound(b ** 2) >= mc


def test_bvh_symmetric_dominates_pruning_error():
    """Corollary-3.6 version (symmetric entries, via the dilation) >= MC mean ||Delta||."""
    n, m, d, psi = 40, 30, 1.0, 0.2
    X = pruning_errors(n, m, d, psi, trials=200, seed=2)
    bound = bandeira_van_handel_bound_iid(
        n, m, error_second_moment(d, psi), version="symmetric",
        abs_moment_norm=lambda p: error_abs_moment(d, psi, p) ** (1.0 / p))
    assert bound >= mean_spectral_norm(X)
    # the heuristic Gaussian version is also above the measured mean here
    assert bandeira_van_handel_bound_iid(n, m, error_second_moment(d, psi)) >= mean_spectral_norm(X)




def test_latala_moments_of_pruning_error_are_consistent():
    """Latala's inputs for Delta: E X^2 and E X^4 from pruning.py, checked by MC (not a bound)."""
    n, m, d, psi = 30, 20, 3.0, 1.0
    X = pruning_errors(n, m, d, psi, trials=400, seed=3)
    assert float((X ** 4).mean()) == pytest.approx(error_fourth_moment(d, psi), rel=0.05)
    value = latala_bound_iid(n, m, error_second_moment(d, psi), error_fourth_moment(d, psi))
    assert value > 0 and math.isfinite(value)


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    with pytest.raises(ParameterError):
        latala_bound(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ParameterError):
        latala_bound(-np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ParameterError):
        frobenius_bound(np.ones(4))
    with pytest.raises(ParameterError):
        bandeira_van_handel_bound(np.ones((2, 2)), eps=0.9)
    with pytest.raises(ParameterError):
        bandeira_van_handel_bound(np.ones((2, 2)), version="symmetric")
    with pytest.raises(ParameterError):
        bandeira_van_handel_bound(np.ones((2, 2)), version="poisson")
    with pytest.raises(ParameterError):
        bandeira_van_handel_bound(np.ones((2, 2)), version="symmetric", alpha=2.0,
                                  abs_moment_norm=lambda p: 1.0)
    with pytest.raises(ParameterError):
        latala_bound_iid(0, 3, 1.0, 1.0)


# --------------------------------------------------------------------------- additions for the pruning chapter






def test_asymptotic_norm_iid():
    from prunebounds.random_matrices import asymptotic_norm_iid
    assert asymptotic_norm_iid(400, 100, 4.0) == pytest.approx(2 * (20 + 10))
    X = np.random.default_rng(5).standard_normal((1000, 500)) * 0.3
    assert np.linalg.norm(X, 2) / asymptotic_norm_iid(1000, 500, 0.09) == pytest.approx(1.0, abs=0.03)


def test_error_lp_norm_against_abs_moment_and_large_p():
    from prunebounds.pruning import error_lp_norm
    for d, psi, p in ((1.0, 0.5, 2), (3.0, 2.0, 7.5), (10.0, 0.01, 40)):
        assert error_lp_norm(d, psi, p) == pytest.approx(error_abs_moment(d, psi, p) ** (1 / p),
                                                         rel=1e-10)
    big = error_lp_norm(1.0, 1.0, 2000)          # the moment itself overflows a float
    assert math.isfinite(big) and big > error_lp_norm(1.0, 1.0, 200)
    assert error_lp_norm(0.0, 1.0, 10) == 0.0


def test_bvh_iid_closed_form_all_versions():
    n, m, m2 = 9, 6, 0.7
    pn = lambda p: 1.3 * math.sqrt(p)  # noqa: E731
    for version, kw in (("gaussian", {}), ("dilation", {}),
                        ("symmetric", {"abs_moment_norm": pn, "alpha": 4.0})):
        assert bandeira_van_handel_bound_iid(n, m, m2, version=version, **kw) == pytest.approx(
            bandeira_van_handel_bound(np.full((n, m), m2), version=version, **kw), rel=1e-12)


def test_pruning_error_norm_bounds():
    from prunebounds.pruning import error_lp_norm
    from prunebounds.random_matrices import SYMMETRIC_ALPHAS, asymptotic_norm_iid, \
        pruning_error_norm_bounds
    n, m, d, psi = 40, 30, 2.0, 0.5
    b = pruning_error_norm_bounds(n, m, d, psi)
    m2, m4 = error_second_moment(d, psi), error_fourth_moment(d, psi)
    assert b.latala_c1 == pytest.approx(latala_bound_iid(n, m, m2, m4))
    assert b.frobenius == pytest.approx(frobenius_bound_iid(n, m, m2))
    assert b.asymptotic == pytest.approx(asymptotic_norm_iid(n, m, m2))
    assert b.bvh_gaussian == pytest.approx(bandeira_van_handel_bound_iid(n, m, m2, eps="best"))
    sym = [bandeira_van_handel_bound_iid(n, m, m2, version="symmetric", alpha=a,
                                         abs_moment_norm=lambda p: error_lp_norm(d, psi, p))
           for a in SYMMETRIC_ALPHAS]
    assert b.bvh_symmetric == pytest.approx(min(sym))
    X = pruning_errors(n, m, d, psi, trials=200, seed=7)
    mc = mean_spectral_norm(X)
    assert b.bvh_symmetric >= mc and b.frobenius >= mc        # the two theorems
    assert set(cache.to_jsonable(pruning_error_norm_bounds(n, m, 0.0, psi)).values()) == {0.0}
    huge = pruning_error_norm_bounds(10 ** 6, 10 ** 6, 1.0, 1.0)   # closed forms, no arrays
    assert huge.frobenius / huge.asymptotic == pytest.approx(500.0)
    assert huge.bvh_symmetric < huge.frobenius
    with pytest.raises(ParameterError):
        pruning_error_norm_bounds(10, 10, -1.0, 1.0)




# --------------------------------------------------------------------------- provable bound, thresholds, crossover
def test_provable_error_norm_bound_is_the_smaller_theorem():
    from prunebounds.random_matrices import provable_error_norm_bound, pruning_error_norm_bounds
    for n, m, d, psi in [(784, 784, 1.0, 0.01), (10, 784, 10.0, 0.3), (2000, 2000, 3.0, 1.0)]:
        b = pruning_error_norm_bounds(n, m, d, psi)
        assert provable_error_norm_bound(n, m, d, psi) == pytest.approx(
            min(b.bvh_symmetric, b.frobenius), rel=1e-12)
    assert provable_error_norm_bound(50, 50, 0.0, 1.0) == 0.0


def test_threshold_bounds_hold_by_monte_carlo_and_frobenius_is_exact():
    from prunebounds.pruning import threshold_error_abs_moment, threshold_for_keep
    from prunebounds.random_matrices import threshold_error_norm_bounds
    n, m, keep = 80, 60, 0.3
    rng = np.random.default_rng(5)
    W = rng.normal(size=(200, n, m))
    tau = threshold_for_keep(keep)
    delta = np.where(np.abs(W) < tau, W, 0.0)
    measured = mean_spectral_norm(delta)
    b = threshold_error_norm_bounds(n, m, keep, 1.0)
    assert b.frobenius == pytest.approx(math.sqrt(n * m * threshold_error_abs_moment(tau, 1.0, 2)))
    assert b.bvh_symmetric >= measured and b.frobenius >= measured
    assert b.asymptotic == pytest.approx(measured, rel=0.15)   # the large-matrix value


def test_crossover_width_against_a_linear_scan():
    from prunebounds.random_matrices import crossover_width, pruning_error_norm_bounds

    def below(n, d):
        b = pruning_error_norm_bounds(n, n, d, 1.0)
        return b.bvh_symmetric < b.frobenius

    for d in (1.0, 10.0):
        n = crossover_width(d)
        assert below(n, d) and not below(n - 1, d)
        # one crossing only around it (the bound's small steps in p do not undo it)
        scan = [below(k, d) for k in range(n - 150, n + 400, 7)]
        assert scan == sorted(scan)
    assert (crossover_width(1.0), crossover_width(10.0)) == (1417, 1137)  # the book's constants
    with pytest.raises(ParameterError, match="d must be > 0"):
        crossover_width(0.0)
    with pytest.raises(ParameterError, match="larger n_max"):
        crossover_width(1.0, n_max=500)
