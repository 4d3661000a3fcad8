"""Tests of prunebounds.discretization: grid rounding, levels, rounding error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunebounds.discretization import (
    check_bits_list,
    combined_perturbation_bound,
    count_levels,
    discretize_model,
    grid_spacing_for_bits,
    layer_grid_spacings,
    log_levels,
    max_logit_change,
    round_to_grid,
    rounding_error_bounds,
    rounding_error_spectral,
)
from prunebounds.errors import ParameterError
from prunebounds.margins import logits
from prunebounds.models import MLP, linear_layers
from prunebounds.pruning import prune_paper

W_HAND = torch.tensor([[0.0, 0.26, -0.74], [1.01, 0.0, 0.49]], dtype=torch.float64)


def test_round_to_grid_hand_example():
    R = round_to_grid(W_HAND, 0.5)
    expected = torch.tensor([[0.0, 0.5, -0.5], [1.0, 0.0, 0.5]], dtype=torch.float64)
    assert torch.allclose(R, expected)
    assert count_levels(R, 0.5) == 4                          # {-0.5, 0, 0.5, 1.0}
    assert log_levels(4) == pytest.approx(math.log(4))
    R_np = round_to_grid(W_HAND.numpy(), 0.5)                 # arrays accepted
    assert torch.allclose(R_np, expected)


def test_rounding_properties_random():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(60, 40, generator=g, dtype=torch.float64)
    W[torch.rand(60, 40, generator=g) < 0.5] = 0.0            # a pruned matrix
    rho = 0.1
    R = round_to_grid(W, rho)
    assert bool((R[W == 0] == 0).all())                        # zeros stay zero
    assert float((R - W).abs().max()) <= rho / 2 + 1e-12       # entrywise error <= rho/2
    k = R / rho
    assert torch.allclose(k, torch.round(k), atol=1e-9)        # on the grid
    err = rounding_error_spectral(W, R)
    nnz = int((W != 0).sum())
    assert err <= float(torch.linalg.matrix_norm(W - R, "fro")) + 1e-12
    assert err <= rho / 2 * math.sqrt(nnz)                      # ||E||_2 <= ||E||_F
    # count_levels agrees with an independent count of distinct rounded values
    independent = len(set(np.round(R.numpy().ravel() / rho).astype(int)) | {0})
    assert count_levels(R, rho) == independent


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_grid_spacing_for_bits(bits):
    W = torch.randn(50, 70, generator=torch.Generator().manual_seed(bits))
    rho = grid_spacing_for_bits(W, bits)
    assert rho == pytest.approx(float(W.abs().max()) / (2 ** (bits - 1) - 1))
    r = count_levels(round_to_grid(W, rho), rho)
    assert r <= 2 ** bits - 1
    assert r >= 2 ** (bits - 1)          # the side holding max |W| uses all its K + 1 levels


def test_discretize_model_copy_and_levels():
    torch.manual_seed(1)
    model = MLP([20, 30, 5])
    pruned = prune_paper(model, 2.0, seed=0)
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    disc = discretize_model(pruned, bits=4)
    for k, v in pruned.state_dict().items():
        assert torch.equal(v, before[k])                        # original untouched
    rhos = layer_grid_spacings(pruned, 4)
    for ld, lp, rho in zip(linear_layers(disc), linear_layers(pruned), rhos):
        assert torch.equal(ld.bias, lp.bias)                    # biases untouched
        assert bool((ld.weight[lp.weight == 0] == 0).all())     # sparsity kept
        assert count_levels(ld.weight.detach(), rho) <= 15
        assert float((ld.weight - lp.weight).detach().abs().max()) <= rho / 2 + 1e-6


def test_bad_input():
    with pytest.raises(ParameterError):
        round_to_grid(W_HAND, 0.0)
    with pytest.raises(ParameterError):
        round_to_grid(W_HAND, -1.0)
    with pytest.raises(ParameterError):
        grid_spacing_for_bits(W_HAND, 1)
    with pytest.raises(ParameterError):
        discretize_model(MLP([3, 2]), bits=0)
    with pytest.raises(ParameterError):
        rounding_error_spectral(W_HAND, W_HAND[:, :2])
    with pytest.raises(ParameterError):
        log_levels(0)
    assert grid_spacing_for_bits(torch.zeros(3, 3), 4) == 1.0  # nothing to round


def test_discretize_model_biases():
    torch.manual_seed(2)
    model = MLP([12, 9, 4])
    disc = discretize_model(model, bits=3, biases=True)
    for ld, lo in zip(linear_layers(disc), linear_layers(model)):
        for pd, po in ((ld.weight, lo.weight), (ld.bias, lo.bias)):
            rho = float(po.detach().abs().max()) / 3          # K = 2^(3-1) - 1 = 3
            k = pd.detach() / rho
            assert torch.allclose(k, torch.round(k), atol=1e-5)   # on the grid
            assert len(set(torch.round(k).int().flatten().tolist()) | {0}) <= 7
            assert float((pd - po).detach().abs().max()) <= rho / 2 + 1e-6
    default = discretize_model(model, bits=3)
    for ld, lo in zip(linear_layers(default), linear_layers(model)):
        assert torch.equal(ld.bias, lo.bias)                    # default: biases kept
    with pytest.raises(ParameterError):
        discretize_model(model, bits=3, biases="yes")


def test_rounding_error_bounds_hold_and_match_independent_counts():
    g = torch.Generator().manual_seed(3)
    for trial in range(5):
        W = torch.randn(70, 50, generator=g, dtype=torch.float64)
        W[torch.rand(70, 50, generator=g) < 0.7] = 0.0
        rho = 0.3 + 0.2 * trial
        E = (W - round_to_grid(W, rho)).numpy()
        b = rounding_error_bounds(W, rho)
        Wn = W.numpy()
        nnz = np.count_nonzero(Wn)
        jr = max(np.count_nonzero(row) for row in Wn)
        jc = max(np.count_nonzero(col) for col in Wn.T)
        assert b.frobenius == pytest.approx(rho / 2 * math.sqrt(nnz))
        assert b.schur == pytest.approx(rho / 2 * math.sqrt(jr * jc))
        assert b.rms_scale == pytest.approx(rho / math.sqrt(12) * (math.sqrt(jr) + math.sqrt(jc)))
        spec = np.linalg.norm(E, 2)
        assert spec <= b.frobenius + 1e-12 and spec <= b.schur + 1e-12
        # Schur's test on E itself (independent): ||E||_2^2 <= ||E||_1 ||E||_inf
        assert spec ** 2 <= np.abs(E).sum(0).max() * np.abs(E).sum(1).max() + 1e-12
    # worst case: every entry at distance rho/2 from the grid, one full row -> equality
    W = torch.zeros(4, 4, dtype=torch.float64)
    W[0] = 0.5
    b = rounding_error_bounds(W, 1.0)
    E = (W - round_to_grid(W, 1.0)).numpy()                    # 0.5 rounds to 0 (half to even)
    assert np.linalg.norm(E, 2) == pytest.approx(b.schur)       # sqrt(4 * 1) / 2 = 1
    with pytest.raises(ParameterError):
        rounding_error_bounds(torch.ones(3), 0.1)


def test_combined_perturbation_bound():
    from prunebounds.perturbation import perturbation_bound
    a, p, r, B = [2.0, 3.0, 1.5], [0.1, 0.2, 0.05], [0.01, 0.0, 0.02], 5.0
    expected = math.e * B * (2.0 * 3.0 * 1.5) * (0.11 / 2.0 + 0.2 / 3.0 + 0.07 / 1.5)
    assert combined_perturbation_bound(a, p, r, B) == pytest.approx(expected)
    assert combined_perturbation_bound(a, p, [0, 0, 0], B) == pytest.approx(perturbation_bound(a, p, B))
    # the triangle inequality: the bound with the exact ||Dp + Dr|| is never larger
    g = torch.Generator().manual_seed(4)
    A = [torch.randn(8, 6, generator=g, dtype=torch.float64), torch.randn(3, 8, generator=g, dtype=torch.float64)]
    Dp = [0.1 * torch.randn(w.shape, generator=g, dtype=torch.float64) for w in A]
    Dr = [0.05 * torch.randn(w.shape, generator=g, dtype=torch.float64) for w in A]
    s = lambda M: float(np.linalg.norm(M.numpy(), 2))
    exact = perturbation_bound([s(w) for w in A], [s(x + y) for x, y in zip(Dp, Dr)], 1.0)
    assert exact <= combined_perturbation_bound([s(w) for w in A], [s(x) for x in Dp],
                                                [s(y) for y in Dr], 1.0) + 1e-12
    with pytest.raises(ParameterError):
        combined_perturbation_bound(a, p, r[:2], B)
    with pytest.raises(ParameterError):
        combined_perturbation_bound(a, p, [-1.0, 0, 0], B)


def test_max_logit_change_against_a_loop():
    torch.manual_seed(5)
    model = MLP([10, 7, 3])
    disc = discretize_model(model, bits=3)
    X = torch.randn(25, 10)
    worst = 0.0
    with torch.no_grad():
        for x in X:
            fx, gx = model(x[None])[0].double(), disc(x[None])[0].double()
            for y in range(3):
                worst = max(worst, abs(float(fx[y] - gx[y])))
    f_out, g_out = logits(model, X), logits(disc, X)
    assert max_logit_change(f_out, g_out) == pytest.approx(worst, rel=1e-6)
    assert max_logit_change(f_out, f_out) == 0.0
    with pytest.raises(ParameterError):
        max_logit_change(f_out[:0], g_out[:0])
    with pytest.raises(ParameterError):
        max_logit_change(f_out, g_out[:, :2])


def test_check_bits_list():
    assert check_bits_list([8, 2, 4, 4]) == [2, 4, 8]
    assert check_bits_list((3.0,)) == [3]
    for bad in ([], 8, "8", [1], [25], [2.5], [True]):
        with pytest.raises(ParameterError):
            check_bits_list(bad)
