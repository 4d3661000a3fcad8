"""Tests of prunebounds.pruning: the paper's rule, its Gaussian moments, the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from torch import nn

from prunebounds.errors import ParameterError
from prunebounds.models import MLP, linear_layers
from prunebounds.pruning import (
    GaussianMagnitudePruning,
    error_abs_moment,
    error_fourth_moment,
    error_second_moment,
    expected_keep_fraction,
    keep_probability,
    kept_fractions,
    prune_like,
    prune_magnitude,
    prune_paper,
    prune_random,
    weight_variance,
)


def gaussian_pdf(w: float, psi: float) -> float:
    return math.exp(-w * w / (2 * psi)) / math.sqrt(2 * math.pi * psi)


def small_model(seed: int = 0, widths=(12, 16, 8, 3)) -> MLP:
    torch.manual_seed(seed)
    return MLP(list(widths))


def big_gaussian_layer(n: int, std: float, seed: int) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(n, n)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(n, n, generator=g) * std)
    return nn.Sequential(layer)


# --------------------------------------------------------------------------- closed forms
def test_chi_known_points():
    assert expected_keep_fraction(1.0) == pytest.approx(1 - 1 / math.sqrt(3), abs=1e-15)
    assert expected_keep_fraction(0.0) == 1.0
    assert expected_keep_fraction(10.0) == pytest.approx(1 - math.sqrt(10 / 12), abs=1e-15)
    assert expected_keep_fraction(1.0) == pytest.approx(0.423, abs=5e-4)  # PAPER.md
    assert expected_keep_fraction(10.0) == pytest.approx(0.087, abs=5e-4)
    assert isinstance(expected_keep_fraction(2), float)


def test_chi_array_and_tensor_in_array_out():
    d = np.array([0.0, 1.0, 2.0])
    out = expected_keep_fraction(d)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, [1.0, 1 - 1 / math.sqrt(3), 1 - math.sqrt(0.5)])
    t = expected_keep_fraction(torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert isinstance(t, torch.Tensor)
    assert float(t[1]) == pytest.approx(1 - math.sqrt(4 / 6))


def test_chi_monte_carlo():
    """Kept fraction of 10^6 N(0, psi) draws pruned by the rule vs chi(d) (5 sd)."""
    rng = np.random.default_rng(1)
    psi, n = 0.3, 1_000_000
    w = rng.normal(0.0, math.sqrt(psi), n)
    u = rng.random(n)
    for d in (0.5, 1.0, 4.0, 10.0):
        kept = np.mean(u < keep_probability(w, d, psi))
        chi = expected_keep_fraction(d)
        assert abs(kept - chi) < 5 * math.sqrt(chi * (1 - chi) / n)


@pytest.mark.parametrize("d,psi", [(0.5, 1.0), (1.0, 0.02), (3.0, 2.5), (10.0, 0.1)])
def test_moments_against_quadrature(d, psi):
    """E[W^2 exp(-W^2/(d psi))], E[W^4 ...], E[|W|^p ...] by quad vs the closed forms."""
    drop = lambda w: math.exp(-w * w / (d * psi))  # noqa: E731
    for power, closed in ((2, error_second_moment(d, psi)), (4, error_fourth_moment(d, psi)),
                          (7.5, error_abs_moment(d, psi, 7.5))):
        val, _ = integrate.quad(lambda w: abs(w) ** power * gaussian_pdf(w, psi) * drop(w),
                                -np.inf, np.inf, epsabs=0, epsrel=1e-11)
        assert closed == pytest.approx(val, rel=1e-8)
    assert error_abs_moment(d, psi, 2) == pytest.approx(error_second_moment(d, psi), rel=1e-12)
    assert error_abs_moment(d, psi, 4) == pytest.approx(error_fourth_moment(d, psi), rel=1e-12)
    p_drop, _ = integrate.quad(lambda w: gaussian_pdf(w, psi) * drop(w), -np.inf, np.inf)
    assert 1 - p_drop == pytest.approx(expected_keep_fraction(d), rel=1e-9)


def test_moments_monte_carlo():
    """Moments of Delta = W 1[dropped] over 10^6 draws (mean ~ 0, 2nd and 4th moments)."""
    rng = np.random.default_rng(2)
    d, psi, n = 1.0, 0.5, 1_000_000
    w = rng.normal(0.0, math.sqrt(psi), n)
    delta = np.where(rng.random(n) < keep_probability(w, d, psi), 0.0, w)
    m2, m4 = error_second_moment(d, psi), error_fourth_moment(d, psi)
    assert abs(delta.mean()) < 5 * math.sqrt(m2 / n)
    assert delta.var() + delta.mean() ** 2 == pytest.approx(m2, rel=0.01)
    assert np.mean(delta ** 4) == pytest.approx(m4, rel=0.03)


def test_moments_zero_at_d_zero_and_validation():
    assert error_second_moment(0.0, 1.0) == 0.0
    assert error_fourth_moment(0.0, 1.0) == 0.0
    with pytest.raises(ParameterError):
        expected_keep_fraction(-0.1)
    with pytest.raises(ParameterError):
        expected_keep_fraction(np.array([1.0, -1.0]))
    with pytest.raises(ParameterError):
        keep_probability(0.3, -1.0, 1.0)
    with pytest.raises(ParameterError):
        error_second_moment(1.0, -2.0)


def test_keep_probability_kinds_and_limits():
    assert keep_probability(0.0, 1.0, 1.0) == 0.0
    assert keep_probability(1.0, 0.0, 1.0) == 1.0          # d = 0 keeps everything
    assert keep_probability(2.0, 1.0, 1.0) == pytest.approx(1 - math.exp(-4.0))
    t = keep_probability(torch.tensor([0.0, 3.0]), 2.0, 1.0)
    assert isinstance(t, torch.Tensor) and float(t[1]) == pytest.approx(1 - math.exp(-4.5))


# --------------------------------------------------------------------------- the mask method
def test_mask_frequency_for_fixed_weights():
    """Keep frequency of fixed small and large weights vs 1 - exp(-w^2/(d psi))."""
    a, b, n, d = 0.1, 2.0, 50_000, 1.0
    t = torch.cat([torch.full((n,), a), torch.full((n,), -a), torch.full((n,), b),
                   torch.full((n,), -b)])
    psi = (a * a + b * b) / 2                               # population variance of t
    assert weight_variance(t) == pytest.approx(psi, rel=1e-6)
    method = GaussianMagnitudePruning(d, torch.Generator().manual_seed(3))
    mask = method.compute_mask(t, torch.ones_like(t))
    for value, chunk in ((a, mask[: 2 * n]), (b, mask[2 * n:])):
        p = 1 - math.exp(-value * value / (d * psi))
        freq = float(chunk.mean())
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / (2 * n))


def test_mask_ignores_masked_entries():
    """Masked entries stay masked and do not enter psi (variance of unmasked entries)."""
    n, d = 100_000, 2.0
    g = torch.Generator().manual_seed(4)
    t = torch.full((2 * n,), 1.0)
    t[n:] = 1e6                                             # huge, but already masked
    t[: n // 2] = -1.0                                      # unmasked: +-1, psi = 1
    default = torch.ones(2 * n)
    default[n:] = 0
    mask = GaussianMagnitudePruning(d, g).compute_mask(t, default)
    assert float(mask[n:].sum()) == 0.0
    p = 1 - math.exp(-1.0 / d)
    assert abs(float(mask[:n].mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_mask_method_seeded_and_d_zero():
    t = torch.randn(50, 40, generator=torch.Generator().manual_seed(5))
    m1 = GaussianMagnitudePruning(1.0, torch.Generator().manual_seed(9)).compute_mask(
        t, torch.ones_like(t))
    m2 = GaussianMagnitudePruning(1.0, torch.Generator().manual_seed(9)).compute_mask(
        t, torch.ones_like(t))
    assert torch.equal(m1, m2)
    m0 = GaussianMagnitudePruning(0.0).compute_mask(t, torch.ones_like(t))
    assert bool((m0 == 1).all())
    with pytest.raises(ParameterError):
        GaussianMagnitudePruning(-1.0)


def test_prune_paper_kept_fraction_matches_chi():
    """A 700 x 700 Gaussian layer pruned by prune_paper keeps about chi(d) of its weights."""
    model = big_gaussian_layer(700, 0.05, seed=6)
    n = 700 * 700
    for d in (1.0, 5.0):
        kept = kept_fractions(prune_paper(model, d, seed=1))[0]
        chi = expected_keep_fraction(d)
        assert abs(kept - chi) < 5 * math.sqrt(chi * (1 - chi) / n) + 2e-3  # + psi estimation


def test_prune_paper_copy_biases_and_permanence():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = prune_paper(model, 2.0, seed=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])                    # original untouched
    for layer, orig in zip(linear_layers(pruned), linear_layers(model)):
        assert torch.equal(layer.bias, orig.bias)           # biases never pruned
        assert not hasattr(layer, "weight_orig") and not hasattr(layer, "weight_mask")
        assert isinstance(layer.weight, nn.Parameter)
        kept = layer.weight != 0
        assert torch.equal(layer.weight[kept], orig.weight[kept])  # no rescaling
    assert all(f < 1.0 for f in kept_fractions(pruned))
    assert kept_fractions(prune_paper(model, 0.0, seed=0)) == [1.0, 1.0, 1.0]
    same = prune_paper(model, 2.0, seed=0)
    other = prune_paper(model, 2.0, seed=1)
    w = lambda m: torch.cat([l.weight.flatten() for l in linear_layers(m)])  # noqa: E731
    assert torch.equal(w(pruned), w(same)) and not torch.equal(w(pruned), w(other))
    with pytest.raises(ParameterError):
        prune_paper(model, -0.5, seed=0)


# --------------------------------------------------------------------------- baselines
def test_prune_magnitude_layer():
    model = small_model(1)
    fr = [0.25, 0.5, 0.75]
    pruned = prune_magnitude(model, fr)
    for layer, orig, f in zip(linear_layers(pruned), linear_layers(model), fr):
        n = orig.weight.numel()
        zero = layer.weight == 0
        assert int(zero.sum()) == round(f * n)
        a = orig.weight.detach().abs()
        assert float(a[zero].max()) <= float(a[~zero].min())  # smallest magnitudes went
        assert torch.equal(layer.bias, orig.bias)
    assert kept_fractions(prune_magnitude(model, 0.0)) == [1.0, 1.0, 1.0]
    assert kept_fractions(prune_magnitude(model, 1.0)) == [0.0, 0.0, 0.0]


def test_prune_magnitude_global():
    model = small_model(2)
    pruned = prune_magnitude(model, 0.6, scope="global")
    a = torch.cat([l.weight.detach().abs().flatten() for l in linear_layers(model)])
    p = torch.cat([l.weight.detach().flatten() for l in linear_layers(pruned)])
    assert int((p == 0).sum()) == round(0.6 * a.numel())
    assert float(a[p == 0].max()) <= float(a[p != 0].min())   # one global threshold


def test_prune_random_and_like():
    model = small_model(3)
    state = torch.random.get_rng_state()
    r1 = prune_random(model, 0.5, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())   # global RNG untouched
    r2 = prune_random(model, 0.5, seed=7)
    for l1, l2, orig in zip(linear_layers(r1), linear_layers(r2), linear_layers(model)):
        assert torch.equal(l1.weight, l2.weight)
        assert int((l1.weight == 0).sum()) == round(0.5 * orig.weight.numel())
    ref = prune_paper(model, 3.0, seed=4)
    like = prune_like(model, ref)
    for lr, ll, orig in zip(linear_layers(ref), linear_layers(like), linear_layers(model)):
        assert int((lr.weight == 0).sum()) == int((ll.weight == 0).sum())
        zero, a = ll.weight == 0, orig.weight.detach().abs()
        if bool(zero.any()) and bool((~zero).any()):
            assert float(a[zero].max()) <= float(a[~zero].min())


def test_bad_fractions_and_scope():
    model = small_model(4)
    with pytest.raises(ParameterError):
        prune_magnitude(model, 1.5)
    with pytest.raises(ParameterError):
        prune_magnitude(model, -0.1)
    with pytest.raises(ParameterError):
        prune_magnitude(model, [0.1, 0.2])                   # wrong length
    with pytest.raises(ParameterError):
        prune_magnitude(model, [0.1, 0.2, 1.2])
    with pytest.raises(ParameterError):
        prune_magnitude(model, [0.1, 0.2, 0.3], scope="global")
    with pytest.raises(ParameterError):
        prune_magnitude(model, 0.1, scope="sideways")
    with pytest.raises(ParameterError):
        prune_random(model, 2.0, seed=0)
    with pytest.raises(ParameterError):
        prune_like(model, small_model(0, widths=(12, 16, 3)))


def test_paper_rule_sweep_equals_prune_paper_entry_for_entry():
    """The sweep's matrices are exactly prune_paper's, for every d and layer."""
    from prunebounds import models
    from prunebounds.pruning import paper_rule_sweep, prune_paper

    torch.manual_seed(1)
    net = models.MLP([30, 20, 20, 5])
    ds = [0.0, 1e-3, 0.5, 2.0, 10.0]
    got = list(paper_rule_sweep(net, ds, seed=7))
    assert [d for d, _ in got] == ds
    for d, Ws in got:
        ref = models.weight_matrices(prune_paper(net, d, 7))
        for w, r in zip(Ws, ref):
            assert w.dtype == r.dtype and torch.equal(w, r)
    with pytest.raises(ParameterError):
        list(paper_rule_sweep(net, [-0.5], seed=7))


def test_keep_diagonal_changes_the_diagonals_only():
    """Algorithm 1's variant keeps every w_ii; off the diagonal the masks are the same draws."""
    model = small_model()
    plain = prune_paper(model, 8.0, seed=4)
    diag = prune_paper(model, 8.0, seed=4, keep_diagonal=True)
    n_diag_pruned = 0
    for lp, ld, lo in zip(linear_layers(plain), linear_layers(diag), linear_layers(model)):
        eye = torch.zeros_like(lo.weight, dtype=torch.bool)
        eye.diagonal().fill_(True)
        assert torch.equal(ld.weight[eye], lo.weight[eye])        # every w_ii kept
        assert torch.equal(lp.weight[~eye], ld.weight[~eye])      # same draws elsewhere
        n_diag_pruned += int((lp.weight[eye] == 0).sum())
    assert n_diag_pruned > 0  # at d = 8 the plain rule does prune some diagonal entries


def test_drop_threshold_is_the_keep_event():
    """d < threshold(w, u) is the event u < 1 - exp(-w^2/(d Psi)) of rule (R), draw by draw,
    and its frequency over fresh draws is the keep probability (Monte Carlo)."""
    from prunebounds.pruning import drop_threshold, keep_probability

    g = torch.Generator().manual_seed(11)
    w = torch.randn(200_000, generator=g, dtype=torch.float64) * 0.3
    u = torch.rand(200_000, generator=g, dtype=torch.float64)
    psi = 0.09
    for d in (0.05, 1.0, 7.0):
        same = (drop_threshold(w, psi, u) > d) == (u < keep_probability(w, d, psi))
        assert same.double().mean() > 1 - 1e-5  # equal up to rounding at the boundary
    w0 = torch.full((400_000,), 0.45, dtype=torch.float64)
    u0 = torch.rand(400_000, generator=g, dtype=torch.float64)
    p = keep_probability(0.45, 2.0, psi)
    freq = float((drop_threshold(w0, psi, u0) > 2.0).double().mean())
    assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / 400_000)
    # a zero weight is dropped at every d > 0 (threshold 0, or NaN when u = 0)
    z = drop_threshold(torch.zeros(3, dtype=torch.float64), psi,
                       torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64))
    assert not bool((z > 1e-12).any())


def test_d_for_keep_inverts_chi():
    from prunebounds.pruning import d_for_keep
    assert d_for_keep(0.8) == pytest.approx(1 / 12, rel=1e-12)  # s = 0.04, d = 0.08/0.96
    assert d_for_keep(1.0) == 0.0
    for d in [0.0, 0.01, 0.5, 1.0, 10.0, 300.0]:
        assert d_for_keep(expected_keep_fraction(d)) == pytest.approx(d, rel=1e-9, abs=1e-12)
    with pytest.raises(ParameterError, match="keep must be > 0"):
        d_for_keep(0.0)


# --------------------------------------------------------------------------- threshold pruning
def test_threshold_for_keep_inverts_the_gaussian_tail():
    from scipy import stats
    from prunebounds.pruning import threshold_for_keep
    for keep in (0.9, 0.4226, 0.0871, 0.01):
        tau = threshold_for_keep(keep)
        assert 2 * stats.norm.sf(tau) == pytest.approx(keep, rel=1e-12)
    assert threshold_for_keep(1.0) == 0.0
    with pytest.raises(ParameterError, match="keep must be > 0"):
        threshold_for_keep(0.0)


@pytest.mark.parametrize("tau, psi", [(0.3, 1.0), (1.2, 0.5), (2.5, 2.0)])
def test_threshold_moments_against_quadrature(tau, psi):
    from scipy import integrate, stats
    from prunebounds.pruning import threshold_error_abs_moment, threshold_error_lp_norm
    t = tau * math.sqrt(psi)
    for p in (0.0, 1.0, 2.0, 4.0, 7.5):
        quad = integrate.quad(lambda w: abs(w) ** p * stats.norm(0, math.sqrt(psi)).pdf(w), -t, t,
                              epsabs=0, epsrel=1e-12)[0]
        assert threshold_error_abs_moment(tau, psi, p) == pytest.approx(quad, rel=1e-9)
    assert threshold_error_lp_norm(tau, psi, 4.0) == pytest.approx(
        threshold_error_abs_moment(tau, psi, 4.0) ** 0.25, rel=1e-12)
    # the closed form of the second moment: Psi (2 Phi(tau) - 1 - 2 tau phi(tau))
    m2 = psi * (2 * stats.norm.cdf(tau) - 1 - 2 * tau * stats.norm.pdf(tau))
    assert threshold_error_abs_moment(tau, psi, 2.0) == pytest.approx(m2, rel=1e-10)


def test_threshold_lp_norm_stays_finite_and_below_the_threshold_for_large_p():
    from prunebounds.pruning import threshold_error_lp_norm
    tau, psi = 0.8, 1.7
    norms = [threshold_error_lp_norm(tau, psi, p) for p in (2, 20, 100, 300, 2000)]
    assert all(0 < v < tau * math.sqrt(psi) for v in norms)
    assert norms == sorted(norms)                    # ||.||_p grows with p towards t
    assert norms[-1] == pytest.approx(tau * math.sqrt(psi), rel=0.01)


def test_threshold_moments_monte_carlo():
    from prunebounds.pruning import threshold_error_abs_moment
    rng = np.random.default_rng(3)
    w = rng.normal(0.0, math.sqrt(2.0), 2_000_000)
    delta = np.where(np.abs(w) < 1.1 * math.sqrt(2.0), w, 0.0)
    for p in (2.0, 4.0):
        assert np.mean(np.abs(delta) ** p) == pytest.approx(
            threshold_error_abs_moment(1.1, 2.0, p), rel=0.01)


def test_prune_threshold_matrix_fixed_and_quantile():
    from prunebounds.pruning import prune_threshold_matrix, threshold_for_keep
    W = torch.randn(300, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    keep = 0.2
    q = prune_threshold_matrix(W, keep, quantile=True)
    assert int(torch.count_nonzero(q)) == round(keep * W.numel())
    assert float(q[q != 0].abs().min()) >= float(W[q == 0].abs().max())   # the largest are kept
    f = prune_threshold_matrix(W, keep, psi=1.0)
    t = threshold_for_keep(keep)
    assert torch.equal(f, torch.where(W.abs() >= t, W, torch.zeros_like(W)))
    assert float((f != 0).double().mean()) == pytest.approx(keep, abs=0.01)
    assert torch.equal(prune_threshold_matrix(W, 1.0, quantile=True), W)
