"""Checks of prunebounds.gradual: unit scores, the two pruning steps, compaction, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunebounds import gradual as G
from prunebounds.data import synthetic
from prunebounds.errors import ParameterError
from prunebounds.models import build, linear_layers


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    yield torch.set_num_threads(1)
    torch.set_num_threads(before)


def weights(net):
    return [layer.weight.detach().numpy().copy() for layer in linear_layers(net)]


def test_unit_scores_are_norm_products():
    net = build((12, 8, 6, 3), 0)
    W = weights(net)
    scores = G.unit_scores(net, G.masks_of(net))
    for l, s in enumerate(scores):
        expected = np.linalg.norm(W[l], axis=1) * np.linalg.norm(W[l + 1], axis=0)
        np.testing.assert_allclose(s.numpy(), expected, rtol=1e-6)


def test_prune_units_keeps_the_best_scoring_units():
    net = build((12, 8, 6, 3), 1)
    masks = G.prune_units(net, G.masks_of(net), (3, 2))
    W = weights(net)
    for l, h in enumerate((3, 2)):
        score = np.linalg.norm(W[l], axis=1) * np.linalg.norm(W[l + 1], axis=0)
        best = set(np.argsort(-score)[:h])
        alive_out = set(np.flatnonzero(masks[l].numpy().any(axis=1)))
        alive_in = set(np.flatnonzero(masks[l + 1].numpy().any(axis=0)))
        assert alive_out == best and alive_in == best
    with pytest.raises(ParameterError, match="hidden layers"):
        G.prune_units(net, G.masks_of(net), (3,))


def test_prune_global_keeps_the_largest_magnitudes():
    net = build((12, 8, 6, 3), 2)
    masks = G.masks_of(net)
    masks[0][0, :] = False  # already pruned weights stay pruned
    out = G.prune_global(net, masks, 40)
    allw = np.concatenate([(np.abs(w) * m.numpy()).ravel() for w, m in zip(weights(net), masks)])
    threshold = np.sort(allw)[-40]
    kept = np.concatenate([m.numpy().ravel() for m in out])
    assert kept.sum() == 40
    assert np.all(allw[kept] >= threshold) and np.all(allw[~kept] <= threshold)
    assert not out[0][0, :].any()
    same = G.prune_global(net, out, 1000)  # asking for more than are left changes nothing
    assert all(torch.equal(a, b) for a, b in zip(same, out))


def test_compact_drops_dead_units_and_keeps_the_function():
    net = build((12, 8, 6, 3), 3)
    masks = G.prune_units(net, G.masks_of(net), (3, 2))
    G.apply_masks(net, masks)
    small, small_masks = G.compact(net, masks)
    assert tuple(small.widths) == (12, 3, 2, 3)
    X = torch.randn(50, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(small(X), net(X), atol=1e-6)
    for layer, m in zip(linear_layers(small), small_masks):
        assert tuple(m.shape) == tuple(layer.weight.shape)
        assert not (layer.weight.detach()[~m] != 0).any()


def test_masked_train_holds_pruned_weights_at_zero_and_learns():
    train = synthetic(600, seed=1)
    net = build((784, 16, 10), 0)
    masks = G.prune_global(net, G.masks_of(net), 2000)
    G.apply_masks(net, masks)
    with torch.no_grad():
        loss0 = float(torch.nn.functional.cross_entropy(net(train.X), train.y))
    G.masked_train(net, masks, train.X, train.y, epochs=3, seed=0)
    for layer, m in zip(linear_layers(net), masks):
        assert not hasattr(layer, "weight_mask")
        assert not (layer.weight.detach()[~m] != 0).any()
    with torch.no_grad():
        assert float(torch.nn.functional.cross_entropy(net(train.X), train.y)) < loss0


def test_gradual_prune_reaches_each_level():
    train = synthetic(600, seed=1)
    net = build((784, 20, 12, 10), 0)
    n = sum(layer.weight.numel() for layer in linear_layers(net))
    levels = [G.Level(0.2, (14, 9)), G.Level(0.05, (8, 6)), G.Level(0.02)]
    out = G.gradual_prune(net, train.X, train.y, levels, [1, 1, 1], progress=False,
                          device="cpu")
    assert [p.n_kept for p in out] == [round(lv.keep * n) for lv in levels]
    assert out[1].widths[1] <= 8 and out[1].widths[2] <= 6
    assert all(p.fraction == pytest.approx(p.n_kept / n) for p in out)
    assert sum(int((layer.weight != 0).sum()) for layer in linear_layers(net)) == n  # untouched


def test_gradual_prune_rejects_bad_levels():
    train = synthetic(100, seed=1)
    net = build((784, 6, 10), 0)
    with pytest.raises(ParameterError, match="keep must be > 0"):
        G.Level(0.0)
    with pytest.raises(ParameterError, match="decrease"):
        G.gradual_prune(net, train.X, train.y, [G.Level(0.1), G.Level(0.2)], 0, progress=False)
    with pytest.raises(ParameterError, match="epochs lists"):
        G.gradual_prune(net, train.X, train.y, [G.Level(0.1)], [1, 1], progress=False)
    with pytest.raises(ParameterError, match="without weights"):
        G.gradual_prune(net, train.X, train.y, [G.Level(1e-4)], 0, progress=False)


@pytest.mark.cuda
def test_gradual_prune_on_cuda_matches_the_shapes_of_the_cpu_run():
    """The same levels on the GPU: same kept counts and widths, networks back on the CPU."""
    train = synthetic(600, seed=1)
    net = build((784, 20, 12, 10), 0)
    levels = [G.Level(0.2, (14, 9)), G.Level(0.05, (8, 6))]
    cpu = G.gradual_prune(net, train.X, train.y, levels, 1, progress=False, device="cpu")
    gpu = G.gradual_prune(net, train.X, train.y, levels, 1, progress=False, device="cuda")
    assert [p.n_kept for p in gpu] == [p.n_kept for p in cpu]
    assert all(next(p.model.parameters()).device.type == "cpu" for p in gpu)
