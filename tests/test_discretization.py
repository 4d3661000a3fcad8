"""Tests of prunebounds.discretization: grid rounding, levels, rounding error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunebounds.discretization import (
    count_levels,
    discretize_model,
    grid_spacing_for_bits,
    layer_grid_spacings,
    log_levels,
    round_to_grid,
    rounding_error_spectral,
)
from prunebounds.errors import ParameterError
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
