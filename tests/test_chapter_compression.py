"""The compression chapter's module: the margin-transfer lemma (by hand and on random
outputs), the sample count of the exercise, compute in the smoke profile and its claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunebounds import bounds, margins, models, perturbation, profiles, pruning
from prunebounds.chapters import compression as C
from prunebounds.claims import HOLDS
from prunebounds.errors import ParameterError


def test_margin_cost_is_sqrt2_eps_and_tight():
    assert C.margin_cost(1.0) == pytest.approx(math.sqrt(2))
    # tight: the correct logit falls by eps/sqrt2, the runner-up rises by eps/sqrt2
    f = torch.tensor([[3.0, 1.0, 0.0]])
    eps = 0.5
    g = f + torch.tensor([[-eps / math.sqrt(2), eps / math.sqrt(2), 0.0]])
    y = torch.tensor([0])
    assert float(torch.linalg.vector_norm(f - g)) == pytest.approx(eps)
    drop = float(margins.margins(f, y) - margins.margins(g, y))
    assert drop == pytest.approx(C.margin_cost(eps))
    with pytest.raises(ParameterError):
        C.margin_cost(-1.0)


def test_margin_transfer_on_random_outputs():
    """No sample's margin drops by more than sqrt2 ||f - g||_2 or 2 ||f - g||_inf."""
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(5000, 10, generator=gen, dtype=torch.float64)
    g = f + 0.3 * torch.randn(5000, 10, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (5000,), generator=gen)
    drop = margins.margins(f, y) - margins.margins(g, y)
    l2 = torch.linalg.vector_norm(f - g, dim=1)
    sup = (f - g).abs().max(dim=1).values
    assert bool((drop <= math.sqrt(2) * l2 + 1e-12).all())
    assert bool((drop <= 2 * sup + 1e-12).all())
    assert float((drop / (math.sqrt(2) * l2)).max()) > 0.5  # the check is not vacuous


def test_samples_for_term_inverts_the_counting_term():
    q = 2_469_610  # the paper's MNIST network: weights and biases
    m = C.samples_for_term(q, 8, 0.1)
    assert m == pytest.approx(100 * 8 * math.log(2) * q)
    assert 1.36e9 < m < 1.38e9
    assert bounds.compression_term(q, 2 ** 8, int(math.ceil(m))) == pytest.approx(0.1, rel=1e-6)
    with pytest.raises(ParameterError):
        C.samples_for_term(q, 8, 0.0)


def test_output_change_from_logits_matches_output_change(tiny_bundle):

    net = models.build((784, 16, 10), 0)
    pr = pruning.prune_paper(net, 2.0, seed=0)
    X, y = tiny_bundle.train.X, tiny_bundle.train.y
    ref = margins.logits(net, X)
    a = perturbation.output_change(net, pr, X, y)
    b = perturbation.output_change_from_logits(ref, margins.logits(pr, X), y)
    assert a == b
    with pytest.raises(ParameterError):
        perturbation.output_change_from_logits(ref, ref[:, :5], y)


@pytest.fixture(scope="module")
def smoke():
    P = profiles.resolve("smoke")
    return P, C.compute(P, progress=False)


def test_compute_in_smoke_profile(smoke):
    P, R = smoke
    assert [g.bits for g in R.rounded] == list(C.BITS["smoke"])
    assert R.q == R.n_weights + R.n_biases
    for g in R.rounded:
        assert g.levels <= g.r
        assert g.eps_sup <= g.eps_l2 + 1e-12           # ||v||_inf <= ||v||_2
        assert g.margin_drop <= g.gamma + 1e-6         # the lemma, on every training sample
        assert g.gamma == pytest.approx(math.sqrt(2) * g.eps_l2)
        assert g.term == pytest.approx(bounds.compression_term(R.q, 2 ** g.bits - 1, R.m))
    eps = [g.eps_l2 for g in R.rounded]
    assert eps[-1] < eps[0]                            # more bits, smaller error
    assert R.term_float == pytest.approx(math.sqrt(R.q * 32 * math.log(2) / R.m))
    assert list(R.tradeoff_loss) == sorted(R.tradeoff_loss)   # R^_gamma grows with gamma
    for c in R.choices:
        if c.fewest_bits is not None:
            assert c.gamma > 0 and next(g for g in R.rounded if g.bits == c.fewest_bits).gamma <= c.gamma


def test_bits_are_validated():
    with pytest.raises(ParameterError, match="bits"):
        C.compute(profiles.resolve("smoke"), bits=[1, 4])


def test_claims_are_valid(smoke):
    _, R = smoke
    cs = {c.id: c for c in C.claims(R)}
    assert set(cs) == {"arora-compression", "margin-transfer"}
    assert cs["margin-transfer"].verdict == HOLDS
    assert cs["arora-compression"].value("term32").value == R.term_float


@pytest.mark.cuda
def test_compute_on_cuda():
    cpu = C.compute(profiles.resolve("smoke", device="cpu"), progress=False)
    gpu = C.compute(profiles.resolve("smoke", device="cuda"), progress=False)
    assert gpu.device.startswith("cuda")
    assert (gpu.q, gpu.m, gpu.term_float) == (cpu.q, cpu.m, cpu.term_float)
    assert all(g.margin_drop <= g.gamma + 1e-5 and g.levels <= g.r for g in gpu.rounded)
    assert C.claims(gpu)[1].verdict == HOLDS
