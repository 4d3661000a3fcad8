"""Tests of prunebounds.gaussianity against closed forms, quadrature and Monte Carlo."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from prunebounds import cache
from prunebounds import gaussianity as G
from prunebounds.errors import ParameterError
from prunebounds.pruning import (
    error_fourth_moment,
    error_second_moment,
    expected_keep_fraction,
    keep_probability,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- shape
def test_excess_kurtosis_of_known_laws():
    n = 1_000_000
    assert G.excess_kurtosis(rng(1).normal(size=n)) == pytest.approx(0.0, abs=0.02)
    assert G.excess_kurtosis(rng(2).laplace(size=n)) == pytest.approx(3.0, abs=0.15)
    assert G.excess_kurtosis(rng(3).uniform(-1, 1, size=n)) == pytest.approx(-1.2, abs=0.01)
    # Student-t with nu = 10: 6 / (nu - 4) = 1
    assert G.excess_kurtosis(rng(4).standard_t(10, size=n)) == pytest.approx(1.0, abs=0.15)
    # a torch tensor of any shape is accepted
    t = torch.tensor(rng(5).uniform(-1, 1, size=(500, 400)), dtype=torch.float32)
    assert G.excess_kurtosis(t) == pytest.approx(-1.2, abs=0.02)


def test_qq_correlation_against_direct_computation():
    x = rng(6).normal(size=100_000)
    r = G.qq_correlation(x)
    assert r > 0.9999
    n = x.size
    direct = np.corrcoef(np.sort(x), stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n))[0, 1]
    assert r == pytest.approx(direct, abs=1e-5)
    u = rng(7).uniform(size=100_000)
    r_u = G.qq_correlation(u)
    direct_u = np.corrcoef(np.sort(u), stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n))[0, 1]
    assert r_u == pytest.approx(direct_u, abs=1e-4)
    assert r_u < 0.985


def test_qq_points_cover_the_tails_and_follow_the_diagonal():
    x = rng(8).normal(size=50_000)
    z, q = G.qq_points(x, n_points=100)
    assert np.all(np.diff(z) > 0) and np.all(np.diff(q) >= 0)
    s = np.sort((x - x.mean()) / x.std())
    assert q[0] == s[0] and q[-1] == s[-1]
    central = np.abs(z) < 2
    assert np.max(np.abs(q[central] - z[central])) < 0.05


def test_tail_ratios_closed_forms():
    n = 2_000_000
    normal = G.tail_ratios(rng(9).normal(size=n), ks=(2, 3))
    assert normal["2"] == pytest.approx(1.0, rel=0.02)
    assert normal["3"] == pytest.approx(1.0, rel=0.06)
    # Laplace with sd sigma: P(|X| > k sigma) = exp(-k sqrt 2)
    lap = G.tail_ratios(rng(10).laplace(size=n), ks=(3,))
    assert lap["3"] == pytest.approx(math.exp(-3 * math.sqrt(2)) / (2 * stats.norm.sf(3)),
                                     rel=0.03)
    assert G.tail_ratios(rng(11).uniform(size=10_000))["2"] == 0.0


def test_wasserstein_of_uniform_against_quadrature():
    # standardized uniform has quantile function sqrt(3) (2p - 1)
    exact, _ = integrate.quad(lambda p: abs(math.sqrt(3) * (2 * p - 1) - stats.norm.ppf(p)),
                              0, 1, limit=200)
    w1 = G.wasserstein_to_normal(rng(12).uniform(size=1_000_000))
    assert w1 == pytest.approx(exact, abs=2e-3)
    # and it agrees with scipy's W1 between the two empirical laws
    x = rng(13).laplace(size=20_000)
    z = (x - x.mean()) / x.std()
    ref = stats.wasserstein_distance(z, stats.norm.ppf((np.arange(z.size) + 0.5) / z.size))
    assert G.wasserstein_to_normal(x) == pytest.approx(ref, rel=1e-9)
    assert G.wasserstein_to_normal(rng(14).normal(size=1_000_000)) < 3e-3


def test_normality_tests_accept_normal_and_reject_uniform():
    ok = G.normality_tests(rng(15).normal(size=5_000))
    assert min(ok.ks_p, ok.dagostino_p, ok.jarque_bera_p) > 1e-3
    assert ok.ad_p >= 0.01
    bad = G.normality_tests(rng(16).uniform(size=100_000))
    assert bad.ks_p < 1e-10 and bad.dagostino_p < 1e-10 and bad.ad_p == 0.01
    # KS distance of the standardized uniform law to N(0, 1), by a fine grid
    x = np.linspace(-math.sqrt(3), math.sqrt(3), 200_001)
    d_exact = np.max(np.abs((x + math.sqrt(3)) / (2 * math.sqrt(3)) - stats.norm.cdf(x)))
    assert bad.ks_D == pytest.approx(d_exact, abs=0.005)
    assert None not in cache.to_jsonable(bad).values()      # every test was run


def test_pvalues_fall_with_n_while_the_effect_size_stays():
    x = rng(17).laplace(size=200_000)
    out = G.pvalues_by_sample_size(x, [100, 100_000], seed=0)
    assert out.n == (100, 100_000)
    assert out.ks_p[1] < 1e-12 < out.ks_p[0]
    assert abs(out.ks_D[1] - out.ks_D[0]) < 0.1
    with pytest.raises(ParameterError):
        G.pvalues_by_sample_size(x[:50], [100])


# --------------------------------------------------------------------------- fits
def test_fits_recover_known_parameters():
    t5 = G.fit_families(rng(18).standard_t(5, size=200_000) * 0.02, n_fit=50_000)
    assert t5["t"]["df"] == pytest.approx(5.0, rel=0.12)
    assert t5["t"]["scale"] == pytest.approx(0.02, rel=0.03)
    assert t5["t"]["loglik"] > t5["normal"]["loglik"]
    lap = G.fit_families(rng(19).laplace(size=100_000), n_fit=50_000)
    assert lap["gennorm"]["beta"] == pytest.approx(1.0, abs=0.05)
    nor = G.fit_families(rng(20).normal(size=100_000), n_fit=50_000)
    assert nor["gennorm"]["beta"] == pytest.approx(2.0, abs=0.08)
    assert nor["t"]["df"] > 50
    uni = G.fit_families(rng(21).uniform(-1, 1, size=20_000), n_fit=None)
    assert uni["gennorm"]["beta"] > 10  # the uniform law is the limit beta -> infinity
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(G.family_pdf("normal", nor["normal"], x),
                               stats.norm.pdf(x, nor["normal"]["loc"], nor["normal"]["scale"]))
    with pytest.raises(ParameterError):
        G.frozen("cauchy", {})


@pytest.mark.parametrize("family,params", [
    ("normal", {"loc": 0.001, "scale": 0.02}),
    ("t", {"df": 4.0, "loc": -0.002, "scale": 0.03}),
    ("t", {"df": 1e12, "loc": 0.0, "scale": 0.02}),
    ("gennorm", {"beta": 1.3, "loc": 0.0, "scale": 0.05}),
    ("gennorm", {"beta": 2000.0, "loc": 0.0, "scale": 0.05}),
])
def test_fast_density_equals_scipy(family, params):
    f = G.density(family, params)
    x = np.linspace(-0.2, 0.2, 401)
    np.testing.assert_allclose([f(v) for v in x], G.family_pdf(family, params, x),
                               rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- the rule's expectations
@pytest.mark.parametrize("d,psi", [(0.1, 1.0), (1.0, 4e-4), (3.0, 2.0), (10.0, 0.05)])
def test_quad_under_the_normal_law_is_the_closed_form(d, psi):
    q = G.rule_expectations_quad(stats.norm(0, math.sqrt(psi)).pdf, d, psi)
    assert q.keep == pytest.approx(expected_keep_fraction(d), rel=1e-9, abs=1e-12)
    assert q.m2 == pytest.approx(error_second_moment(d, psi), rel=1e-8)
    assert q.m4 == pytest.approx(error_fourth_moment(d, psi), rel=1e-8)
    assert abs(q.mean) < 1e-12 * math.sqrt(psi)
    g = G.rule_expectations_gaussian(d, psi)
    assert g.keep == pytest.approx(q.keep, rel=1e-9) and g.mean == 0.0


@pytest.mark.parametrize("d", [0.25, 1.0, 10.0])
def test_quad_under_the_uniform_law_closed_form(d):
    # W ~ U(-a, a), Psi = a^2/3: P(drop) = sqrt(pi d / 12) erf(sqrt(3 / d))
    a = 0.05
    psi = a * a / 3
    keep = 1 - math.sqrt(math.pi * d / 12) * special.erf(math.sqrt(3 / d))
    q = G.rule_expectations_quad(stats.uniform(-a, 2 * a).pdf, d, psi, points=(-a, a))
    assert q.keep == pytest.approx(keep, rel=1e-8)
    # a generalized normal with a huge beta is (nearly) this uniform law
    g = G.rule_expectations_fit("gennorm", {"beta": 5000.0, "loc": 0.0, "scale": a}, d, psi)
    assert g.keep == pytest.approx(keep, rel=2e-3)


def test_quad_under_student_t_approaches_the_normal():
    d, psi = 1.0, 1.0
    chi = expected_keep_fraction(d)
    errs = []
    for df in (3.0, 10.0, 100.0, 1e5):
        scale = math.sqrt(psi * (df - 2) / df)  # the t law with variance psi
        params = {"df": df, "loc": 0.0, "scale": scale}
        keep = G.rule_expectations_fit("t", params, d, psi).keep
        assert keep == pytest.approx(
            G.rule_expectations_quad(stats.t(df, scale=scale).pdf, d, psi).keep, rel=1e-9)
        errs.append(abs(keep - chi))
    assert errs == sorted(errs, reverse=True)
    assert errs[-1] < 1e-4


def test_quad_under_laplace_against_monte_carlo():
    n, d, psi = 2_000_000, 2.0, 0.5
    b = math.sqrt(psi / 2)
    w = rng(22).laplace(scale=b, size=n)
    q = G.rule_expectations_quad(stats.laplace(scale=b).pdf, d, psi, points=(0.0,))
    drop = rng(23).random(n) >= keep_probability(w, d, psi)
    delta = np.where(drop, w, 0.0)
    assert np.mean(~drop) == pytest.approx(q.keep, abs=5 * math.sqrt(0.25 / n))
    assert np.mean(delta ** 2) == pytest.approx(q.m2, rel=0.01)
    assert np.mean(delta ** 4) == pytest.approx(q.m4, rel=0.03)


def test_empirical_expectations_of_a_gaussian_sample():
    n, psi = 1_000_000, 0.3
    w = rng(24).normal(0, math.sqrt(psi), n)
    for d in (0.5, 1.0, 10.0):
        e = G.rule_expectations_empirical(w, d)
        chi = expected_keep_fraction(d)
        # the sample's keep probabilities have variance < chi(1 - chi); 5 sd
        assert abs(e.keep - chi) < 5 * math.sqrt(chi * (1 - chi) / n)
        assert e.m2 == pytest.approx(error_second_moment(d, psi), rel=0.01)
        assert e.m4 == pytest.approx(error_fourth_moment(d, psi), rel=0.03)
        assert abs(e.mean) < 5 * math.sqrt(e.m2 / n)
    assert G.rule_expectations_quad(stats.norm(0, 1).pdf, 0.0, 1.0) == \
        G.RuleExpectations(keep=1.0, mean=0.0, m2=0.0, m4=0.0)


def test_measured_scatters_around_the_empirical_expectation():
    W = rng(25).laplace(scale=0.03, size=(600, 500))
    d = 2.0
    Delta = G.error_matrix(W, d, seed=1)
    m = G.rule_measured(W, W - Delta)
    e = G.rule_expectations_empirical(W, d)
    n = W.size
    assert abs(m.keep - e.keep) < 5 * math.sqrt(0.25 / n)
    assert m.m2 == pytest.approx(e.m2, rel=0.02)
    assert abs(m.mean - e.mean) < 5 * math.sqrt(e.m2 / n)
    hand = G.rule_measured(np.array([1.0, -2.0, 3.0, 0.5, 0, 0, 0, 0]),
                           np.array([1.0, 0.0, 3.0, 0.0, 0, 0, 0, 0]))
    assert hand.keep == 0.25 and hand.mean == pytest.approx(-1.5 / 8)
    assert hand.m2 == pytest.approx(4.25 / 8) and hand.m4 == pytest.approx(16.0625 / 8)


# --------------------------------------------------------------------------- independence
def test_norm_spread_iid_predictions():
    psi = 0.01
    W = rng(26).normal(0, math.sqrt(psi), size=(2000, 700))
    s = G.norm_spread(W, "rows")
    assert s.n == 700 and s.count == 2000
    assert s.mean == pytest.approx(psi * 700, rel=0.01)
    tol = 5 * math.sqrt(1 / (2 * 2000))
    assert abs(s.ratio_iid - 1) < tol and abs(s.ratio_gauss - 1) < tol
    # chi^2 law of the squared norms: a KS test against psi * chi2(n)
    assert stats.kstest(G.squared_norms(W, "rows") / psi, stats.chi2(700).cdf).pvalue > 1e-3
    c = G.norm_spread(W, "cols")
    assert c.n == 2000 and c.count == 700 and abs(c.ratio_iid - 1) < 5 * math.sqrt(1 / 1400)
    # uniform entries: Var(W^2) / (2 Psi^2) = 0.4, so the Gaussian ratio is sqrt(0.4)
    U = rng(27).uniform(-1, 1, size=(2000, 700))
    u = G.norm_spread(U, "rows")
    assert u.ratio_gauss == pytest.approx(math.sqrt(0.4), rel=0.05)
    assert abs(u.ratio_iid - 1) < tol
    # rows with different scales: the entries are not identically distributed
    scaled = W * rng(28).uniform(0.5, 1.5, size=(2000, 1))
    assert G.norm_spread(scaled, "rows").ratio_iid > 3
    assert abs(G.norm_spread(G.shuffled(scaled, 0), "rows").ratio_iid - 1) < tol


def test_correlation_rms():
    W = rng(29).normal(size=(300, 400))
    assert G.correlation_rms(W, "rows") == pytest.approx(1.0, abs=0.03)
    assert G.correlation_rms(W, "cols") == pytest.approx(1.0, abs=0.03)
    spiked = W + 0.5 * np.outer(rng(30).normal(size=300), rng(31).normal(size=400))
    assert G.correlation_rms(spiked, "rows") > 3


def test_marchenko_pastur_law():
    for y in (0.1, 0.5, 1.0):
        a, b = G.marchenko_pastur_edges(y)
        f = lambda x: float(G.marchenko_pastur_pdf(np.array([x]), y)[0])  # noqa: E731
        mass, _ = integrate.quad(f, a, b, limit=200)
        mean, _ = integrate.quad(lambda x: x * f(x), a, b, limit=200)
        assert mass == pytest.approx(1.0, abs=1e-6) and mean == pytest.approx(1.0, abs=1e-6)
    # eigenvalues of a Gaussian matrix follow the law
    W = rng(32).normal(0, 0.1, size=(400, 1000))
    eig, y = G.normalized_spectrum(W)
    assert y == 0.4 and eig.size == 400
    a, b = G.marchenko_pastur_edges(y)
    for x in (0.5, 1.0, 2.0):
        cdf, _ = integrate.quad(lambda t: float(G.marchenko_pastur_pdf(np.array([t]), y)[0]),
                                a, x, limit=200)
        assert np.mean(eig <= x) == pytest.approx(cdf, abs=0.02)
    s = G.mp_summary(W)
    assert s.top_over_edge == pytest.approx(1.0, abs=0.03) and s.n_above <= 2
    # the same matrix transposed gives the same spectrum
    np.testing.assert_allclose(G.normalized_spectrum(W.T)[0], eig, rtol=1e-10, atol=1e-12)
    spiked = W + 0.05 * np.outer(np.ones(400), np.ones(1000))
    assert G.mp_summary(spiked).top_over_edge > 2


def test_conditional_mean_and_error_matrix():
    W = rng(33).normal(0, 0.2, size=(6, 5))
    d = 1.5
    M = G.conditional_error_mean(W, d)
    draws = np.mean([G.error_matrix(W, d, seed=s) for s in range(4000)], axis=0)
    np.testing.assert_allclose(draws, M, atol=5 * 0.2 * 0.5 / math.sqrt(4000))
    D = G.error_matrix(W, d, seed=0)
    assert np.all((D == 0) | (D == W))


def test_iid_prediction():
    B = rng(35).normal(0, 0.3, size=(1000, 800))
    pred = G.iid_norm_prediction(0.09, B.shape)
    assert np.linalg.norm(B, 2) == pytest.approx(pred, rel=0.02)


def test_shuffled_keeps_the_values():
    W = rng(36).normal(size=(20, 30))
    S = G.shuffled(W, 1)
    assert S.shape == W.shape and not np.array_equal(S, W)
    np.testing.assert_array_equal(np.sort(S.ravel()), np.sort(W.ravel()))


def test_describe_layer_is_json_able():
    W = torch.randn(40, 50, generator=torch.Generator().manual_seed(0))
    out = G.describe_layer(W, n_fit=500)
    assert out.shape == (40, 50) and out.n == 2000
    assert set(out.fits) == set(G.FAMILIES)
    json.dumps(cache.to_jsonable(out))     # JSON-able for the results cache
    light = G.describe_layer(W, n_fit=500, full=False)
    json.dumps(cache.to_jsonable(light))
    assert set(light.fits) == {"normal", "gennorm"} and light.corr_rows is None
    assert light.tests.ks_D == pytest.approx(out.tests.ks_D)
    assert light.mp == out.mp and light.excess_kurtosis == out.excess_kurtosis


def test_bad_inputs_raise_parameter_errors():
    with pytest.raises(ParameterError, match="at least 8"):
        G.excess_kurtosis([1.0, 2.0])
    with pytest.raises(ParameterError, match="finite"):
        G.qq_correlation(np.array([1.0] * 10 + [np.nan]))
    with pytest.raises(ParameterError, match="2-D"):
        G.norm_spread(np.ones(10))
    with pytest.raises(ParameterError, match="valid values"):
        G.norm_spread(np.ones((3, 3)), axis="diagonal")
    with pytest.raises(ParameterError, match="no spread"):
        G.tail_ratios(np.ones(20))
    with pytest.raises(ParameterError):
        G.marchenko_pastur_edges(1.5)


def test_compare_predictions_and_error_norms_on_a_gaussian_layer():
    psi = 0.02 ** 2
    W = rng(37).normal(0, math.sqrt(psi), size=(500, 400))
    d = 1.0
    Delta = G.error_matrix(W, d, seed=2)
    fits = G.fit_families(W, n_fit=20_000)
    c = G.compare_predictions(W, W - Delta, d, fits)
    assert set(cache.to_jsonable(c)) == {"gaussian", "t", "gennorm", "empirical", "measured"}
    for src in ("t", "gennorm", "empirical"):
        assert getattr(c, src).keep == pytest.approx(c.gaussian.keep, rel=0.02)
        assert getattr(c, src).m2 == pytest.approx(c.gaussian.m2, rel=0.04)
    assert c.measured.keep == pytest.approx(c.gaussian.keep, rel=0.01)
    n = G.error_norms(W, W - Delta, d, seed=3)
    for key in ("actual", "shuffled"):
        assert getattr(n, key) == pytest.approx(n.gaussian_iid, rel=0.05)
    # for a symmetric i.i.d. layer M is an i.i.d. mean-zero matrix: its norm is ~ iid
    M = G.conditional_error_mean(W, d)
    assert n.conditional_mean_iid == pytest.approx(
        G.iid_norm_prediction(float(np.mean(M ** 2)), W.shape), rel=1e-12)
    assert n.conditional_mean == pytest.approx(n.conditional_mean_iid, rel=0.05)
    # a rank-one spike in W passes into M
    spiked = W + 0.004 * np.outer(np.ones(500), np.ones(400))
    s = G.error_norms(spiked, spiked - G.error_matrix(spiked, 10.0, seed=4), 10.0, seed=3)
    assert s.conditional_mean > 2 * s.conditional_mean_iid
