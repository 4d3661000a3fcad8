"""Tests of prunebounds.perturbation: Neyshabur et al.'s lemma, the authors' Gamma and margin."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

from prunebounds import cache
from prunebounds.errors import ParameterError
from prunebounds.models import MLP, linear_layers, weight_matrices
from prunebounds.perturbation import (
    augmented_weights,
    authors_gamma,
    authors_t,
    needed_margin,
    output_change,
    perturbation_bound,
    perturbation_condition_holds,
)
from prunebounds.norms import max_input_norm
from prunebounds.pruning import prune_paper

# A tiny fixed 2-layer network (no biases): A1 = diag(2, 1), A2 = diag(3, 4).
A1 = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
A2 = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
# Perturbed ("pruned") weights: Delta1 = diag(0, 0.5), Delta2 = diag(1, 0).
A1_HAT = torch.tensor([[2.0, 0.0], [0.0, 0.5]])
A2_HAT = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
# ||A1|| = 2, ||A2|| = 4, ||Delta1|| = 0.5, ||Delta2|| = 1, L = 2, B = 1:
# bound = e * 1 * (2 * 4) * (0.5/2 + 1/4) = 4e = 10.873127313836...
HAND_BOUND = 10.873127313836182


def tiny_network(w1: torch.Tensor, w2: torch.Tensor) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[2].weight.copy_(w2)
    return net


def test_hand_computed_bound():
    assert perturbation_bound([2.0, 4.0], [0.5, 1.0], 1.0) == pytest.approx(HAND_BOUND, rel=1e-12)
    assert perturbation_bound([2.0, 4.0], [0.5, 1.0], 3.0) == pytest.approx(3 * HAND_BOUND)
    assert perturbation_condition_holds([2.0, 4.0], [0.5, 1.0])          # 0.5 <= 1, 1 <= 2
    assert not perturbation_condition_holds([2.0, 4.0], [1.5, 1.0])      # 1.5 > 2/2
    br = needed_margin([A1, A2], [A1_HAT, A2_HAT], input_norm=1.0, m=100)
    assert br.value == pytest.approx(HAND_BOUND, rel=1e-9)              # square layers: Gamma = 1
    assert br.product_of_norms == pytest.approx(8.0)
    assert br.sum_of_ratios == pytest.approx(0.5)
    assert br.product_of_gammas == 1.0 and br.e_times_b == pytest.approx(math.e)
    assert br.delta_norms == pytest.approx((0.5, 1.0)) and br.condition_holds


def test_hand_network_change_below_bound():
    f, g = tiny_network(A1, A2), tiny_network(A1_HAT, A2_HAT)
    # x = (0.6, 0.8), ||x|| = 1: f(x) = (3*1.2, 4*0.8) = (3.6, 3.2); g(x) = (2*1.2, 4*0.4) = (2.4, 1.6)
    X = torch.tensor([[0.6, 0.8]])
    err = output_change(f, g, X, torch.tensor([1]))
    assert err.max_correct_logit_change == pytest.approx(1.6, rel=1e-6)
    assert err.max_sup_change == pytest.approx(1.6, rel=1e-6)
    assert err.max_l2_change == pytest.approx(math.hypot(1.2, 1.6), rel=1e-6)
    assert err.max_l2_change <= HAND_BOUND * max_input_norm(X)


def test_bound_holds_on_random_networks():
    """Bias-free random ReLU network, perturbations at half the allowed size: ||change|| <= bound."""
    g = torch.Generator().manual_seed(0)
    for trial in range(5):
        torch.manual_seed(trial)
        f = MLP([20, 30, 30, 5], bias=False)
        h = copy.deepcopy(f)
        L = len(linear_layers(f))
        with torch.no_grad():
            for lf, lh in zip(linear_layers(f), linear_layers(h)):
                D = torch.randn(lf.weight.shape, generator=g)
                D *= (torch.linalg.matrix_norm(lf.weight, 2) / (2 * L)) / torch.linalg.matrix_norm(D, 2)
                lh.weight -= D
        X = torch.randn(300, 20, generator=g)
        y = torch.randint(0, 5, (300,), generator=g)
        br = needed_margin(f, h, max_input_norm(X), m=300, with_gamma=False)
        assert br.condition_holds
        err = output_change(f, h, X, y)
        assert err.max_correct_logit_change <= err.max_l2_change <= br.value
        assert err.max_sup_change <= err.max_l2_change


def test_bound_with_biases_via_augmentation():
    """A paper-pruned network with biases: (P) on [x; 1] with augmented matrices holds."""
    torch.manual_seed(1)
    f = MLP([15, 25, 25, 4])
    h = prune_paper(f, 0.05, seed=3)                       # light pruning, condition holds
    X = torch.randn(200, 15, generator=torch.Generator().manual_seed(2))
    Af, Ah = augmented_weights(f), augmented_weights(h)
    B = math.sqrt(max_input_norm(X) ** 2 + 1)
    a_norms = [float(torch.linalg.matrix_norm(a, 2)) for a in Af]
    d_norms = [float(torch.linalg.matrix_norm(a - b, 2)) for a, b in zip(Af, Ah)]
    assert perturbation_condition_holds(a_norms, d_norms)
    bound = perturbation_bound(a_norms, d_norms, B)
    # the augmented matrices compute the same network
    Xa = torch.cat([X, torch.ones(len(X), 1)], dim=1).to(torch.float64)
    z = Xa
    for i, A in enumerate(Af):
        z = z @ A.T
        if i < len(Af) - 1:
            z = torch.relu(z)
    assert torch.allclose(z, f(X).to(torch.float64), atol=1e-5)
    # pruning leaves biases alone: augmented error norms equal the plain ones
    plain = [float(torch.linalg.matrix_norm(a - b, 2))
             for a, b in zip(weight_matrices(f), weight_matrices(h))]
    assert d_norms == pytest.approx(plain, rel=1e-6)
    assert output_change(f, h, X, torch.zeros(200, dtype=torch.long)).max_l2_change <= bound


def test_authors_gamma_closed_and_bisect():
    m, d1, d2 = 48_000, 784, 10                            # the paper's MNIST output layer
    t = math.sqrt(math.log(100 * m) / d1)
    assert authors_t(d1, m) == pytest.approx(t)
    assert 1 - m * math.exp(-t * t * d1) == pytest.approx(0.99)
    tb = authors_t(d1, m, method="bisect")
    assert abs(tb - t) <= 0.01
    assert tb == scipy.optimize.bisect(lambda s: 1 - m * np.exp(-s * s * d1) - 0.99, 0, 1,
                                       xtol=0.01)
    assert authors_gamma(d1, d2, m) == pytest.approx(math.sqrt(d2 * math.log(100 * m) / d1))
    assert authors_gamma(d1, d2, m) == pytest.approx(0.44297, abs=1e-5)
    assert abs(authors_gamma(d1, d2, m, "bisect") - authors_gamma(d1, d2, m)) <= 0.01 * math.sqrt(d2)
    for fan_in, fan_out, n in ((300, 10, 1000), (3072, 2000, 40_000), (100, 3, 50)):
        assert abs(authors_gamma(fan_in, fan_out, n, "bisect")
                   - authors_gamma(fan_in, fan_out, n)) <= 0.01 * math.sqrt(fan_out)
    assert authors_gamma(784, 784, m) == 1.0                # d2 >= d1
    assert authors_gamma(100, 200, m) == 1.0
    assert authors_gamma(10, 5, 1000, "bisect") == 1.0      # root t > 1: Gamma = 1
    with pytest.raises(ParameterError):
        authors_t(10, 1000, method="bisect")                # root outside [0, 1]
    with pytest.raises(ParameterError):
        authors_gamma(784, 10, m, method="newton")


def test_needed_margin_breakdown_multiplies():
    torch.manual_seed(4)
    f = MLP([40, 200, 2])
    h = prune_paper(f, 1.0, seed=0)
    br = needed_margin(f, h, input_norm=2.5, m=10)
    assert br.gammas[0] == 1.0                              # 40 -> 200: d2 >= d1
    t = scipy.optimize.bisect(lambda s: 1 - 10 * np.exp(-s * s * 200) - 0.99, 0, 1, xtol=0.01)
    assert br.gammas[1] == pytest.approx(t * math.sqrt(2))  # 200 -> 2, the authors' bisection
    assert br.value == pytest.approx(br.e_times_b * br.product_of_norms * br.sum_of_ratios
                                     * br.product_of_gammas)
    plain = needed_margin(f, h, input_norm=2.5, m=10, with_gamma=False)
    assert plain.value == pytest.approx(perturbation_bound(plain.weight_norms,
                                                           plain.delta_norms, 2.5))
    assert set(cache.to_jsonable(br)) >= {"value", "product_of_norms", "sum_of_ratios",
                                 "product_of_gammas", "e_times_b"}


def test_output_change_last_bias_shift():
    torch.manual_seed(5)
    f = MLP([6, 8, 3])
    h = copy.deepcopy(f)
    with torch.no_grad():
        h[-1].bias[0] += 0.5
    X = torch.randn(50, 6)
    e0 = output_change(f, h, X, torch.zeros(50, dtype=torch.long))
    assert e0.max_correct_logit_change == pytest.approx(0.5, abs=1e-6)
    assert e0.max_sup_change == pytest.approx(0.5, abs=1e-6)
    assert e0.max_l2_change == pytest.approx(0.5, abs=1e-6)
    e1 = output_change(f, h, X, torch.ones(50, dtype=torch.long))
    assert e1.max_correct_logit_change == pytest.approx(0.0, abs=1e-6)
    assert output_change(f, f, X, torch.zeros(50, dtype=torch.long)).max_l2_change == 0.0


def test_bad_input():
    with pytest.raises(ParameterError):
        perturbation_bound([1.0, 2.0], [0.1], 1.0)          # length mismatch
    with pytest.raises(ParameterError):
        perturbation_bound([1.0, 0.0], [0.1, 0.1], 1.0)     # zero weight norm
    with pytest.raises(ParameterError):
        perturbation_bound([1.0, 2.0], [-0.1, 0.1], 1.0)
    with pytest.raises(ParameterError):
        perturbation_bound([1.0], [0.1], -1.0)
    with pytest.raises(ParameterError):                     # widths do not chain
        needed_margin([torch.ones(3, 2), torch.ones(4, 4)], [torch.ones(3, 2), torch.ones(4, 4)],
                      1.0, m=10)
    with pytest.raises(ParameterError):                     # shapes differ from the pruned ones
        needed_margin([A1, A2], [A1_HAT], 1.0, m=10)
    with pytest.raises(ParameterError):
        authors_gamma(784, 10, 0)
    with pytest.raises(ParameterError):
        output_change(tiny_network(A1, A2), tiny_network(A1, A2), torch.ones(3, 2),
                      torch.zeros(2, dtype=torch.long))


# --------------------------------------------------------------------------- additions for the pruning chapter
def _net_and_data(seed=6, widths=(20, 40, 40, 5), n=300):
    torch.manual_seed(seed)
    f = MLP(list(widths))
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(n, widths[0], generator=g)
    y = torch.randint(0, widths[-1], (n,), generator=g)
    return f, X, y


def test_needed_margin_from_norms_matches():
    from prunebounds.perturbation import needed_margin_from_norms
    f, X, y = _net_and_data()
    h = prune_paper(f, 2.0, seed=1)
    br = needed_margin(f, h, 3.0, m=300)
    again = needed_margin_from_norms(br.weight_norms, br.delta_norms,
                                     [tuple(w.shape) for w in weight_matrices(f)], 3.0, 300)
    assert again == br
    with pytest.raises(ParameterError):
        needed_margin_from_norms(br.weight_norms, br.delta_norms, [(40, 20)], 3.0, 300)


def test_output_change_with_reference_logits():
    f, X, y = _net_and_data()
    h = prune_paper(f, 1.0, seed=2)
    ref = f(X).detach()
    assert output_change(None, h, X, y, reference_logits=ref) == output_change(f, h, X, y)
    with pytest.raises(ParameterError):
        output_change(None, h, X, y)
    with pytest.raises(ParameterError):
        output_change(None, h, X, y, reference_logits=ref[:10])


def test_pruning_probe_against_direct_computation():
    from prunebounds.perturbation import PruningProbe
    from prunebounds.pruning import kept_fractions
    f, X, y = _net_and_data()
    probe = PruningProbe(f, X, y)
    for d in (0.02, 3.0):
        h = prune_paper(f, d, seed=3)
        r = probe.evaluate(h)
        br = needed_margin(f, h, max_input_norm(X), m=len(X))   # full SVD, the authors' form
        assert r.authors.value == pytest.approx(br.value, rel=1e-9)
        assert r.delta_norms == pytest.approx(list(br.delta_norms), rel=1e-9)
        assert r.kept == pytest.approx(kept_fractions(h))
        Af, Ah = augmented_weights(f), augmented_weights(h)
        a_norms = [float(torch.linalg.matrix_norm(a, 2)) for a in Af]
        d_norms = [float(torch.linalg.matrix_norm(a - b, 2)) for a, b in zip(Af, Ah)]
        B = math.sqrt(max_input_norm(X) ** 2 + 1)
        assert r.textbook == pytest.approx(perturbation_bound(a_norms, d_norms, B), rel=1e-9)
        assert r.textbook_condition == perturbation_condition_holds(a_norms, d_norms)
        err = output_change(f, h, X, y)
        assert r.output.max_l2_change == pytest.approx(err.max_l2_change, rel=1e-6)
        assert r.output.max_correct_logit_change == pytest.approx(err.max_correct_logit_change, rel=1e-6)
        wrong = (h(X).argmax(1) != y).double().mean().item()
        assert r.train_error == pytest.approx(wrong)
        mean_sq = [float(((a - b) ** 2).mean()) for a, b in zip(weight_matrices(f), weight_matrices(h))]
        assert r.mean_sq_delta == pytest.approx(mean_sq, rel=1e-5)
        if r.textbook_condition:                     # a theorem: the truth lies below
            assert r.output.max_l2_change <= r.textbook
    light = probe.evaluate(prune_paper(f, 0.02, seed=3))
    assert light.textbook_condition
    assert probe.evaluate(prune_paper(f, 1.0, seed=0), true_error=False).output is None


def test_certified_d_bisection():
    from prunebounds.perturbation import PruningProbe, certified_d
    f, X, y = _net_and_data(widths=(20, 40, 5))
    probe = PruningProbe(f, X, y)
    needed = lambda d: probe.evaluate(prune_paper(f, d, 4), true_error=False).authors.value  # noqa: E731
    gamma = needed(1.0)
    d_star = certified_d(probe, f, gamma, seed=4, rel_tol=1e-4)
    assert needed(d_star) <= gamma
    assert needed(d_star * 1.01) > gamma or d_star == pytest.approx(1.0, rel=2e-2)
    assert certified_d(probe, f, -0.5, seed=4) == 0.0
    assert certified_d(probe, f, 1e12, seed=4, d_max=7.0) == 7.0


# --------------------------------------------------------------------------- the provable chain
def test_provable_chain_by_hand():
    from prunebounds.perturbation import ProvableChain, provable_needed_margin
    from prunebounds.pruning import weight_variance
    from prunebounds.random_matrices import provable_error_norm_bound
    f, X, y = _net_and_data()
    B = max_input_norm(X)
    chain = ProvableChain(f, B, failure=0.2)
    L = len(weight_matrices(f))
    assert chain.lam == pytest.approx(L / 0.2)
    r = chain.margin(2.0)
    b = [provable_error_norm_bound(w.shape[0], w.shape[1], 2.0, weight_variance(w))
         for w in weight_matrices(f)]
    a_norms = [float(torch.linalg.matrix_norm(a, 2)) for a in augmented_weights(f)]
    hand = perturbation_bound(a_norms, [chain.lam * x for x in b], math.sqrt(B * B + 1))
    assert r.value == pytest.approx(hand, rel=1e-9)
    assert r.expected_bounds == pytest.approx(b) and r.failure == 0.2
    assert r.condition_holds == perturbation_condition_holds(a_norms, [chain.lam * x for x in b])
    assert provable_needed_margin(f, 2.0, B, failure=0.2).value == pytest.approx(r.value)
    # the provable bound lies above the bound with measured norms, mask by mask here
    h = prune_paper(f, 2.0, seed=1)
    measured = [float(torch.linalg.matrix_norm(a - w, 2)) for a, w in
                zip(weight_matrices(f), weight_matrices(h))]
    assert all(m <= db for m, db in zip(measured, r.delta_bounds))
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ParameterError, match="failure"):
            ProvableChain(f, B, failure=bad)


def test_provable_certified_d_is_the_largest_fitting_d():
    from prunebounds.perturbation import ProvableChain
    f, X, y = _net_and_data(widths=(20, 40, 5))
    chain = ProvableChain(f, max_input_norm(X), failure=0.5)
    values = [chain.margin(d).value for d in (0.01, 0.1, 1.0, 5.0)]
    assert values == sorted(values)                   # grows with d
    gamma = chain.margin(0.05).value * 1.0001
    d_star = chain.certified_d(gamma)
    m = chain.margin(d_star)
    assert m.value <= gamma and (m.condition_holds or d_star == 0.0)
    nxt = chain.margin(d_star * 1.001)
    assert nxt.value > gamma or not nxt.condition_holds
    assert chain.certified_d(-1.0) == 0.0


def test_probe_evaluate_with_given_delta_norms():
    from prunebounds.perturbation import PruningProbe
    f, X, y = _net_and_data()
    probe = PruningProbe(f, X, y)
    h = prune_paper(f, 1.5, seed=2)
    a = probe.evaluate(h)
    b = probe.evaluate(h, delta_norms=probe.delta_norms(h))
    assert a == b
    with pytest.raises(ParameterError, match="delta_norms"):
        probe.evaluate(h, delta_norms=[1.0])
