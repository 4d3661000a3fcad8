"""The discretization chapter's module: the kept fraction's definition, the augmented
rounding bounds against measured norms, compute in the smoke profile and its claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunebounds import discretization, models, perturbation, profiles, pruning, runs
from prunebounds.chapters import discretization as C
from prunebounds.claims import HOLDS
from prunebounds.errors import ParameterError


def test_kept_fraction_is_a_fraction_of_all_weights():
    # per-layer fractions 1/2 and 1/10: their mean is 0.3, the fraction of all weights 0.1
    nnz, sizes = [5, 90], [10, 900]
    assert C.kept_fraction(nnz, sizes) == pytest.approx(95 / 910)
    assert C.kept_fraction(nnz, sizes) != pytest.approx(np.mean([0.5, 0.1]))
    net = pruning.prune_paper(models.build((784, 64, 10), 0), 1.0, seed=0)
    ws = models.weight_matrices(net)
    assert C.kept_fraction([int(torch.count_nonzero(w)) for w in ws], [w.numel() for w in ws]) \
        == pytest.approx(float(sum((w != 0).sum() for w in ws)) / sum(w.numel() for w in ws))
    with pytest.raises(ParameterError):
        C.kept_fraction([1], [1, 2])


def test_d_values_are_checked():
    assert C.check_d_values(None) == list(C.D_VALUES)
    assert C.check_d_values(3) == [3.0]
    assert C.check_d_values([5, 1, 5]) == [1.0, 5.0]
    with pytest.raises(ParameterError, match="prune_d must be >= 0.0"):
        C.check_d_values(-0.5)


def test_augmented_rounding_bounds_hold():
    """The bounds hold for the measured norm of the augmented rounding error [E_W, e_b]."""
    net = pruning.prune_paper(models.build((784, 64, 32, 10), 3), 2.0, seed=1)
    for bits in (2, 3, 5):
        g = discretization.discretize_model(net, bits, biases=True)
        for la, lg, A, G in zip(models.linear_layers(net), models.linear_layers(g),
                                perturbation.augmented_weights(net), perturbation.augmented_weights(g)):
            rho = discretization.grid_spacing_for_bits(la.weight, bits)
            rho_b = discretization.grid_spacing_for_bits(la.bias, bits)
            b = C.augmented_rounding_bounds(la.weight.detach(), rho, la.bias.detach(), rho_b)
            measured = float(torch.linalg.matrix_norm(A - G, ord=2))
            assert measured <= min(b.schur, b.frobenius) * (1 + 1e-9)
            # without the bias column's term the bound could fail: it is really needed
            w_only = discretization.rounding_error_bounds(la.weight.detach(), rho)
            assert b.schur > w_only.schur


@pytest.fixture(scope="module")
def smoke():
    P = profiles.resolve("smoke")
    return P, C.compute(P, progress=False)


def test_compute_in_smoke_profile(smoke):
    P, R = smoke
    assert [p.d for p in R.pruned] == list(C.D_VALUES)
    assert R.B_aug == pytest.approx(math.sqrt(R.B ** 2 + 1))
    for p in R.pruned:
        assert 0 < p.kept < 1
        assert p.kept == pytest.approx(sum(p.nnz) / sum(a * b for a, b in R.shapes))
        assert p.bound == pytest.approx(perturbation.perturbation_bound(R.weight_norms, p.prune_norms, R.B_aug))
        for g in p.rounded:
            assert max(g.levels) <= 2 ** g.bits - 1 and g.r <= 2 ** g.bits - 1
            assert g.bound >= g.bound_exact * (1 - 1e-12)       # triangle inequality
            assert g.bound >= p.bound                           # rounding only adds
            assert all(s.levels <= s.level_bound for s in g.sketch)
            assert sum(g.nnz) <= sum(p.nnz)                     # rounding keeps zeros
        # the rounding part of the bound falls with the bits
        extra = [g.bound - p.bound for g in p.rounded]
        assert extra == sorted(extra, reverse=True)
    assert R.n_bound_violations == 0
    assert any(g.sketch for p in R.pruned for g in p.rounded)


def test_augmented_norms_exceed_plain_norms(smoke):
    """The augmented matrix contains the plain one: its norm is at least as large."""
    P, R = smoke

    run = runs.train_cached(runs.RunConfig.from_profile(P), progress=False)
    plain = [float(torch.linalg.matrix_norm(w.double(), ord=2)) for w in models.weight_matrices(run.model)]
    assert all(a >= p - 1e-9 for a, p in zip(R.weight_norms, plain))


def test_claims_are_valid(smoke):
    _, R = smoke
    cs = {c.id: c for c in C.claims(R)}
    assert set(cs) == {"discretization-log-r", "rounding-norm-bounds"}
    assert cs["rounding-norm-bounds"].verdict == HOLDS
    assert cs["discretization-log-r"].value("kept").value == R.pruned[0].kept


@pytest.mark.cuda
def test_compute_on_cuda():
    gpu = C.compute(profiles.resolve("smoke", device="cuda"), progress=False)
    assert gpu.device.startswith("cuda")
    assert gpu.n_bound_violations == 0 and gpu.bound_gap >= 1
    for p in gpu.pruned:
        for g in p.rounded:
            assert g.bound >= g.bound_exact * (1 - 1e-9) and g.r <= 2 ** g.bits - 1
