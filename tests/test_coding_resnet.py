"""The residual-CNN kind of the code format: exact round trips, the header, the whole
certificate path (prune, quantise, encode, decode, same predictions, bound) on the CPU."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from prunebounds import beyond, profiles
from prunebounds import certificate as K
from prunebounds import coding as C
from prunebounds.chapters import certificate as chapter
from prunebounds.errors import ParameterError
from prunebounds.models import build
from prunebounds.zoo import MODELS, ResNet


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    yield torch.set_num_threads(1)
    torch.set_num_threads(before)


def tiny_resnet(seed=0, **kw) -> ResNet:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = ResNet((784, 10), **kw) if kw else MODELS["resnet-tiny"]((784, 10))
    with torch.no_grad():  # biases of the head spread out, so that they are coded for real
        net.head.bias.copy_(0.2 * torch.randn(10, generator=torch.Generator().manual_seed(seed)))
    return net.eval()


def images(n=200, seed=1):
    return torch.rand(n, 784, generator=torch.Generator().manual_seed(seed))


def same_params(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("quantiser", ["kmeans", "uniform"])
@pytest.mark.parametrize("positions", ["auto", "density", "column"])
def test_resnet_roundtrip_is_exact(quantiser, positions):
    net, X = beyond.prune_paper_all(tiny_resnet(), 2.0, 0), images()
    spec = C.CodeSpec(bits=2, quantiser=quantiser, positions=positions, bias_bits=6)
    code = C.encode(net, spec)
    decoded, reference = C.decode(code), C.quantise(net, spec)
    assert isinstance(decoded, ResNet) and same_params(decoded, reference)
    assert torch.equal(C.predictions(decoded, X), C.predictions(reference, X))
    assert C.verify_roundtrip(net, spec, X, code=code) == code
    # the kept positions are the pruned network's, convolutions included
    for a, b in zip(C.coded_layers(decoded), C.coded_layers(net)):
        assert torch.equal(a.weight != 0, b.weight != 0)
    parts = C.code_length_breakdown(code)
    assert parts.total == 8 * len(code) and parts.sketch == 0
    assert len(parts.layer_positions) == len(C.coded_layers(net)) == 7


def test_header_rebuilds_the_constructor_arguments():
    net = beyond.prune_paper_all(tiny_resnet(3, channels=(3, 5, 6), blocks=2), 1.0, 1)
    q = C.decode_network(C.encode(net, C.CodeSpec(bits=1)))
    assert q.arch == C.ResNetArch(784, 10, (3, 5, 6), 2)
    assert same_params(q.to_module(), C.quantise(net, C.CodeSpec(bits=1)))


def test_positions_cost_about_the_binary_entropy_of_each_layer():
    """Density positions against sum_l n_l H(k_l / n_l), computed independently."""
    net = beyond.prune_paper_all(tiny_resnet(), 3.0, 0)
    code = C.encode(net, C.CodeSpec(bits=2, positions="density"))
    ideal = 0.0
    for layer in C.coded_layers(net):
        n, k = layer.weight.numel(), int(torch.count_nonzero(layer.weight))
        p = k / n
        ideal -= k * math.log2(p) + (n - k) * math.log2(1 - p)
    got = C.code_length_breakdown(code).positions
    # per layer a few bits of side information, plus one 32-bit word of coder slack
    assert ideal <= got <= ideal + 7 * 24 + 64


def test_mlp_codes_keep_network_kind_zero():
    mlp = build((784, 20, 10), seed=0)
    assert C.decode(C.encode(mlp, C.CodeSpec(bits=2))).widths == (784, 20, 10)
    r_mlp = C._BitReader(C.encode(mlp))
    r_cnn = C._BitReader(C.encode(tiny_resnet()))
    for r in (r_mlp, r_cnn):
        r.read(16)
        assert r.gamma() == C.FORMAT_VERSION
    assert (r_mlp.natural(), r_cnn.natural()) == (0, 1)


def test_bad_resnet_input_names_the_fix():
    net = tiny_resnet()
    with pytest.raises(ParameterError, match="sketched positions are coded for MLPs only"):
        C.encode(net, C.CodeSpec(positions="sketch-mask"))
    empty = tiny_resnet()
    with torch.no_grad():
        empty.stages[0].conv.weight.zero_()
    with pytest.raises(ParameterError, match="no weights left"):
        C.encode(empty)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                               torch.nn.Linear(2 * 26 * 26, 10))
    with pytest.raises(ParameterError, match="zoo ResNet"):
        C.encode(conv)
    code = C.encode(beyond.prune_paper_all(net, 2.0, 0))
    with pytest.raises(ParameterError, match="truncated or corrupt"):
        C.decode(code[:-1])


def test_whole_cnn_path_prune_code_decode_bound():
    """A tiny ResNet trained a few steps on synthetic images: pruned by the chapter's two
    rules, coded, decoded (same predictions), certified; the bound is the Occam-kl bound
    of the real code length and the decoded network's measured training error."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.rand(10, 784, generator=gen)
    y = torch.randint(0, 10, (600,), generator=gen)
    X = (centres[y] + 0.3 * torch.randn(600, 784, generator=gen)).clamp(0, 1)
    net = tiny_resnet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for i in range(0, 600, 50):
        loss = torch.nn.functional.cross_entropy(net(X[i:i + 50]), y[i:i + 50])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    S = dataclasses.replace(chapter.settings(profiles.resolve("smoke")), resnet_epochs=0)
    Xs, ys, Xt, yt = X[:400], y[:400], X[400:], y[400:]
    out = chapter.certify_resnet(net, (1.0, 4.0), 3, S, Xs, ys, Xt, yt, seed=0)
    assert [c.family for c in out] == ["resnet-paper-rule", "resnet-magnitude"] * 2
    n_total = sum(m.weight.numel() for m in C.coded_layers(net))
    for c in out:
        assert c.parts.total == c.code_bits
        assert c.bound == pytest.approx(K.occam_kl_bound(c.train_err, c.code_bits, 400,
                                                         S.delta), abs=1e-12)
        assert c.test_err <= c.bound <= 1.0 and 1 <= c.bits <= 3
        assert c.kept == pytest.approx(c.n_kept / n_total)
    # equal sparsity: the magnitude network keeps as many weights as the rule's
    assert out[0].n_kept == out[1].n_kept and out[2].n_kept == out[3].n_kept
    assert out[2].n_kept < out[0].n_kept  # a larger d keeps fewer
    # the magnitude network is the one coded: its kept weights are the largest per layer
    g = beyond.prune_paper_all(net, 4.0, 0)
    mag = chapter.magnitude_like(net, g)
    for a, b, full in zip(C.coded_layers(mag), C.coded_layers(g), C.coded_layers(net)):
        kept = a.weight != 0
        assert int(kept.sum()) == int(torch.count_nonzero(b.weight))
        if (~kept).any():
            assert full.weight.abs()[kept].min() >= full.weight.abs()[~kept].max()
    # the training error behind the bound is the decoded network's
    spec = C.CodeSpec(bits=out[3].bits, bias_bits=S.bias_bits)
    decoded = C.decode(C.encode(mag, spec))
    err = float((C.predictions(decoded, Xs) != ys).float().mean())
    assert out[3].train_err == pytest.approx(err, abs=1 / 400)
    assert np.isfinite(out[3].compared.lemma_d1) and out[3].compared.lemma_d1 >= err


def test_masked_finetune_keeps_zeros_and_lowers_the_loss():
    gen = torch.Generator().manual_seed(5)
    X, y = torch.rand(256, 784, generator=gen), torch.randint(0, 10, (256,), generator=gen)
    g = beyond.prune_paper_all(tiny_resnet(), 2.0, 0)
    loss = lambda net: float(torch.nn.functional.cross_entropy(net(X), y))  # noqa: E731
    with torch.no_grad():
        before = loss(g)
    tuned = chapter.masked_finetune(g, X, y, 3, seed=0)
    again = chapter.masked_finetune(g, X, y, 3, seed=0)
    assert same_params(tuned, again)  # seeded: the same network twice
    for a, b in zip(C.coded_layers(tuned), C.coded_layers(g)):
        assert not a.weight[b.weight == 0].any()
        assert not hasattr(a, "weight_mask")  # masks made permanent
    with torch.no_grad():
        assert loss(tuned) < before
    assert same_params(chapter.masked_finetune(g, X, y, 0, seed=0), g)
