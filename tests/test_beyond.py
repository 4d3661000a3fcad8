"""Tests of prunebounds.zoo (the ResNet and ViT) and prunebounds.beyond (their analysis)
against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunebounds import beyond, models, pruning, runs, zoo
from prunebounds.errors import ParameterError


def _set_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


_set_threads()


# --------------------------------------------------------------------------- construction
@pytest.mark.parametrize("name", sorted(zoo.MODELS))
@pytest.mark.parametrize("n_in", [784, 3072])
def test_models_take_flat_inputs(name, n_in):
    torch.manual_seed(0)
    net = zoo.MODELS[name]((n_in, 10))
    out = net(torch.randn(5, n_in))
    assert out.shape == (5, 10)


def test_bad_input_size_is_a_parameter_error():
    with pytest.raises(ParameterError, match="valid input sizes: 784, 3072"):
        zoo.MODELS["resnet-small"]((100, 10))


def test_new_model_builds_seeded_modern_networks():
    cfg = runs.RunConfig(dataset="synthetic", widths=(784, 10), optimiser="paper-mnist",
                                epochs=1, seed=3, model="vit-tiny")
    a, b = runs.new_model(cfg), runs.new_model(cfg)
    assert isinstance(a, zoo.ViT)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert "model" in cfg.as_dict()


def test_train_cached_trains_and_reloads_a_resnet(tmp_path):
    cfg = runs.RunConfig(dataset="synthetic", widths=(784, 10), optimiser="paper-mnist",
                                epochs=1, seed=0, max_train=300, model="resnet-tiny")
    run = runs.train_cached(cfg, progress=False, root=tmp_path)
    again = runs.train_cached(cfg, progress=False, root=tmp_path)
    assert again.from_cache and isinstance(again.model, zoo.ResNet)
    x = torch.randn(4, 784)
    assert torch.equal(run.model(x), again.model(x))


def test_vit_patches_are_the_unfold_patches():
    """The reshape in ViT.forward orders pixels as F.unfold does."""
    torch.manual_seed(0)
    net = zoo.MODELS["vit-tiny"]((784, 10))
    x = torch.randn(3, 784)
    img = x.view(3, 1, 28, 28)
    ref = F.unfold(img, kernel_size=7, stride=7).transpose(1, 2)  # (n, 16, 49)
    got = []
    net.embed.register_forward_hook(lambda m, inp, out: got.append(inp[0]))
    net(x)
    assert torch.equal(got[0], ref)


# --------------------------------------------------------------------------- matrices
def test_weight_matrices_all_unfolds_convolutions():
    torch.manual_seed(0)
    net = zoo.MODELS["resnet-small"]((784, 10))
    mats = dict(beyond.weight_matrices_all(net))
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    lins = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    assert len(mats) == len(convs) + len(lins)
    for n, c in convs:
        o, i, kh, kw = c.weight.shape
        assert mats[n].shape == (o, i * kh * kw)
        # row o, column (c, a, b) is kernel entry W[o, c, a, b]
        assert mats[n][1, i * kh * kw - 1] == c.weight[1, i - 1, kh - 1, kw - 1]


def test_weight_matrices_all_splits_multihead_attention():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2)
    names = [n for n, _ in beyond.weight_matrices_all(mha)]
    assert names == ["q", "k", "v", "out_proj"]
    q = dict(beyond.weight_matrices_all(mha))["q"]
    assert torch.equal(q, mha.in_proj_weight[:8])


def test_prune_paper_all_equals_prune_paper_on_an_mlp():
    net = models.build((784, 40, 30, 10), seed=1)
    for d in (0.5, 3.0):
        a = pruning.prune_paper(net, d, seed=7)
        b = beyond.prune_paper_all(net, d, seed=7)
        for wa, wb in zip(models.weight_matrices(a), models.weight_matrices(b)):
            assert torch.equal(wa, wb)


def test_prune_paper_all_prunes_only_weights_and_only_by_zeroing():
    torch.manual_seed(0)
    net = zoo.MODELS["vit-tiny"]((784, 10))
    g = beyond.prune_paper_all(net, 2.0, seed=0)
    for (name, p), (_, q) in zip(net.named_parameters(), g.named_parameters()):
        is_matrix = name.endswith("weight") and p.ndim >= 2
        if not is_matrix:
            assert torch.equal(p, q), name  # biases, LayerNorm, position embedding
        else:
            assert bool(((q == 0) | (q == p)).all()), name
            assert int((q == 0).sum()) > 0, name
    same = beyond.prune_paper_all(net, 0.0, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), same.parameters()))


def test_rule_on_a_gaussian_kernel_keeps_chi_of_d():
    conv = nn.Conv2d(64, 64, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=torch.Generator().manual_seed(0)))
    for d in (1.0, 5.0):
        kept = float((beyond.prune_paper_all(conv, d, 0).weight != 0).double().mean())
        assert kept == pytest.approx(pruning.expected_keep_fraction(d), abs=0.01)


def test_attention_blocks_get_their_own_variance():
    """With Q, K, V at very different scales one common Psi would prune K almost fully."""
    mha = nn.MultiheadAttention(64, 4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        w = torch.randn(mha.in_proj_weight.shape, generator=gen)
        w[64:128] *= 0.01
        mha.in_proj_weight.copy_(w)
    g = beyond.prune_paper_all(mha, 1.0, seed=0)
    chi = pruning.expected_keep_fraction(1.0)
    for block in g.in_proj_weight.chunk(3, dim=0):
        assert float((block != 0).double().mean()) == pytest.approx(chi, abs=0.03)


# --------------------------------------------------------------------------- convolutions as matrices
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_as_matrix_reproduces_the_convolution(stride):
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=1, bias=False).double()
    x = torch.randn(1, 2, 6, 6, generator=gen, dtype=torch.float64)
    A = beyond.conv_as_matrix(conv, (2, 6, 6))
    assert torch.allclose(A @ x.flatten(), conv(x).flatten(), atol=1e-12)


def test_each_kernel_entry_appears_once_per_position():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1.0, 10.0).view(1, 1, 3, 3))
    A = beyond.conv_as_matrix(conv, (1, 5, 5))
    counts = [int((A == v).sum()) for v in range(1, 10)]
    assert counts[4] == 25           # the centre entry: every output position
    assert counts[0] == 16           # a corner entry: the 4 x 4 positions where it is inside
    assert int((A != 0).sum()) == sum(counts)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_operator_norm_is_the_largest_singular_value(stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=1, bias=False)
    exact = float(torch.linalg.matrix_norm(beyond.conv_as_matrix(conv, (3, 8, 8)), ord=2))
    assert beyond.conv_operator_norm(conv, (3, 8, 8)) == pytest.approx(exact, rel=1e-6)


def test_conv_norm_lies_between_unfolded_norm_and_three_times_it():
    for seed in range(5):
        torch.manual_seed(seed)
        conv = nn.Conv2d(4, 5, 3, padding=1, bias=False)
        unf = float(torch.linalg.matrix_norm(conv.weight.detach().reshape(5, -1).double(), ord=2))
        op = float(torch.linalg.matrix_norm(beyond.conv_as_matrix(conv, (4, 7, 7)), ord=2))
        assert unf - 1e-9 <= op <= 3.0 * unf + 1e-9


# --------------------------------------------------------------------------- the residual bound
def test_resnet_bound_is_zero_without_pruning_and_bounds_the_change():
    torch.manual_seed(0)
    net = zoo.MODELS["resnet-tiny"]((784, 10)).double()
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(200, 784, generator=gen, dtype=torch.float64)
    B = 5.0
    X = B * X / X.norm(dim=1, keepdim=True)
    assert beyond.resnet_perturbation_bound(net, net, B).bound == 0.0
    for d in (0.5, 2.0, 8.0):
        g = beyond.prune_paper_all(net, d, seed=0)
        res = beyond.resnet_perturbation_bound(net, g, B)
        with torch.no_grad():
            change = float((net(X) - g(X)).norm(dim=1).max())
        assert 0 < change <= res.bound
        assert res.kind == ("conv", "block", "conv", "block", "head")


def test_resnet_lipschitz_product_bounds_the_network():
    torch.manual_seed(0)
    net = zoo.MODELS["resnet-tiny"]((784, 10)).double()
    res = beyond.resnet_perturbation_bound(net, net, 1.0)
    gen = torch.Generator().manual_seed(2)
    x, x2 = (torch.randn(50, 784, generator=gen, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        ratio = ((net(x) - net(x2)).norm(dim=1) / (x - x2).norm(dim=1)).max()
    assert float(ratio) <= res.prod_L
    assert res.prod_L > res.prod_L_noskip


# --------------------------------------------------------------------------- attention and layer norm
def test_attention_logits_are_a_product_of_weights():
    torch.manual_seed(0)
    att = zoo.Attention(8, 2)
    with torch.no_grad():
        att.q.bias.zero_(), att.k.bias.zero_()
    x = torch.randn(5, 8)
    Q, K = att.q.weight[:4], att.k.weight[:4]
    assert torch.allclose(att.q(x)[:, :4] @ att.k(x)[:, :4].T, x @ Q.T @ K @ x.T, atol=1e-5)


def test_attention_product_errors_split():
    torch.manual_seed(0)
    net = zoo.MODELS["vit-tiny"]((784, 10))
    assert all(max(r.total) == 0.0 for r in beyond.attention_product_errors(net, net))
    g = beyond.prune_paper_all(net, 3.0, seed=0)
    for r, att, att_g in zip(beyond.attention_product_errors(net, g),
                             [m for m in net.modules() if isinstance(m, zoo.Attention)],
                             [m for m in g.modules() if isinstance(m, zoo.Attention)]):
        Q, K = att.q.weight.detach().double()[:8], att.k.weight.detach().double()[:8]
        Qh, Kh = att_g.q.weight.detach().double()[:8], att_g.k.weight.detach().double()[:8]
        direct = float(torch.linalg.matrix_norm(Q.T @ K - Qh.T @ Kh, ord=2))
        assert r.total[0] == pytest.approx(direct, rel=1e-12)
        for t, f, s in zip(r.total, r.first, r.second):
            assert t <= f + s + 1e-12 and f <= t + s + 1e-12


def test_layernorm_gain_bounds_its_jacobian_and_ln_is_scale_invariant():
    torch.manual_seed(0)
    ln = nn.LayerNorm(6)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 2.0)
    model = nn.Sequential(ln)
    X = torch.randn(20, 6) * 3
    gains = beyond.layernorm_gains(model, X)
    assert len(gains) == 1
    worst = 0.0
    for x in X:
        J = torch.autograd.functional.jacobian(ln, x)
        worst = max(worst, float(torch.linalg.matrix_norm(J, ord=2)))
    assert worst <= gains[0].gain_max * (1 + 1e-5)
    assert torch.allclose(ln(X * 10.0), ln(X), atol=1e-4)


# --------------------------------------------------------------------------- measurements
def test_matrix_diagnostics_recognise_normal_and_uniform_entries():
    lin = nn.Linear(300, 300)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(300, 300, generator=torch.Generator().manual_seed(0)))
    (diag,) = beyond.matrix_diagnostics(lin)
    assert abs(diag.excess_kurtosis) < 0.1 and diag.ks_D < 0.01
    (uni,) = beyond.matrix_diagnostics(nn.Linear(300, 300))  # PyTorch's uniform init
    assert uni.excess_kurtosis == pytest.approx(-1.2, abs=0.05)
    assert uni.psi == pytest.approx(1 / (3 * 300), rel=0.02)


def test_prune_sweep_structure_and_zero_pruning(tiny_bundle):
    torch.manual_seed(0)
    net = zoo.MODELS["resnet-tiny"]((784, 10))
    D = tiny_bundle
    res = beyond.prune_sweep(net, D.train.X[:100], D.train.y[:100], D.test.X[:50],
                             D.test.y[:50], [0.0, 4.0], seeds=[0, 1])
    assert res.d == (0.0, 4.0)
    assert res.max_correct_logit_change[0] == (0.0, 0.0)
    assert res.kept[0] == (1.0, 1.0)
    assert res.kept[1][0] < 0.5
    assert len(res.kept_per_matrix[1]) == len(res.names)
    assert res.margins_train.min <= res.margins_train.p5 <= res.margins_train.p50
    with pytest.raises(ParameterError):
        beyond.prune_sweep(net, D.train.X[:10], D.train.y[:10], D.test.X[:10], D.test.y[:10],
                           [-1.0], seeds=[0])
    assert math.isfinite(res.test_acc[1][0])


def test_conv_input_shapes_follow_the_strides():
    torch.manual_seed(0)
    net = zoo.MODELS["resnet-small"]((784, 10))
    shapes = beyond.conv_input_shapes(net)
    assert shapes["stages.0.conv"] == (1, 28, 28)
    assert shapes["stages.1.conv1"] == (16, 14, 14)
    assert shapes["stages.2.conv"] == (16, 14, 14)
    assert shapes["stages.3.conv2"] == (32, 7, 7)


def test_strided_conv_norm_is_at_most_ceil_k_over_s_times_unfolded():
    for seed in range(5):
        torch.manual_seed(seed)
        conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        unf = float(torch.linalg.matrix_norm(conv.weight.detach().reshape(4, -1).double(), ord=2))
        op = float(torch.linalg.matrix_norm(beyond.conv_as_matrix(conv, (3, 8, 8)), ord=2))
        assert unf - 1e-9 <= op <= 2.0 * unf + 1e-9
