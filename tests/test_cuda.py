"""The device setting on a GPU: every step of the book on CUDA against the same step on the CPU.

Run on a machine with CUDA:  python -m pytest -m cuda tests/test_cuda.py
(skipped elsewhere). Designed to take well under a minute on one GPU.

What is compared: training (close, not identical: float32 sums run in another order),
pruning masks (identical: the uniforms come from the same CPU generator), the
perturbation probe and the authors' needed margin, sparsity counts, sketch recovery,
the bound sweep, one round of iterative pruning, and a training step of the ResNet and
the ViT.
"""

from __future__ import annotations

import copy

import pytest
import torch

from prunebounds import (beyond, data, devices, lottery, margins, models, perturbation, pruning,
                         runs, sketching, sparsity, sweeps, zoo)
from prunebounds.errors import ParameterError

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def bundle():
    return data.load("synthetic", max_train=1000)


@pytest.fixture(scope="module")
def trained(bundle):
    """A small MLP trained three epochs on the CPU (from the same start on both devices)."""
    torch.manual_seed(0)
    cfg = runs.RunConfig(dataset="synthetic", widths=(784, 128, 128, 10),
                         optimiser="momentum-mnist", epochs=3, seed=0, max_train=1000,
                         device="cpu")
    return runs.train_cached(cfg, use_cache=False, progress=False)


def test_device_resolution_on_a_gpu(monkeypatch):
    monkeypatch.delenv(devices.ENV_VAR, raising=False)
    assert devices.resolve_device("auto").type == "cuda"
    assert devices.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ParameterError, match="available devices here: cpu, cuda"):
        devices.resolve_device(f"cuda:{torch.cuda.device_count()}")
    monkeypatch.setenv(devices.ENV_VAR, "cpu")
    assert devices.resolve_device("auto").type == "cpu"


def test_training_on_cuda_is_close_to_the_cpu(bundle):
    cfgs = {dev: runs.RunConfig(dataset="synthetic", widths=(784, 64, 64, 10),
                                optimiser="paper-mnist", epochs=3, seed=1, max_train=1000,
                                device=dev) for dev in ("cpu", "cuda")}
    assert cfgs["cpu"].key != cfgs["cuda"].key       # not the same network, bit for bit
    got = {dev: runs.train_cached(c, use_cache=False, progress=False) for dev, c in cfgs.items()}
    gpu, cpu = got["cuda"], got["cpu"]
    assert all(v.device.type == "cpu" for v in gpu.model.state_dict().values())
    assert gpu.meta["device"].startswith("cuda")
    for (k, a), b in zip(cpu.model.state_dict().items(), gpu.model.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), k
    assert gpu.history.train_loss == pytest.approx(cpu.history.train_loss, rel=1e-4)
    assert gpu.history.test_acc == pytest.approx(cpu.history.test_acc, abs=0.01)


def test_pruning_masks_are_identical_across_devices(trained):
    net = trained.model
    gnet = copy.deepcopy(net).to(CUDA)
    for d in (0.3, 2.0, 10.0):
        a, b = pruning.prune_paper(net, d, 5), pruning.prune_paper(gnet, d, 5)
        for la, lb in zip(models.linear_layers(a), models.linear_layers(b)):
            assert lb.weight.device.type == "cuda"
            assert torch.equal(la.weight != 0, (lb.weight != 0).cpu())
    for (da, wa), (db, wb) in zip(pruning.paper_rule_sweep(net, [0.5, 4.0], 9),
                                  pruning.paper_rule_sweep(gnet, [0.5, 4.0], 9)):
        assert da == db and all(torch.equal(x != 0, (y != 0).cpu()) for x, y in zip(wa, wb))
    a, b = beyond.prune_paper_all(net, 3.0, 2), beyond.prune_paper_all(gnet, 3.0, 2)
    assert all(torch.equal(x != 0, (y != 0).cpu()) for (_, x), (_, y) in
               zip(beyond.weight_matrices_all(a), beyond.weight_matrices_all(b)))


def test_probe_and_needed_margin_on_cuda_equal_the_cpu(trained, bundle):
    net = trained.model
    X, y = bundle.train.X, bundle.train.y
    cpu = perturbation.PruningProbe(net, X, y)
    gpu = perturbation.PruningProbe(copy.deepcopy(net).to(CUDA), X.to(CUDA), y.to(CUDA))
    assert gpu.weight_norms == pytest.approx(cpu.weight_norms, rel=1e-9)
    assert gpu.input_norm == pytest.approx(cpu.input_norm, rel=1e-12)
    g = pruning.prune_paper(net, 2.0, 3)
    rc, rg = cpu.evaluate(g), gpu.evaluate(copy.deepcopy(g).to(CUDA))
    assert rg.authors.value == pytest.approx(rc.authors.value, rel=1e-9)
    assert rg.delta_norms == pytest.approx(rc.delta_norms, rel=1e-9)
    assert rg.textbook == pytest.approx(rc.textbook, rel=1e-9)
    assert rg.output.max_l2_change == pytest.approx(rc.output.max_l2_change, rel=1e-4)
    assert rg.train_error == pytest.approx(rc.train_error, abs=2 / len(y))
    m = margins.margins(margins.logits(net, X), y)
    d_cpu = perturbation.certified_d(cpu, net, float(m.quantile(0.5)), seed=3, rel_tol=1e-2)
    d_gpu = perturbation.certified_d(gpu, copy.deepcopy(net).to(CUDA), float(m.quantile(0.5)),
                                     seed=3, rel_tol=1e-2)
    assert d_gpu == pytest.approx(d_cpu, rel=1e-6)


def test_bound_sweep_and_sparsity_counts_on_cuda(trained, bundle):
    net, gnet = trained.model, copy.deepcopy(trained.model).to(CUDA)
    X, y = bundle.train.X, bundle.train.y
    m = margins.margins(margins.logits(net, X), y)
    ds = [0.1, 1.0, 5.0]
    cpu = sweeps.bounds_over_d(perturbation.PruningProbe(net, X, y), net, m, ds, 4,
                               test=bundle.test)
    gpu = sweeps.bounds_over_d(perturbation.PruningProbe(gnet, X.to(CUDA), y.to(CUDA)), gnet,
                               m.to(CUDA), ds, 4, test=bundle.test.to(CUDA))
    for a, b in zip(cpu, gpu):
        assert b.needed == pytest.approx(a.needed, rel=1e-9) and b.kept == a.kept
        assert b.paper == pytest.approx(a.paper, rel=1e-9) and b.n_capped == a.n_capped
        assert b.test_err == pytest.approx(a.test_err, abs=2 / len(bundle.test))
    Wg = models.weight_matrices(pruning.prune_paper(gnet, 2.0, 0))
    Wc = models.weight_matrices(pruning.prune_paper(net, 2.0, 0))
    assert sparsity.sparsity_summary(Wg) == sparsity.sparsity_summary(Wc)
    assert [s.n_params for s in sketching.sketch_sizes(Wg)] == \
        [s.n_params for s in sketching.sketch_sizes(Wc)]


def test_sketch_recovery_on_cuda():
    g = torch.Generator().manual_seed(0)
    p = 120
    W = torch.randn(p, p, generator=g, dtype=torch.float64)
    X = W * (torch.rand(p, p, generator=g, dtype=torch.float64) < 0.03)
    k = 90
    A = torch.as_tensor(sketching.bipartite_adjacency(k, p, sketching.default_degree(p), seed=1))
    B = torch.as_tensor(sketching.bipartite_adjacency(k, p, sketching.default_degree(p), seed=2))
    Y = sketching.sketch(X, A, B)
    gpu = sketching.recover_first_order(Y.to(CUDA), A, B)
    cpu = sketching.recover_first_order(Y, A, B)
    assert gpu.X.device.type == "cuda" and gpu.converged
    assert torch.linalg.norm(gpu.X.cpu() - X) / torch.linalg.norm(X) < 1e-6
    assert torch.linalg.norm(gpu.X.cpu() - cpu.X) / torch.linalg.norm(X) < 1e-6


def test_a_lottery_round_on_cuda(bundle):
    kw = dict(widths=(784, 40, 20, 10), data=bundle, preset="frankle-carbin", rounds=1,
              epochs_per_round=1, seed=0, control_rounds=[1], progress=False,
              optimiser="momentum-mnist")
    widths = kw.pop("widths")
    gpu = lottery.run_experiment(widths, device="cuda", **kw)
    cpu = lottery.run_experiment(widths, device="cpu", **kw)
    for a, b in zip(cpu.rounds, gpu.rounds):
        assert a.nnz == b.nnz                        # the rates fix the counts exactly
        assert b.test_acc == pytest.approx(a.test_acc, abs=0.02)
        assert b.step.needed_margin == pytest.approx(a.step.needed_margin, rel=1e-2)
    assert gpu.controls[0].fraction_left == cpu.controls[0].fraction_left


@pytest.mark.parametrize("name", ["resnet-tiny", "vit-tiny"])
def test_resnet_and_vit_train_and_prune_on_cuda(name, bundle):
    cfg = runs.RunConfig(dataset="synthetic", widths=(784, 10), optimiser="paper-mnist",
                         epochs=1, seed=0, max_train=256, model=name, device="cuda")
    run = runs.train_cached(cfg, use_cache=False, progress=False)
    assert isinstance(run.model, zoo.ResNet if name.startswith("resnet") else zoo.ViT)
    net = run.model.to(CUDA)
    X = bundle.train.X[:64].to(CUDA)
    assert margins.logits(net, X).device.type == "cuda"
    g = beyond.prune_paper_all(net, 2.0, 0)
    assert all(w.device.type == "cuda" for _, w in beyond.weight_matrices_all(g))
    sweep = beyond.prune_sweep(net, X, bundle.train.y[:64].to(CUDA), X, bundle.train.y[:64],
                               [0.0, 2.0], [0])
    assert sweep.max_l2_change[0][0] <= 1e-5 and sweep.kept[1][0] < 1.0
    if name.startswith("resnet"):
        net64 = copy.deepcopy(run.model).double()
        b_cpu = beyond.resnet_perturbation_bound(net64, beyond.prune_paper_all(net64, 2.0, 0), 1.0)
        gnet = copy.deepcopy(net64).to(CUDA)
        b_gpu = beyond.resnet_perturbation_bound(gnet, beyond.prune_paper_all(gnet, 2.0, 0), 1.0)
        assert b_gpu.bound == pytest.approx(b_cpu.bound, rel=1e-6)
