"""The setting chapter's module: compute in the smoke profile, its claims, the margin
statistics against an independent computation, and the authors' momentum attribute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunebounds import data, margins, profiles, runs
from prunebounds.chapters import load, setting
from prunebounds.claims import FAILS, HOLDS, Claim


@pytest.fixture(scope="module")
def smoke():
    P = profiles.resolve("smoke")
    return P, setting.compute(P, progress=False)


def test_module_follows_the_chapter_contract():
    assert load("setting") is setting
    assert setting.LABEL == "chap-setting" and setting.REQUIRES == ()


def test_compute_in_smoke_profile(smoke):
    P, R = smoke
    assert R.profile == "smoke" and R.epochs == P.epochs == len(R.epoch)
    assert R.n_params == sum(a * b + b for a, b in zip(R.widths[:-1], R.widths[1:]))
    assert len(R.layers) == len(R.widths) - 1
    assert [(n.fan_in, n.fan_out) for n in R.layers] == list(zip(R.widths[:-1], R.widths[1:]))
    assert R.min_margin <= R.q_margin <= R.median_margin
    assert 0 <= R.n_ties <= R.n_nonpositive <= R.m
    # the histogram is a density: it integrates to one
    widths = np.diff(R.hist.edges)
    assert np.isclose(np.sum(np.array(R.hist.train) * widths), 1.0)
    assert np.isclose(np.sum(np.array(R.hist.test) * widths), 1.0)
    lo, hi = R.tail_range
    assert lo <= R.test_err <= hi


def test_cached_result_is_identical():
    P = profiles.resolve("smoke")
    first = setting.compute(P, progress=False)
    assert setting.compute(P, progress=False) == first     # read back from the cache


def test_margin_statistics_match_an_independent_computation(smoke):
    """Recompute the margins with numpy from the cached network's outputs."""
    P, R = smoke
    run = runs.train_cached(runs.RunConfig.from_profile(P), progress=False)
    D = data.load(P.dataset, max_train=P.max_train)
    out = margins.logits(run.model, D.train.X).double().numpy()
    y = D.train.y.numpy()
    correct = out[np.arange(len(y)), y]
    others = out.copy()
    others[np.arange(len(y)), y] = -np.inf
    m = correct - others.max(axis=1)
    assert R.min_margin == pytest.approx(m.min(), abs=1e-5)
    assert R.q_margin == pytest.approx(np.percentile(m, P.margin_q), abs=1e-4)
    assert R.n_nonpositive == int((m <= 1e-7).sum())
    assert R.train_err == pytest.approx(R.n_nonpositive / R.m)
    assert R.B == pytest.approx(np.linalg.norm(D.train.X.numpy(), axis=1).max(), rel=1e-6)
    W = run.model[0].weight.detach().double().numpy()
    assert R.layers[0].spectral == pytest.approx(np.linalg.norm(W, 2), rel=1e-9)
    assert R.layers[0].frobenius == pytest.approx(np.linalg.norm(W), rel=1e-9)


def test_momentum_attribute_has_no_effect():
    check = setting.momentum_attribute_check(steps=3, seed=1)
    assert check.attribute_vs_plain == 0.0
    assert check.momentum_vs_plain > 1e-4
    # torch keeps its momentum in param_groups, not in an attribute
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sgd.momentum = 0.9
    assert sgd.param_groups[0]["momentum"] == 0


def test_claims_are_valid_and_judged(smoke):
    _, R = smoke
    cs = setting.claims(R)
    assert [c.id for c in cs] == ["setting-reproduced", "authors-plain-sgd"]
    assert all(isinstance(c, Claim) and c.chapter == "chap-setting" for c in cs)
    assert cs[1].verdict == HOLDS
    # the smoke network trains 2 epochs on synthetic data: its test error is above 3%
    assert R.test_err > 0.03 and cs[0].verdict == FAILS


@pytest.mark.cuda
def test_compute_on_cuda_matches_the_cpu_where_it_must():
    """On a GPU the network trains there (not bit for bit the CPU's); what does not depend
    on the training must be identical, the rest close."""
    cpu = setting.compute(profiles.resolve("smoke", device="cpu"), progress=False)
    gpu = setting.compute(profiles.resolve("smoke", device="cuda"), progress=False)
    assert gpu.device.startswith("cuda") and cpu.device == "cpu"
    assert (gpu.B, gpu.n_params, gpu.m, gpu.momentum_check) == (cpu.B, cpu.n_params, cpu.m,
                                                                 cpu.momentum_check)
    assert abs(gpu.test_err - cpu.test_err) < 0.05
    assert [n.fan_in for n in gpu.layers] == [n.fan_in for n in cpu.layers]
