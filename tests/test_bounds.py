"""Tests of prunebounds.bounds, .baselines and .sweeps: every bound pinned to arithmetic
done by hand.

Norms in the expected values are worked out in the comments from the matrices'
structure (diagonal, rank one, a single non-zero row), never with the library calls the
implementation uses.
"""

from __future__ import annotations

import math

import pytest
import torch

from prunebounds import baselines, norms, sketching, sweeps
from prunebounds import bounds as bd
from prunebounds.errors import ParameterError


def approx(x, rel=1e-12):
    return pytest.approx(x, rel=rel)


# A two-layer network with norms one can read off:
#   A1 = diag(3, 4):        ||A1||_F = sqrt(9 + 16) = 5,  ||A1||_2 = max |diag| = 4
#   A2 = [[6, 8], [0, 0]]:  rank one, its only row has norm sqrt(36 + 64) = 10,
#                           so ||A2||_F = ||A2||_2 = 10.
A1 = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
A2 = torch.tensor([[6.0, 8.0], [0.0, 0.0]])
NET = [A1, A2]


def bartlett_net():
    """A1 = 2 I_8 (8 x 8), A2 = [3, 0, ..., 0] (1 x 8), with reference matrices.

    ||A1||_2 = 2, ||A2||_2 = 3 (a single non-zero entry).
    Reference M1 = -14 I_8:  A1 - M1 = 16 I_8, its 8 rows have norm 16 each: b1 = 128.
    Reference M2 = [-21, 0, ...]: A2 - M2 = [24, 0, ...]: b2 = 24.
    """
    a1 = 2.0 * torch.eye(8)
    a2 = torch.zeros(1, 8)
    a2[0, 0] = 3.0
    m1 = -14.0 * torch.eye(8)
    m2 = torch.zeros(1, 8)
    m2[0, 0] = -21.0
    return [a1, a2], [m1, m2]


# ---------------------------------------------------------------- norms and conventions







# ---------------------------------------------------------------- Arora et al. and counting

def test_compression_term_forms():
    # constant-1 form: sqrt(q ln r / m) = sqrt(10 ln 2 / 100)
    assert bd.compression_term(10, 2, 100) == approx(math.sqrt(10 * math.log(2) / 100))
    # explicit Hoeffding + union bound: sqrt((10 ln 2 + ln(1/0.5)) / 200) = sqrt(11 ln 2 / 200)
    assert bd.compression_term(10, 2, 100, delta=0.5) == approx(math.sqrt(11 * math.log(2) / 200))


def test_sketch_bound_with_and_without_log_r():
    # k = (3, 4): q = 9 + 16 = 25; r = 8, m = 50
    b = bd.sketch_bound(0.1, [3, 4], 8, 50)
    assert b.details["q"] == 25
    assert b.terms["complexity"] == approx(math.sqrt(25 * math.log(8) / 50))
    assert b.details["complexity_without_log_r"] == approx(math.sqrt(0.5))
    assert b.value == approx(0.1 + math.sqrt(math.log(8) / 2))
    assert b.details["value_without_log_r"] == approx(0.1 + math.sqrt(0.5))


def test_authors_sketch_bound():
    # q = 10*20*0.5*ln(20)^2 + 5*10*0.5*ln(10)^2, bound = 0.2 + sqrt(q / 100)
    q = 100 * math.log(20) ** 2 + 25 * math.log(10) ** 2
    b = bd.authors_sketch_bound(0.2, [(10, 20), (5, 10)], 0.5, 100)
    assert b.details["q"] == approx(q)
    assert b.value == approx(0.2 + math.sqrt(q / 100))
    # per-layer keep fractions; (out, in) order does not matter
    b2 = bd.authors_sketch_bound(0.2, [torch.zeros(20, 10), (10, 5)], [0.5, 0.5], 100)
    assert b2.value == approx(b.value)


def test_sparse_and_dense_count():
    # one 4 x 5 layer, 3 non-zeros, r = 4: q = ln C(20, 3) + 3 ln 4 = ln 1140 + 3 ln 4
    q = math.log(1140) + 3 * math.log(4)
    b = bd.sparse_count_bound(0.0, [3], [(4, 5)], 4, 50)
    assert b.details["q_nats"] == approx(q)
    assert b.value == approx(math.sqrt(q / 50))
    # dense: all 20 entries, 20 ln 4 nats
    d = bd.dense_count_bound(0.0, 20, 4, 50)
    assert d.value == approx(math.sqrt(20 * math.log(4) / 50))
    assert b.value < d.value


# ---------------------------------------------------------------- norm-based baselines

def test_neyshabur2015_by_hand():
    # L = 2, k = 2 classes (output dim), B = 1.5, gamma = 2, m = 400, delta = 0.05
    # prod ||A||_F = 5 * 10 = 50
    # Rademacher = 2^(L-1) B prod_F sqrt(2/m) = 2 * 1.5 * 50 * sqrt(2)/20 = 7.5 sqrt(2)
    # complexity = (4k/gamma) * Rademacher = 4 * 7.5 sqrt(2) = 30 sqrt(2)
    # confidence = sqrt(ln(1/0.05) / 800) = sqrt(ln 20 / 800)
    b = baselines.neyshabur2015_bound(NET, 1.5, 2.0, 400, delta=0.05, empirical_margin_loss=0.01)
    assert b.details["frobenius_product"] == approx(50)
    assert b.details["rademacher"] == approx(7.5 * math.sqrt(2))
    assert b.terms["complexity"] == approx(30 * math.sqrt(2))
    assert b.terms["confidence"] == approx(math.sqrt(math.log(20) / 800))
    assert b.value == approx(0.01 + 30 * math.sqrt(2) + math.sqrt(math.log(20) / 800))
    assert b.vacuous and b.dominant_term == "complexity"


def test_spectral_complexity_by_hand():
    ws, refs = bartlett_net()
    # zero reference: b1 = 8 rows * 2 = 16, s1 = 2 -> ratio 8 -> 8^(2/3) = 4
    #                 b2 = 3, s2 = 3 -> ratio 1 -> 1;  R_A = (2*3) * (4 + 1)^(3/2) = 30 sqrt(5)
    sc0 = baselines.spectral_complexity(ws)
    assert sc0.ratio_sum == approx(5)
    assert sc0.R_A == approx(30 * math.sqrt(5))
    # reference = init: ratios 128/2 = 64 -> 16 and 24/3 = 8 -> 4; sum 20
    # R_A = 6 * 20^(3/2) = 6 * 40 sqrt(5) = 240 sqrt(5)
    sc = baselines.spectral_complexity(ws, refs)
    assert sc.ratio_sum == approx(20)
    assert sc.R_A == approx(240 * math.sqrt(5))


def test_bartlett2017_by_hand():
    ws, refs = bartlett_net()
    # ||X||_F = 10, gamma = 2, m = 100, delta = 0.1, W = 8 (largest dimension)
    # offset = 8/100; complexity = 72 * 10 * ln(16) * ln(100) * 240 sqrt(5) / (2 * 100)
    # confidence = 3 sqrt(ln(2/0.1) / 200) = 3 sqrt(ln 20 / 200)
    b = baselines.bartlett2017_bound(ws, refs, 10.0, 2.0, 100, 0.1, empirical_margin_loss=0.05)
    comp = 72 * 10 * math.log(16) * math.log(100) * 240 * math.sqrt(5) / 200
    assert b.details["width"] == 8
    assert b.terms["offset"] == approx(0.08)
    assert b.terms["complexity"] == approx(comp)
    assert b.terms["confidence"] == approx(3 * math.sqrt(math.log(20) / 200))
    assert b.value == approx(0.05 + 0.08 + comp + 3 * math.sqrt(math.log(20) / 200))
    # explicit width is used as given
    b16 = baselines.bartlett2017_bound(ws, refs, 10.0, 2.0, 100, 0.1, width=16)
    assert b16.terms["complexity"] == approx(comp * math.log(32) / math.log(16))


def test_neyshabur2018_by_hand():
    # B = 1.5, d = 2, h = 2, gamma = 2, m = 400, delta = 0.05, constant 1
    # prod ||W||_2^2 = 16 * 100 = 1600; sum ||W||_F^2/||W||_2^2 = 25/16 + 100/100 = 41/16
    # kl_part = B^2 d^2 h ln(dh) * 1600 * 41/16 = 2.25 * 4 * 2 * ln 4 * 4100 = 73800 ln 4
    # log_part = ln(d m / delta) = ln(16000)
    # complexity = sqrt((kl + log) / (gamma^2 m)) = sqrt((73800 ln 4 + ln 16000) / 1600)
    b = baselines.neyshabur2018_bound(NET, 1.5, 2.0, 400, 0.05)
    assert b.details["kl_part"] == approx(73800 * math.log(4))
    assert b.details["log_part"] == approx(math.log(16000))
    expected = math.sqrt((73800 * math.log(4) + math.log(16000)) / 1600)
    assert b.terms["complexity"] == approx(expected)
    assert baselines.neyshabur2018_bound(NET, 1.5, 2.0, 400, 0.05, constant=3.0).terms["complexity"] \
        == approx(3 * expected)


# ---------------------------------------------------------------- the authors' variants

def test_authors_variants_by_hand():
    # gamma = 2: prod F^2 = 25 * 100 = 2500 -> 2500 / 4 = 625
    assert baselines.authors_neyshabur2015(NET, 2.0) == approx(625)
    # prod s^2 = 1600, sum F^2/s^2 = 41/16 -> 1600 * 41/16 / 4 = 1025
    assert baselines.authors_bartlett2017(NET, 2.0) == approx(1025)
    # fan-ins 2 and 2: 1600 * (2 * 25/16 + 2 * 1) / 4 = 1600 * 5.125 / 4 = 2050
    assert baselines.authors_neyshabur2018(NET, 2.0) == approx(2050)


def test_authors_bartlett_is_their_frobenius_formula():
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(7, 5, generator=g), torch.randn(3, 7, generator=g)]
    gamma = 0.7
    fro_sq = [float((w.double() ** 2).sum()) for w in ws]
    spec_sq = [float(torch.linalg.svdvals(w.double())[0]) ** 2 for w in ws]
    expected = math.prod(spec_sq) * sum(f / s for f, s in zip(fro_sq, spec_sq)) / gamma ** 2
    assert baselines.authors_bartlett2017(ws, gamma) == approx(expected, rel=1e-10)
    for w, f in zip(ws, fro_sq):
        assert norms.authors_lpq_norm(w, 1, 2) == approx(math.sqrt(f), rel=1e-10)


# ---------------------------------------------------------------- assembly and monotonicity

def random_net(seed=0):
    g = torch.Generator().manual_seed(seed)
    init = [torch.randn(16, 12, generator=g) / 4, torch.randn(10, 16, generator=g) / 4]
    final = [w + 0.1 * torch.randn(w.shape, generator=g) for w in init]
    final[0][final[0].abs() < 0.05] = 0.0                   # a few pruned entries
    return final, init


def test_all_bounds_are_sums_of_their_parts():
    ws, init = random_net()
    res = sweeps.all_bounds(ws, init, input_norm=3.0, X_norm_fro=300.0, gamma=0.5, m=10_000,
                        delta=0.05, empirical_margin_loss=0.02, k_list=[6, 6],
                        keep_fraction=0.4)
    expected = {"dense_count", "sparse_count", "sketch", "authors_sketch", "neyshabur2015",
                "bartlett2017", "neyshabur2018", "authors_neyshabur2015",
                "authors_bartlett2017", "authors_neyshabur2018"}
    assert set(res) == expected
    for name, b in res.items():
        assert b.value == pytest.approx(math.fsum(b.terms.values()), rel=1e-12), name
        assert float(b) == b.value
        if b.on_probability:
            assert b.terms["empirical_margin_loss"] == 0.02
            assert b.vacuous == (b.value > 1)
        else:
            assert b.vacuous is None
    # nnz defaults to the non-zeros of the weights
    nnz = sum(int((w != 0).sum()) for w in ws)
    assert res["sparse_count"].details["nnz"] == nnz
    rows = sweeps.bounds_table(res)
    assert len(rows) == len(res) and all("dominant_term" in r for r in rows)


@pytest.mark.parametrize("which", ["neyshabur2015", "bartlett2017", "neyshabur2018"])
def test_norm_bounds_monotone_in_m_and_gamma(which):
    ws, init = random_net(1)

    def value(m, gamma):
        if which == "neyshabur2015":
            return baselines.neyshabur2015_bound(ws, 3.0, gamma, m).value
        if which == "bartlett2017":
            return baselines.bartlett2017_bound(ws, init, 300.0, gamma, m, 0.05).value
        return baselines.neyshabur2018_bound(ws, 3.0, gamma, m, 0.05).value

    assert value(1_000, 1.0) > value(10_000, 1.0) > value(100_000, 1.0)
    assert value(10_000, 0.1) > value(10_000, 1.0) > value(10_000, 10.0)


def test_counting_bounds_monotone_in_m():
    for m in (100, 1_000):
        assert bd.sketch_bound(0.0, [10], 16, m).value > bd.sketch_bound(0.0, [10], 16, 10 * m).value
        assert bd.dense_count_bound(0.0, 100, 16, m).value > bd.dense_count_bound(0.0, 100, 16, 10 * m).value




# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("gamma", [0.0, -1.0])
def test_nonpositive_margin_rejected(gamma):
    with pytest.raises(ParameterError, match="positive margin"):
        baselines.neyshabur2015_bound(NET, 1.0, gamma, 10)
    with pytest.raises(ParameterError, match="gamma"):
        baselines.authors_bartlett2017(NET, gamma)


def test_bad_inputs():
    bad_chain = [torch.randn(3, 4), torch.randn(2, 5)]
    with pytest.raises(ParameterError, match="do not chain"):
        baselines.neyshabur2018_bound(bad_chain, 1.0, 1.0, 10)
    with pytest.raises(ParameterError, match="m"):
        bd.compression_term(10, 2, 0)
    with pytest.raises(ParameterError, match="delta"):
        baselines.bartlett2017_bound(NET, None, 1.0, 1.0, 10, delta=1.5)
    with pytest.raises(ParameterError, match="reference"):
        baselines.bartlett2017_bound(NET, [A1], 1.0, 1.0, 10)
    with pytest.raises(ParameterError, match="empirical_margin_loss"):
        bd.sketch_bound(1.5, [3], 2, 10)
    with pytest.raises(ParameterError, match="2-D"):
        baselines.authors_neyshabur2015([torch.ones(3)], 1.0)
    with pytest.raises(ParameterError, match="all zeros"):
        baselines.spectral_complexity([torch.zeros(2, 2)])
    with pytest.raises(ParameterError, match="entries"):
        bd.sparse_count_bound(0.0, [1, 2], [(2, 2)], 2, 10)
    with pytest.raises(ParameterError, match="r "):
        bd.dense_count_bound(0.0, 10, 1, 10)


def test_precomputed_spectral_norms_give_the_same_values():
    # ||A1||_2 = 4, ||A2||_2 = 10 (see NET above)
    assert baselines.neyshabur2018_bound(NET, 1.5, 2.0, 400, 0.05, spectral_norms=[4.0, 10.0]).value \
        == approx(baselines.neyshabur2018_bound(NET, 1.5, 2.0, 400, 0.05).value)
    assert baselines.authors_neyshabur2018(NET, 2.0, spectral_norms=[4.0, 10.0]) == approx(2050)
    with pytest.raises(ParameterError, match="spectral_norms"):
        baselines.authors_bartlett2017(NET, 2.0, spectral_norms=[4.0])


# ---------------------------------------------------------------- the assembled paper bound

def test_counting_bound_splits_the_square_root_exactly():
    # q_nats = 8, m = 4, delta = e^-2: sqrt(8 / 8) = 1 and sqrt((8 + 2) / 8) = sqrt(1.25)
    b = bd.counting_bound("x", 0.25, 8.0, 4, math.exp(-2.0))
    assert b.terms["complexity"] == approx(1.0)
    assert b.terms["confidence"] == approx(math.sqrt(1.25) - 1.0)
    assert b.value == approx(0.25 + math.sqrt(1.25))
    assert b.details["sqrt_term"] == approx(math.sqrt(1.25))
    # the explicit form of compression_term is the unsplit square root
    assert bd.compression_term(2.0, 55, 4, math.exp(-2.0)) == approx(
        math.sqrt((2 * math.log(55) + 2.0) / 8.0))


def sketch_net():
    """Layer 1: the 200 x 200 identity (one non-zero per row and column, j = 1).
    Layer 2: a dense 6 x 200 block of ones (rows have 200 non-zeros, columns 6: j = 200).
    """
    return [torch.eye(200), torch.ones(6, 200)]


def test_sketch_sizes_by_hand():
    s1, s2 = sketching.sketch_sizes(sketch_net())
    # layer 1: k = sqrt(1 * 200) ln 200 = 14.142... * 5.298... = 74.93 -> 75, below 200
    assert s1.j == 1 and s1.p == 200
    assert s1.k_theory == approx(math.sqrt(200) * math.log(200))
    assert (s1.k_out, s1.k_in, s1.capped, s1.n_params) == (75, 75, False, 75 * 75)
    # layer 2: j = 200, k = sqrt(200 * 200) ln 200 = 1059.7: capped on both sides -> dense
    assert s2.j == 200 and s2.shape == (6, 200)
    assert (s2.k_out, s2.k_in, s2.capped, s2.n_params) == (6, 200, True, 1200)
    # constant c = 1/2: k = 37.46 -> 38
    assert sketching.sketch_sizes([torch.eye(200)], c=0.5)[0].k_out == 38


def test_sketch_sizes_mixed_cap():
    # out = 6, in = 4; non-zeros: row counts <= 2, column counts <= 3 -> j = 3, p = 6
    W = torch.zeros(6, 4)
    for i, j in [(0, 0), (1, 0), (2, 0), (3, 1), (3, 2), (4, 3), (5, 3)]:
        W[i, j] = 1.0
    (s,) = sketching.sketch_sizes([W])
    # k = sqrt(18) ln 6 = 7.60 -> 8 > 6 and > 4: both sides capped
    assert s.j == 3 and s.p == 6 and s.k_theory == approx(math.sqrt(18) * math.log(6))
    assert (s.k_out, s.k_in, s.capped, s.n_params) == (6, 4, True, 24)


def test_paper_bound_equals_its_parts():
    margins = torch.tensor([-1.0, 0.5, 1.0, 2.0, 3.0])
    # needed margin 1.5: margins <= 1.5 are -1, 0.5, 1 -> 3/5; at sqrt(2) * 1.5 = 2.12 -> 4/5
    # q = 75^2 + 6 * 200 = 5625 + 1200 = 6825, r = 16, m = 5, delta = 0.1
    b = bd.paper_bound(margins, 1.5, sketch_net(), r=16, delta=0.1)
    q = 6825
    total = math.sqrt((q * math.log(16) + math.log(10)) / 10)
    assert b.details["q"] == q and b.details["n_capped"] == 1
    assert b.terms["empirical_margin_loss"] == approx(0.6)
    assert b.terms["complexity"] == approx(math.sqrt(q * math.log(16) / 10))
    assert b.value == approx(0.6 + total)
    assert b.value == approx(math.fsum(b.terms.values()))
    assert b.details["value_without_log_r"] == approx(0.6 + math.sqrt((q + math.log(10)) / 10))
    assert b.details["complexity_without_log_r"] == approx(math.sqrt(q / 10))
    assert b.details["loss_at_sqrt2_margin"] == approx(0.8)
    assert b.details["value_at_sqrt2_margin"] == approx(0.8 + total)
    assert b.details["q_layer1"] == 5625 and b.details["q_layer2"] == 1200
    assert b.vacuous and b.dominant_term == "complexity"


def test_paper_bound_bad_input():
    with pytest.raises(ParameterError, match="needed_margin"):
        bd.paper_bound(torch.tensor([1.0]), -1.0, [torch.eye(3)])
    with pytest.raises(ParameterError, match="train_margins"):
        bd.paper_bound(torch.tensor([]), 1.0, [torch.eye(3)])
    with pytest.raises(ParameterError, match="delta"):
        bd.counting_bound("x", 0.0, 1.0, 10, 0.0)


def test_bounds_over_d_matches_its_parts_assembled_by_hand():
    """The sweep's row at each d equals the bound functions called on the pruned copy."""
    from prunebounds import margins, models, perturbation, pruning

    torch.manual_seed(0)
    net = models.MLP([12, 9, 7, 3])
    X, y = torch.randn(60, 12), torch.randint(0, 3, (60,))
    mg = margins.margins(margins.logits(net, X), y)
    probe = perturbation.PruningProbe(net, X, y)
    rows = sweeps.bounds_over_d(probe, net, mg, [0.0, 0.5, 4.0], seed=3, r=16, delta=0.1)
    assert [r.d for r in rows] == [0.0, 0.5, 4.0]
    for row in rows:
        g = pruning.prune_paper(net, row.d, 3)
        W = models.weight_matrices(g)
        eps = probe.evaluate(g, true_error=False).authors.value
        loss = float((mg <= eps).double().mean())
        assert row.needed == approx(eps) and row.loss == approx(loss)
        assert row.paper == approx(bd.paper_bound(mg, eps, W, r=16, delta=0.1).value)
        nnz = [int((w != 0).sum()) for w in W]
        assert row.kept == approx(sum(nnz) / (12 * 9 + 9 * 7 + 7 * 3))
        q = bd.sparse_count_bound(loss, nnz, [tuple(w.shape) for w in W], 16, 60)
        assert row.sparse == approx(
            loss + math.sqrt((q.details["q_nats"] + math.log(1 / 0.1)) / (2 * 60)))
        assert row.test_err is None
    assert rows[0].kept == 1.0 and rows[0].needed == 0.0
    with pytest.raises(ParameterError, match="d"):
        sweeps.bounds_over_d(probe, net, mg, [-1.0], seed=3)


def test_weights_must_be_finite_but_may_be_huge():
    """NaN or inf anywhere is refused; finite entries whose sum overflows are accepted."""
    for bad in (float("nan"), float("inf"), -float("inf")):
        W = torch.ones(3, 3)
        W[1, 2] = bad
        with pytest.raises(ParameterError, match="non-finite"):
            sketching.sketch_sizes([W])
    huge = torch.full((3, 3), 3e38)          # float32: the sum overflows to inf
    assert [s.j for s in sketching.sketch_sizes([huge])] == [3]
