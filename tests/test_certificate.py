"""Checks of prunebounds.certificate: the kl inverse, the Occam bound, certify, errors."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import entropy

from prunebounds import certificate as K
from prunebounds import coding as C
from prunebounds.data import synthetic
from prunebounds.errors import ParameterError
from prunebounds.models import build
from prunebounds.pruning import prune_magnitude
from prunebounds.train import optimiser_config, make_sgd, train_epoch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Small tensors on a shared machine: one thread spares seconds of thread contention."""
    before = torch.get_num_threads()
    yield torch.set_num_threads(1)
    torch.set_num_threads(before)


def kl_scipy(q: float, p: float) -> float:
    """kl(q || p) computed apart, as the relative entropy of two Bernoulli laws."""
    return float(entropy([q, 1 - q], [p, 1 - p]))


def kl_root(q: float, c: float) -> float:
    """The crossing kl(q || p) = c on (q, 1), by scipy's brentq."""
    return brentq(lambda p: kl_scipy(q, p) - c, q, 1 - 1e-15, xtol=1e-15, rtol=1e-15)


@pytest.mark.parametrize("q,p", [(0.1, 0.5), (0.02, 0.3), (0.0, 0.2), (1.0, 0.7),
                                 (0.3, 0.3), (0.9, 0.05)])
def test_kl_matches_scipy(q, p):
    assert K.kl_bernoulli(q, p) == pytest.approx(kl_scipy(q, p), rel=1e-12, abs=1e-15)


def test_kl_edges():
    assert K.kl_bernoulli(0.2, 0.0) == math.inf
    assert K.kl_bernoulli(0.2, 1.0) == math.inf
    assert K.kl_bernoulli(0.0, 0.0) == 0.0 and K.kl_bernoulli(1.0, 1.0) == 0.0


@pytest.mark.parametrize("q,c", [(0.0, 0.01), (0.01, 0.1), (0.02, 0.0925), (0.05, 0.3),
                                 (0.3, 0.05), (0.5, 1.0), (0.9, 0.01), (0.001, 2.0)])
def test_kl_inverse_matches_brentq(q, c):
    p = K.kl_inverse_upper(q, c)
    assert p == pytest.approx(kl_root(q, c), abs=1e-10)
    assert p >= q
    # a valid upper bound: the true crossing is not above it
    assert p >= kl_root(q, c) - 1e-12


def test_kl_inverse_hand_worked():
    # By hand: kl(0.1 || 0.5) = 0.1 ln(0.1/0.5) + 0.9 ln(0.9/0.5)
    #                         = 0.1 (-1.6094379) + 0.9 (0.5877867)
    #                         = -0.1609438 + 0.5290080 = 0.3680642,
    # so the upper inverse of kl(0.1 || .) at c = 0.3680642 is p = 0.5.
    assert K.kl_inverse_upper(0.1, 0.36806421) == pytest.approx(0.5, abs=1e-7)
    # q = 0: kl(0 || p) = -ln(1 - p), so c = ln 2 gives p = 1/2.
    assert K.kl_inverse_upper(0.0, math.log(2.0)) == pytest.approx(0.5, abs=1e-11)


def test_kl_inverse_edge_cases():
    assert K.kl_inverse_upper(0.3, 0.0) == 0.3
    assert K.kl_inverse_upper(1.0, 0.5) == 1.0
    assert K.kl_inverse_upper(0.0, 0.1) == pytest.approx(1 - math.exp(-0.1), abs=1e-11)
    assert K.kl_inverse_upper(0.2, 50.0) == pytest.approx(1.0, abs=1e-9)


def test_occam_bound_worked_example():
    # 8,000 bits, m = 60,000, delta = 0.05, training error 2%:
    # c = (8000 ln 2 + ln 20) / 60000 = (5545.1774 + 2.9957) / 60000 = 0.0924696.
    c = (8000 * math.log(2) + math.log(20)) / 60000
    assert c == pytest.approx(0.0924696, abs=1e-7)
    bound = K.occam_kl_bound(0.02, 8000, 60000, 0.05)
    assert bound == pytest.approx(kl_root(0.02, c), abs=1e-10)
    # a union over N = 64 choices adds ln 64 nats
    with64 = K.occam_kl_bound(0.02, 8000, 60000, 0.05, n_choices=64)
    assert with64 == pytest.approx(kl_root(0.02, c + math.log(64) / 60000), abs=1e-10)
    # 6 bits in the code cost exactly what the union over 64 choices costs
    assert K.occam_kl_bound(0.02, 8006, 60000, 0.05) == pytest.approx(with64, abs=1e-10)


def test_bits_for_bound_inverts_the_bound():
    for q, target in [(0.02, 0.2), (0.05, 0.35), (0.0, 0.1)]:
        bits = K.bits_for_bound(q, target, 60000, 0.05, n_choices=4)
        assert bits > 0
        assert K.occam_kl_bound(q, bits, 60000, 0.05, 4) == pytest.approx(target, abs=1e-9)
    assert K.bits_for_bound(0.3, 0.2, 60000) < 0  # no code certifies below the training error


def test_bound_is_monotone():
    bits = [1000, 4000, 16000, 64000]
    by_bits = [K.occam_kl_bound(0.03, b, 60000) for b in bits]
    assert all(a < b for a, b in zip(by_bits, by_bits[1:]))
    ms = [5000, 20000, 60000, 240000]
    by_m = [K.occam_kl_bound(0.03, 8000, m) for m in ms]
    assert all(a > b for a, b in zip(by_m, by_m[1:]))
    by_q = [K.occam_kl_bound(q, 8000, 60000) for q in (0.0, 0.01, 0.05, 0.2)]
    assert all(a < b for a, b in zip(by_q, by_q[1:]))
    by_delta = [K.occam_kl_bound(0.03, 8000, 60000, d) for d in (0.001, 0.01, 0.1)]
    assert all(a > b for a, b in zip(by_delta, by_delta[1:]))


def test_bad_arguments_name_the_fix():
    for delta in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ParameterError, match="open interval"):
            K.occam_kl_bound(0.1, 100, 1000, delta)
    for m in (0, -5):
        with pytest.raises(ParameterError, match="m \\(number of training samples\\)"):
            K.occam_kl_bound(0.1, 100, m)
    with pytest.raises(ParameterError):
        K.occam_kl_bound(1.2, 100, 1000)
    with pytest.raises(ParameterError):
        K.kl_inverse_upper(0.1, -1.0)
    with pytest.raises(ParameterError):
        K.occam_kl_bound(0.1, 100, 1000, n_choices=0)


def test_a_bound_below_the_test_error_is_flagged():
    K.check_not_below_test_error(0.2, 0.05)
    with pytest.raises(ParameterError, match="mistake"):
        K.check_not_below_test_error(0.04, 0.05)


@pytest.fixture(scope="module")
def trained():
    """The smoke MLP trained for 2 epochs on 20,000 synthetic images, then pruned."""
    train, test = synthetic(20000, seed=1), synthetic(2000, seed=2)
    net = build("smoke", 0)
    opt = optimiser_config("paper-mnist")
    sgd, gen = make_sgd(net, opt), torch.Generator().manual_seed(0)
    for _ in range(2):
        train_epoch(net, train.X, train.y, sgd, opt, gen)
    return prune_magnitude(net, [0.98, 0.8, 0.3]), train, test


def test_certify_uses_the_real_code_length(trained):
    net, train, test = trained
    spec = C.CodeSpec(bits=2, bias_bits=4)
    cert = K.certify(net, spec, train.X, train.y, delta=0.05, n_choices=8,
                     X_test=test.X, y_test=test.y)
    code = C.encode(net, spec)
    assert cert.code_bits == 8 * len(code) == cert.breakdown.total
    decoded = C.decode(code)
    assert cert.train_error == K.error_rate(decoded, train.X, train.y)
    expected_c = (cert.code_bits * math.log(2) + math.log(1 / 0.05) + math.log(8)) / len(train.X)
    assert cert.complexity == pytest.approx(expected_c, rel=1e-12)
    assert cert.bound == pytest.approx(kl_root(cert.train_error, expected_c), abs=1e-9)
    assert cert.train_error <= cert.bound <= 1.0
    assert cert.test_error is not None and cert.bound >= cert.test_error
    assert cert.m == len(train.X) and cert.n_kept == C.quantise_network(net, spec).n_kept


def test_certify_flags_a_bound_below_the_test_error(trained):
    net, train, test = trained
    shuffled = test.y[torch.randperm(len(test.y), generator=torch.Generator().manual_seed(0))]
    cert = K.certify(net, C.CodeSpec(bits=2, bias_bits=4), train.X, train.y)
    assert cert.bound < 0.5  # the bound itself is fine ...
    with pytest.raises(ParameterError, match="mistake"):  # ... but not for scrambled labels
        K.certify(net, C.CodeSpec(bits=2, bias_bits=4), train.X, train.y,
                  X_test=test.X, y_test=shuffled)


def test_certify_rejects_bad_input(trained):
    net, train, _ = trained
    with pytest.raises(ParameterError, match="open interval"):
        K.certify(net, C.CodeSpec(bits=2), train.X, train.y, delta=1.0)
    with pytest.raises(ParameterError, match="m \\(number of training samples\\)"):
        K.certify(net, C.CodeSpec(bits=2), train.X[:0], train.y[:0])
