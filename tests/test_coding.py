"""Checks of prunebounds.coding: exact round trips, real lengths, quantisers, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from prunebounds import coding as C
from prunebounds.errors import ParameterError
from prunebounds.models import build, linear_layers
from prunebounds.pruning import prune_magnitude

WIDTHS = (40, 24, 16, 6)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Small tensors on a shared machine: one thread spares seconds of thread contention."""
    before = torch.get_num_threads()
    yield torch.set_num_threads(1)
    torch.set_num_threads(before)


def pruned_net(widths=WIDTHS, fraction=0.8, seed=0):
    """A randomly initialised MLP with 80% of each layer's weights pruned by magnitude,
    biases spread out so that they are not all tiny."""
    net = build(widths, seed)
    with torch.no_grad():
        for i, lin in enumerate(linear_layers(net)):
            g = torch.Generator().manual_seed(100 + i)
            lin.bias.copy_(0.3 * torch.randn(lin.bias.shape, generator=g))
    return prune_magnitude(net, fraction)


def inputs(n=300, d=WIDTHS[0], seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def same_params(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("quantiser", ["kmeans", "uniform"])
@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("positions,unit_sets", [("auto", True), ("density", False),
                                                 ("column", True)])
def test_roundtrip_is_exact(quantiser, bits, positions, unit_sets):
    net, X = pruned_net(), inputs()
    spec = C.CodeSpec(bits=bits, quantiser=quantiser, positions=positions, unit_sets=unit_sets,
                      bias_bits=5)
    code = C.encode(net, spec)
    decoded, reference = C.decode(code), C.quantise(net, spec)
    assert same_params(decoded, reference)
    assert torch.equal(C.predictions(decoded, X), C.predictions(reference, X))
    assert C.verify_roundtrip(net, spec, X, code=code) == code
    assert decoded.widths == WIDTHS


def test_roundtrip_of_weight_lists_and_float32_storage():
    net = pruned_net()
    pairs = [(lin.weight, lin.bias) for lin in linear_layers(net)]
    spec = C.CodeSpec(bits=3, float_dtype="float32")
    assert C.encode(pairs, spec) == C.encode(net, spec)
    no_bias = [lin.weight for lin in linear_layers(net)]
    decoded = C.decode(C.encode(no_bias, spec))
    assert all(lin.bias is None for lin in linear_layers(decoded))
    assert all(torch.equal(a.weight, b.weight) for a, b in
               zip(linear_layers(decoded), linear_layers(C.quantise(no_bias, spec))))


def test_breakdown_adds_up_to_the_bytes():
    code = C.encode(pruned_net(), C.CodeSpec(bits=3))
    parts = C.code_length_breakdown(code)
    assert parts.total == 8 * len(code)
    assert all(getattr(parts, name) > 0 for name in ("header", "codebook", "positions",
                                                      "values", "biases"))
    assert parts.sketch == 0
    assert all(getattr(parts, name) % 8 == 0 for name in C.SEGMENTS)


def test_code_is_self_delimiting():
    """The header fixes the length: a longer or shorter byte string is rejected (the set
    of codes is prefix-free, as Kraft's inequality in the bound requires)."""
    code = C.encode(pruned_net(), C.CodeSpec(bits=2))
    with pytest.raises(ParameterError, match="announces"):
        C.decode(code + b"\x00")
    with pytest.raises(ParameterError):
        C.decode(code[:-4])
    with pytest.raises(ParameterError, match="magic"):
        C.decode(b"XY" + code[2:])
    with pytest.raises(ParameterError, match="bytes"):
        C.decode("not bytes")


def test_density_positions_cost_the_binary_entropy():
    """A density-coded mask costs n h(k/n) bits (scipy's entropy, computed apart) plus
    the count and the range coder's termination: at most 64 bits more."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((200, 300)) * (rng.random((200, 300)) < 0.05)
    w[0, 0] = 1.0
    spec = C.CodeSpec(bits=1, positions="density", unit_sets=False)
    lc = C.layer_code_lengths([torch.tensor(w, dtype=torch.float32)], spec)[0]
    k, n = int((w != 0).sum()), w.size
    ideal = n * entropy([k / n, 1 - k / n], base=2)
    assert ideal <= lc.positions <= ideal + 64
    # and it is close to the count of Lemma D.1, log2 C(n, k)
    assert abs(lc.log2_binomial - ideal) < 0.5 * math.log2(n) + 2


def test_values_cost_the_empirical_entropy():
    net = pruned_net()
    spec = C.CodeSpec(bits=3)
    q = C.quantise_network(net, spec)
    for lc, layer in zip(C.layer_code_lengths(net, spec), q.layers):
        counts = np.bincount(layer.symbols, minlength=len(layer.table))
        ideal = layer.n_kept * entropy(counts / counts.sum(), base=2)
        side = sum(2 * math.floor(math.log2(c + 1)) + 1 for c in counts[:-1])
        assert ideal <= lc.values <= ideal + side + 64


def test_column_model_costs_its_sequential_probability():
    """The column model's real length is -log2 of the Krichevsky-Trofimov probability,
    computed here entry by entry in plain Python, plus at most 64 bits."""
    rng = np.random.default_rng(6)
    mask = rng.random((30, 40)) < np.linspace(0.0, 0.4, 40)[None, :]
    mask[0, 0] = True
    bits, above = 0.0, [0] * 40
    for i in range(30):
        for j in range(40):
            p = (above[j] + 0.5) / (i + 1.0)
            bits -= math.log2(p if mask[i, j] else 1 - p)
            above[j] += int(mask[i, j])
    w = torch.tensor(np.where(mask, 1.0, 0.0), dtype=torch.float32)
    spec = C.CodeSpec(bits=1, positions="column", unit_sets=False)
    assert C._ideal_bits(mask, "column") == pytest.approx(bits, rel=1e-12)
    code = C.code_length_breakdown(C.encode([w], spec))
    assert bits <= code.positions <= bits + 64


def test_elias_gamma_lengths_and_round_trip():
    values = [1, 2, 3, 7, 8, 1000, 2 ** 20 + 5]
    w = C._BitWriter()
    for v in values:
        w.gamma(v)
    assert len(w.bits) == sum(2 * math.floor(math.log2(v)) + 1 for v in values)
    r = C._BitReader(w.to_bytes())
    assert [r.gamma() for _ in values] == values
    w = C._BitWriter()
    for v in (-3, 0, 5):
        w.signed(v)
    w.float(0.1, "float16")
    r = C._BitReader(w.to_bytes())
    assert [r.signed() for _ in range(3)] == [-3, 0, 5]
    assert r.float("float16") == np.float32(np.float16(0.1))


def test_column_model_learns_unused_inputs():
    """Half the input columns are never used: the column model codes that mask in far
    fewer bits than the density model."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((100, 200)) * (rng.random((100, 200)) < 0.2)
    w[:, 100:] = 0.0
    lcs = [C.layer_code_lengths([torch.tensor(w, dtype=torch.float32)],
                                C.CodeSpec(bits=1, positions=p, unit_sets=False))
           for p in ("density", "column")]
    ideal = {p: C._ideal_bits(w != 0, p) for p in ("density", "column")}
    assert ideal["column"] < 0.85 * ideal["density"]
    assert lcs[0][0].positions == lcs[1][0].positions  # both pick the shorter model


def test_unit_sets_shorten_codes_with_dead_units():
    net = pruned_net((40, 60, 16, 6), fraction=0.9)
    with torch.no_grad():  # silence 30 hidden units of layer 1
        linear_layers(net)[1].weight[:, :30] = 0.0
    flat = C.encode(net, C.CodeSpec(bits=2, unit_sets=False))
    units = C.encode(net, C.CodeSpec(bits=2, unit_sets=True))
    assert len(units) < len(flat)
    assert same_params(C.decode(flat), C.decode(units))


def test_dead_units_are_removed_without_changing_outputs():
    net = pruned_net()
    lins = linear_layers(net)
    with torch.no_grad():
        lins[1].weight[:, 3] = 0.0  # unit 3 of hidden layer 1 reaches nothing
        lins[0].weight[5, :] = 0.0  # unit 5 gets no input ...
        lins[0].bias[5] = -1.0      # ... and outputs ReLU(-1) = 0
    spec = C.CodeSpec(bits=4, float_dtype="float32", bias_bits=24)
    q = C.quantise_network(net, spec)
    assert not q.layers[0].mask[3].any() and q.layers[0].bias_levels[3] == 0
    assert not q.layers[1].mask[:, 5].any()
    ws = [lin.weight.detach().numpy().copy() for lin in lins]
    bs = [lin.bias.detach().numpy().copy() for lin in lins]
    C._remove_dead_units(ws, bs)
    X = inputs()
    before = net(X)
    with torch.no_grad():
        for lin, w, b in zip(lins, ws, bs):
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
    assert torch.equal(before, net(X))


def test_uniform_grid_is_nearest_level_and_has_no_zero():
    net = pruned_net()
    for bits in (1, 2, 3):
        spec = C.CodeSpec(bits=bits, quantiser="uniform", float_dtype="float32")
        q = C.quantise_network(net, spec)
        for layer, lin in zip(q.layers, linear_layers(net)):
            assert len(layer.table) == 2 ** bits and 0.0 not in layer.table
            levels = layer.table / layer.step
            half = 2 ** (bits - 1)
            expected = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])
            np.testing.assert_allclose(levels, expected, rtol=1e-6)
            v = lin.weight.detach().numpy()[layer.mask]
            nearest = np.abs(v[:, None] - layer.table[None, :]).argmin(axis=1)
            np.testing.assert_array_equal(layer.symbols, nearest)


def test_kmeans_finds_separated_clusters_and_is_idempotent():
    rng = np.random.default_rng(5)
    centres = np.array([-2.0, -0.5, 0.7, 3.0])
    labels = rng.integers(0, 4, 400)
    v = centres[labels] + 0.01 * rng.standard_normal(400)
    found = C._kmeans_1d(v, 4)
    means = np.array([v[labels == j].mean() for j in range(4)])  # computed apart
    np.testing.assert_allclose(found, np.sort(means), atol=1e-12)
    net = pruned_net()
    spec = C.CodeSpec(bits=2)
    once = C.quantise(net, spec)
    assert same_params(C.quantise(once, spec), once)
    for layer in C.quantise_network(net, spec).layers:
        assert len(layer.table) <= 4 and np.all(np.diff(layer.table) > 0)


def test_ranks_and_symbols_determine_each_other():
    q = C.quantise_network(pruned_net(), C.CodeSpec(bits=3))
    for layer in q.layers:
        Z = layer.ranks()
        assert np.array_equal(Z != 0, layer.mask)
        signs = np.sign(layer.table[layer.symbols])
        assert np.all((Z[layer.mask] < 0) == (signs < 0))
        np.testing.assert_array_equal(C._symbols_from_ranks(Z, layer.table), layer.symbols)


@pytest.mark.parametrize("mode", ["sketch-mask", "sketch-symbols"])
def test_sketch_code_roundtrip(mode):
    """Layer 1 (24 x 40, about 5% kept) is stored as its sketch and recovered exactly."""
    net = pruned_net(fraction=[0.95, 0.8, 0.5])
    spec = C.CodeSpec(bits=2, positions=mode, sketch_layers=(1,), sketch_max_iter=500,
                      sketch_growth=1.3)
    log: list[C.SketchAttempt] = []
    code = C.encode(net, spec, sketch_log=log)
    parts = C.code_length_breakdown(code)
    assert parts.sketch > 0 and parts.sketch_k[0] is not None and parts.sketch_k[1] is None
    assert parts.layer_positions[0] == mode
    assert any(a.exact and a.k == parts.sketch_k[0] for a in log)
    assert same_params(C.decode(code), C.quantise(net, spec))


def test_sketch_failure_says_the_code_is_invalid():
    net = pruned_net(fraction=0.2)  # dense layers: no sketch smaller than the layer works
    spec = C.CodeSpec(bits=1, positions="sketch-mask", sketch_layers=(3,), sketch_max_iter=50)
    with pytest.raises(ParameterError, match="invalid"):
        C.encode(net, spec)
    lc = C.layer_code_lengths(net, spec.replace(positions="auto"), sketches=("sketch-mask",))
    assert lc[2].sketch["sketch-mask"]["bits"] is None


def test_finetune_keeps_mask_and_codebook_size_and_lowers_the_loss(tiny_bundle):
    torch.manual_seed(0)
    X, y = tiny_bundle.train.X, tiny_bundle.train.y
    net = prune_magnitude(build("smoke", 0), 0.9)
    spec = C.CodeSpec(bits=2)
    before = C.quantise(net, spec)
    tuned = C.finetune_codebook(net, spec, X, y, epochs=2, lr=3e-3, seed=0)
    after = C.quantise(tuned, spec)
    for a, b in zip(linear_layers(before), linear_layers(after)):
        assert torch.equal(a.weight != 0, b.weight != 0)
        assert len(torch.unique(b.weight[b.weight != 0])) <= 4
    loss = [torch.nn.functional.cross_entropy(m(X), y).item() for m in (before, after)]
    assert loss[1] < loss[0]


def test_bad_input_names_the_fix():
    with pytest.raises(ParameterError, match="bits must be an integer >= 1"):
        C.CodeSpec(bits=0)
    with pytest.raises(ParameterError, match="quantiser"):
        C.CodeSpec(quantiser="lloyd")
    with pytest.raises(ParameterError, match="bias_bits"):
        C.CodeSpec(bias_bits=1)
    with pytest.raises(ParameterError, match="positions"):
        C.CodeSpec(positions="rle")
    tiny = pruned_net((10, 4, 2), fraction=0.9)  # layer 2 keeps 1 of 8 weights
    with pytest.raises(ParameterError, match="codebook of 4 entries"):
        C.encode(tiny, C.CodeSpec(bits=2))
    empty = pruned_net(fraction=[0.8, 1.0, 0.5])
    with pytest.raises(ParameterError, match="no weights left"):
        C.encode(empty, C.CodeSpec(bits=1))
    with pytest.raises(ParameterError, match="sketch_layers"):
        C.encode(pruned_net(), C.CodeSpec(positions="sketch-mask", sketch_layers=(7,)))


def test_a_code_of_another_network_is_caught():
    net, other, X = pruned_net(seed=0), pruned_net(seed=1), inputs()
    spec = C.CodeSpec(bits=2)
    with pytest.raises(ParameterError, match="differs|predicts differently"):
        C.verify_roundtrip(net, spec, X, code=C.encode(other, spec))
