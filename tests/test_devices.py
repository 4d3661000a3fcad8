"""The device setting on the CPU: resolution, the environment variable, bad input, and
that moving to the CPU changes nothing (the CUDA side is tests/test_cuda.py)."""

from __future__ import annotations

import pytest
import torch

from prunebounds import data, devices, profiles, pruning, runs
from prunebounds.errors import ParameterError

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _no_device_variable(monkeypatch):
    monkeypatch.delenv(devices.ENV_VAR, raising=False)


def test_auto_is_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert devices.resolve_device().type == expected
    assert devices.resolve_device("auto").type == expected
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert devices.available_devices()[0] == "cpu"


def test_the_environment_variable_overrides_auto_not_an_explicit_choice(monkeypatch):
    monkeypatch.setenv(devices.ENV_VAR, "cpu")
    assert devices.resolve_device() == torch.device("cpu")
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert profiles.resolve("smoke").device == "auto"
    monkeypatch.setenv(devices.ENV_VAR, "tpu")
    with pytest.raises(ParameterError, match="'tpu' is not a device name"):
        devices.resolve_device()
    assert devices.resolve_device("cpu") == torch.device("cpu")   # explicit wins


@pytest.mark.skipif(not NO_CUDA, reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_names_the_available_devices(name):
    with pytest.raises(ParameterError, match="CUDA is not available.*available devices here: cpu"):
        devices.resolve_device(name)
    with pytest.raises(ParameterError, match="available devices here: cpu"):
        profiles.resolve("smoke", device=name)
    with pytest.raises(ParameterError, match="available devices here: cpu"):
        runs.RunConfig(dataset="synthetic", widths=(784, 10), optimiser="paper-mnist",
                       epochs=1, seed=0, device=name)


@pytest.mark.parametrize("name", ["tpu", "gpu", "CUDA", "cuda:x", "", 3])
def test_unknown_devices_name_the_available_ones(name):
    with pytest.raises(ParameterError, match="available devices here: cpu"):
        devices.resolve_device(name)
    with pytest.raises(ParameterError, match="is not a device name"):
        profiles.resolve("smoke", device=name)


def test_profiles_and_runs_carry_the_device():
    p = profiles.resolve("smoke", device="cpu")
    assert p.device == "cpu"
    cfg = runs.RunConfig.from_profile(p)
    assert cfg.device == "cpu" and cfg.as_dict()["device"] == "cpu"


def test_moving_data_to_the_cpu_is_free():
    bundle = data.load("synthetic", max_train=50)
    assert bundle.to("cpu") is bundle and bundle.device == torch.device("cpu")
    assert bundle.train.to(torch.device("cpu")) is bundle.train
    with pytest.raises(ParameterError, match="available devices"):
        bundle.to("tpu")


def test_pruning_masks_are_pinned_to_cpu_float64_uniforms():
    """The mask of prune_paper is, entry for entry, the comparison of the weights with
    uniforms drawn in float64 by a CPU generator seeded with the seed (layer after layer):
    the definition every device reproduces."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    d, seed = 1.5, 11
    g = pruning.prune_paper(net, d, seed)
    gen = torch.Generator().manual_seed(seed)
    for layer, pruned in zip((net[0], net[2]), (g[0], g[2])):
        w = layer.weight.detach().to(torch.float64)
        u = torch.rand(w.shape, generator=gen, dtype=torch.float64)
        psi = float(w.var(unbiased=False))
        keep = u < -torch.expm1(-(w * w) / (d * psi))
        assert torch.equal(pruned.weight != 0, keep)
    # pinned: the kept counts and the first 60 entries of the first mask (as bits) of this
    # seed, so that any change of how the uniforms are drawn is noticed
    assert [int((p.weight != 0).sum()) for p in (g[0], g[2])] == [250, 39]
    bits = (g[0].weight != 0).flatten()[:60].tolist()
    assert sum(int(b) << i for i, b in enumerate(bits)) == 435117362509934724
