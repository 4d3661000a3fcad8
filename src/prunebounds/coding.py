"""A real code for pruned, quantised networks: bytes out, the same network back.

The certificate of :mod:`prunebounds.certificate` charges a network the length of its
description, so the description has to exist: this module turns a pruned multilayer
perceptron into a byte string and the byte string back into the network, and every
bit the bound pays for is a bit that :func:`encode` wrote.

The network the code describes
------------------------------
:func:`quantise` maps a pruned network to the network the code stores (``spec`` is a
:class:`CodeSpec`):

* kept weights (the non-zeros) take one of at most 2^b values per layer: the centres of
  a one-dimensional k-means codebook (Lloyd 1982, the "trained quantisation" of Han,
  Mao & Dally 2016), or the uniform grid step * {-2^(b-1), ..., -1, 1, ..., 2^(b-1)}
  whose step minimises the squared error. Zero is not a level: a weight is either
  pruned or it is not. Codebook entries and steps are stored as float16 (or float32);
* biases lie on a uniform grid step * {-(2^(c-1) - 1), ..., 2^(c-1) - 1} with c =
  ``bias_bits``, zero included;
* units that cannot influence the output are removed first (this never changes a
  prediction): a hidden unit with no kept outgoing weight loses its incoming weights
  and its bias, and a hidden unit with no kept incoming weight and a bias <= 0 (its
  output is ReLU(bias) = 0) loses its outgoing weights.

:func:`decode` (:func:`encode` (model)) and :func:`quantise` (model) have identical weights
and biases, bit for bit (tested), hence identical predictions.

The format (version 1)
----------------------
A header and five segments of whole bytes, one after the other; the segments' lengths
are in the header, so the decoder always knows where the code ends. The set of all
codes is therefore prefix-free, which is what the bound needs (Kraft's inequality:
sum 2^-len <= 1). Every segment is bit-packed side information followed by the 32-bit
words of one range-coder stream.

``header``
    magic ``PB``, format version, network kind (0 = ReLU MLP; room for other kinds),
    the number of layers, per layer its kind (0 = dense linear) and the widths, b,
    quantiser, storage dtype of floats, ``bias_bits``, per layer the model of its
    positions (density, column, sketch of the mask, sketch of the symbols), whether unit
    sets are used, the sketch seed and solver budget and every sketch size when a layer
    is sketched, and the byte lengths of the other segments.
    Integers are Elias-gamma codes (Elias 1975), packed into bits.
``codebook``
    per layer the k-means centres (their number, then the floats) or the grid step.
``positions``
    with *unit sets* (the default), first the set of units each layer boundary keeps
    (the inputs some weight reads, the hidden units with a kept weight in or out, the
    outputs some weight writes), each as a density-coded 0/1 vector; then per layer
    the mask of kept weights inside the block (kept outputs x kept inputs), or the whole
    mask without unit sets, entropy-coded with an explicit model: *density* (every
    entry kept with probability n_kept / n, n_kept in the segment: within a few bits of
    log2 C(n, n_kept), the count of the paper's Lemma D.1) or *column* (an adaptive
    Krichevsky-Trofimov estimate per input column, Krichevsky & Trofimov 1981, rows in
    order: P(keep) = (kept above in the column + 1/2) / (rows above + 1)).
    ``positions="auto"`` keeps the shorter of the two per layer.
``values``
    per layer the histogram of its symbols (Elias-gamma counts), then every kept
    weight's symbol under that categorical model, in row-major order.
``biases``
    per layer the bias step, the range of levels and their histogram, then the levels
    of the output units and of the hidden units in the unit sets (the other hidden
    units reach nothing, and their biases are zero).
``sketch``
    for layers coded by the paper's device instead: the k x k sketch Y = A Z B^T of the
    layer's integer matrix Z (the mask, or the signed symbol ranks), A and B random
    {0, 1} matrices with ceil(ln p) ones per column drawn from the seed in the header
    (:func:`prunebounds.sketching.bipartite_adjacency`), Y's entries entropy-coded
    like the values. The decoder recovers Z by basis pursuit
    (:func:`prunebounds.sketching.recover_first_order`) and rounds; the encoder runs
    the same recovery and accepts k only if it returns Z exactly.

The residual CNN (network kind 1)
--------------------------------
A :class:`prunebounds.zoo.ResNet` is coded in the same version-1 format under network
kind 1 (an MLP's code, kind 0, is unchanged). After the kind, the header holds the
arguments of the zoo constructor (input features, classes, the channels of every
stage, residual blocks per stage), from which the decoder rebuilds the exact network;
then b, quantiser, float format, ``bias_bits``, one position model per coded layer and
the segment lengths. The coded layers are the convolutions in module order, each
kernel (out x in x kh x kw) unfolded to out x (in kh kw) as
:func:`prunebounds.beyond.weight_matrices_all` reads it, then the linear head; their
kept weights are quantised and coded exactly like an MLP layer's (codebook, the whole
mask with the density or column model, symbols), and the head's biases like an MLP's.
The zoo ResNet has no batch normalisation and bias-free convolutions, so there is
nothing to fold or to count besides the head's biases (a network with a normalisation
layer is refused: fold it into the convolution first). No unit sets and no sketches:
the skip connections carry a channel past a convolution that has no kept weight, so no
unit is dead. :func:`quantise_resnet` gives the network the code describes.

Entropy coding is done by ``constriction`` (Bamler 2022), a range coder with
Bernoulli and categorical models; side information is a few hundred bits.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import constriction
import numpy as np
import torch
from torch import nn

from .devices import resolve_device
from .errors import ParameterError
from .models import MLP, build, linear_layers
from .zoo import ResNet
from .validate import check_chain, check_choice, check_int
from .sketching import bipartite_adjacency, default_degree, recover_first_order

__all__ = [
    "CodeSpec",
    "QuantisedLayer",
    "QuantisedNetwork",
    "CodeLength",
    "SketchAttempt",
    "quantise_network",
    "quantise",
    "encode",
    "decode",
    "decode_network",
    "code_length_breakdown",
    "predictions",
    "verify_roundtrip",
    "LayerCode",
    "layer_code_lengths",
    "finetune_codebook",
    "first_sketch_size",
    "sketch_bits_at",
    "ResNetArch",
    "resnet_arch",
    "coded_layers",
    "QuantisedResNet",
    "quantise_resnet",
]

FORMAT_VERSION = 1
MAGIC = b"PB"
QUANTISERS = ("kmeans", "uniform")
FLOAT_DTYPES = ("float16", "float32")
POSITIONS = ("auto", "density", "column", "sketch-mask", "sketch-symbols")
# codes written in the header (index = code)
_NETWORK_KINDS = ("mlp", "resnet")
_LAYER_KINDS = ("linear",)
_LAYER_POSITIONS = ("density", "column", "sketch-mask", "sketch-symbols")
SEGMENTS = ("header", "codebook", "positions", "values", "biases", "sketch")
_KT = 0.5  # Krichevsky-Trofimov pseudo-count of the column model


# ----------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class CodeSpec:
    """How a pruned network is quantised and coded.

    Attributes:
        bits: b >= 1; each layer's kept weights take at most 2^b values.
        quantiser: ``"kmeans"`` (a codebook of at most 2^b centres per layer) or
            ``"uniform"`` (the grid step * {+-1, ..., +-2^(b-1)}).
        bias_bits: c >= 2; biases lie on a grid of 2^c - 1 levels (zero included).
        float_dtype: how codebook entries and steps are stored (``"float16"`` or
            ``"float32"``).
        positions: the model of the kept positions: ``"density"``, ``"column"``,
            ``"auto"`` (the shorter of the two per layer), ``"sketch-mask"`` (the
            paper's sketch of the 0/1 mask replaces the positions) or
            ``"sketch-symbols"`` (the sketch of the signed symbol matrix replaces
            positions and values).
        unit_sets: code first which units each layer boundary keeps (inputs read,
            hidden units connected, outputs written), then each layer's mask inside
            the block of kept units; ignored when a layer is sketched.
        sketch_layers: with a sketch position model, the layers (1-based) to sketch;
            the others get the shorter of density and column. ``None``: all layers.
        sketch_seed: seed of the sketch matrices (stored in the header).
        sketch_growth: ratio between consecutive sketch sizes k tried by the encoder.
        sketch_max_iter: iteration cap of each basis-pursuit recovery.
        sketch_k: (layer, k) pairs: sketch sizes already found (by
            :func:`layer_code_lengths`) for some sketched layers; the encoder then tries
            that k alone (and still checks that recovery returns the layer exactly)
            instead of searching. Not written in the header: the header records every
            sketch size anyway.
    """

    bits: int = 3
    quantiser: str = "kmeans"
    bias_bits: int = 8
    float_dtype: str = "float16"
    positions: str = "auto"
    unit_sets: bool = True
    sketch_layers: tuple[int, ...] | None = None
    sketch_seed: int = 0
    sketch_growth: float = 1.15
    sketch_max_iter: int = 3000
    sketch_k: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self):
        bits = self.bits
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
            raise ParameterError(f"bits must be an integer >= 1 (2^bits values per layer), "
                                 f"got {bits!r}; use bits=1 for a sign-only code")
        if bits > 16:
            raise ParameterError(f"bits must be <= 16, got {bits}; more bits than float16 "
                                 "offers compress nothing")
        bias_bits = self.bias_bits
        if (isinstance(bias_bits, bool) or not isinstance(bias_bits, (int, np.integer))
                or not 2 <= bias_bits <= 24):
            raise ParameterError(f"bias_bits must be an integer in [2, 24], got {bias_bits!r}")
        check_choice("quantiser", self.quantiser, QUANTISERS)
        check_choice("float_dtype", self.float_dtype, FLOAT_DTYPES)
        check_choice("positions", self.positions, POSITIONS)
        check_int("sketch_seed", self.sketch_seed, minimum=0)
        if self.sketch_layers is not None:
            if isinstance(self.sketch_layers, (str, bytes)) or not all(
                    isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                    for i in self.sketch_layers):
                raise ParameterError("sketch_layers must be a tuple of layer numbers "
                                     f"(1-based) or None, got {self.sketch_layers!r}")
            object.__setattr__(self, "sketch_layers", tuple(int(i) for i in self.sketch_layers))
        check_int("sketch_max_iter", self.sketch_max_iter, minimum=1)
        if self.sketch_k is not None:
            try:
                pairs = tuple((int(check_int("sketch layer", a, minimum=1)),
                               int(check_int("sketch size k", b, minimum=1)))
                              for a, b in self.sketch_k)
            except (TypeError, ValueError):
                raise ParameterError("sketch_k must be (layer, k) pairs, e.g. ((1, 40),), "
                                     f"got {self.sketch_k!r}") from None
            object.__setattr__(self, "sketch_k", pairs)
        if not (isinstance(self.sketch_growth, (int, float)) and self.sketch_growth > 1.0):
            raise ParameterError(f"sketch_growth must be a number > 1, got {self.sketch_growth!r}")

    def replace(self, **changes: Any) -> "CodeSpec":
        """A copy with some fields changed (validated again)."""
        from dataclasses import replace

        return replace(self, **changes)


# --------------------------------------------------------------------------- bits I/O
class _BitWriter:
    """Appends bits (most significant first) and Elias-gamma integers; pads to bytes."""

    def __init__(self):
        self.bits: list[int] = []

    def write(self, value: int, n: int) -> None:
        value = int(value)
        if value < 0 or value >= (1 << n):
            raise ValueError(f"{value} does not fit in {n} bits")
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def gamma(self, n: int) -> None:
        """Elias-gamma code of n >= 1: floor(log2 n) zeros, then n in binary."""
        n = int(n)
        if n < 1:
            raise ValueError(f"Elias gamma codes integers >= 1, got {n}")
        width = n.bit_length()
        self.bits.extend([0] * (width - 1))
        self.write(n, width)

    def natural(self, n: int) -> None:
        """n >= 0 as gamma(n + 1)."""
        self.gamma(int(n) + 1)

    def signed(self, n: int) -> None:
        """Any integer, zig-zag mapped to 0, -1, 1, -2, 2, ... then natural."""
        n = int(n)
        self.natural(2 * n if n >= 0 else -2 * n - 1)

    def float(self, x: float, dtype: str) -> None:
        if dtype == "float16":
            self.write(int(np.array(x, dtype=np.float16).view(np.uint16)), 16)
        else:
            self.write(int(np.array(x, dtype=np.float32).view(np.uint32)), 32)

    def to_bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        out = bytearray()
        for i in range(0, len(bits), 8):
            byte = 0
            for b in bits[i:i + 8]:
                byte = (byte << 1) | b
            out.append(byte)
        return bytes(out)


class _BitReader:
    """Reads what :class:`_BitWriter` wrote."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0  # in bits

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ParameterError("the code ended early: it is truncated or not a code "
                                     "written by prunebounds.coding.encode")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def gamma(self) -> int:
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
            if zeros > 64:
                raise ParameterError("corrupt code: an Elias-gamma integer is too long")
        return (1 << zeros) | self.read(zeros)

    def natural(self) -> int:
        return self.gamma() - 1

    def signed(self) -> int:
        z = self.natural()
        return z // 2 if z % 2 == 0 else -(z + 1) // 2

    def float(self, dtype: str) -> np.float32:
        if dtype == "float16":
            return np.float32(np.array(self.read(16), dtype=np.uint16).view(np.float16))
        return np.array(self.read(32), dtype=np.uint32).view(np.float32)[()]

    def byte_offset(self) -> int:
        """Position of the next whole byte (the end of the bit-packed part)."""
        return (self.pos + 7) // 8


def _words_to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype="<u4").tobytes()


def _bytes_to_words(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise ParameterError("corrupt code: an entropy-coded part is not a whole number of "
                             "32-bit words")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def _bernoulli(p: float | None = None):
    model = constriction.stream.model.Bernoulli
    return model(perfect=False) if p is None else model(float(p), perfect=False)


def _categorical(counts: np.ndarray):
    probs = np.asarray(counts, dtype=np.float64)
    return constriction.stream.model.Categorical(probs / probs.sum(), perfect=False)


# --------------------------------------------------------------- histograms of symbols
def _write_histogram(w: _BitWriter, counts: np.ndarray) -> None:
    """Counts of a known total: all but the last, as Elias-gamma naturals."""
    for c in counts[:-1]:
        w.natural(int(c))


def _read_histogram(r: _BitReader, size: int, total: int) -> np.ndarray:
    counts = np.array([r.natural() for _ in range(size - 1)] + [0], dtype=np.int64)
    counts[-1] = total - counts[:-1].sum()
    if counts[-1] < 0:
        raise ParameterError("corrupt code: a histogram exceeds its total")
    return counts


def _encode_ranged(w: _BitWriter, enc, values: np.ndarray) -> None:
    """Integers of known count: range [lo, hi] and histogram as side info, then the symbols."""
    if len(values) == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    w.signed(lo)
    w.natural(hi - lo)
    counts = np.bincount(values - lo, minlength=hi - lo + 1)
    _write_histogram(w, counts)
    if hi > lo:
        enc.encode((values - lo).astype(np.int32), _categorical(counts))


def _decode_ranged(r: _BitReader, n: int) -> tuple[int, np.ndarray]:
    """Side info of :func:`_encode_ranged`: (lo, counts); none was written for n = 0."""
    if n == 0:
        return 0, np.zeros(1, dtype=np.int64)
    lo = r.signed()
    size = r.natural() + 1
    return lo, _read_histogram(r, size, n)


def _decode_ranged_symbols(dec, lo: int, counts: np.ndarray, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if len(counts) == 1:
        return np.full(n, lo, dtype=np.int64)
    return np.asarray(dec.decode(_categorical(counts), n), dtype=np.int64) + lo


# ------------------------------------------------------------------- quantisation
@dataclass(frozen=True)
class QuantisedLayer:
    """One dense layer as the code stores it.

    Attributes:
        mask: kept positions, bool, out x in.
        symbols: for each kept weight (row-major order) its index into ``table``.
        table: the values a kept weight can take, float32, sorted ascending.
        bias_levels: integer bias levels (``None`` without biases).
        bias_step: the bias grid step (float32, ``None`` without biases).
        step: the uniform grid step (``None`` for k-means).
    """

    mask: np.ndarray
    symbols: np.ndarray
    table: np.ndarray
    bias_levels: np.ndarray | None
    bias_step: np.float32 | None
    step: np.float32 | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    @property
    def n_kept(self) -> int:
        return int(self.mask.sum())

    def weight(self) -> np.ndarray:
        """The float32 weight matrix (out x in) the code describes."""
        W = np.zeros(self.mask.shape, dtype=np.float32)
        W[self.mask] = self.table[self.symbols]
        return W

    def bias(self) -> np.ndarray | None:
        """The float32 biases the code describes."""
        if self.bias_levels is None:
            return None
        return np.float32(self.bias_step) * self.bias_levels.astype(np.float32)

    def ranks(self) -> np.ndarray:
        """Signed symbol ranks (out x in, 0 where pruned): the matrix the symbol sketch
        compresses. Negative table entries get -1, -2, ... from zero outwards, the
        others 1, 2, ...; ranks and symbols determine each other given the table."""
        n_neg = int((self.table < 0).sum())
        r = self.symbols - n_neg
        r = np.where(r >= 0, r + 1, r)
        Z = np.zeros(self.mask.shape, dtype=np.int64)
        Z[self.mask] = r
        return Z


def _symbols_from_ranks(Z: np.ndarray, table: np.ndarray) -> np.ndarray:
    n_neg = int((table < 0).sum())
    r = Z[Z != 0]
    return np.where(r > 0, r - 1, r) + n_neg


@dataclass(frozen=True)
class QuantisedNetwork:
    """A ReLU MLP in the coded form: its widths and one :class:`QuantisedLayer` each."""

    widths: tuple[int, ...]
    layers: tuple[QuantisedLayer, ...]
    spec: CodeSpec

    @property
    def n_kept(self) -> int:
        return sum(layer.n_kept for layer in self.layers)

    def to_module(self) -> nn.Module:
        """The network as a :class:`prunebounds.models.MLP` (float32, CPU)."""
        if self.layers[0].bias_levels is not None:
            net = build(self.widths, seed=0)  # leaves torch's global generator untouched
        else:
            with torch.random.fork_rng():
                net = MLP(self.widths, bias=False)
        with torch.no_grad():
            for lin, q in zip(linear_layers(net), self.layers):
                lin.weight.copy_(torch.from_numpy(q.weight()))
                if lin.bias is not None:
                    lin.bias.copy_(torch.from_numpy(q.bias()))
        return net


def _as_weights(model_or_weights: Any) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """(weights, biases) as float32 numpy arrays from a module or a list of layers."""
    if isinstance(model_or_weights, nn.Module):
        if any(isinstance(m, nn.Conv2d) for m in model_or_weights.modules()):
            raise ParameterError("this code describes MLPs and prunebounds.zoo.ResNet networks; "
                                 f"a {type(model_or_weights).__name__} with convolutions has no "
                                 "code format (build it as a zoo ResNet)")
        layers = linear_layers(model_or_weights)
        if not layers:
            raise ParameterError("the model has no nn.Linear layers to encode; pass an MLP "
                                 "from prunebounds.models")
        if any(hasattr(layer, "weight_mask") for layer in layers):
            raise ParameterError("the model still carries pruning masks; make them "
                                 "permanent first (torch.nn.utils.prune.remove)")
        pairs = [(layer.weight, layer.bias) for layer in layers]
    else:
        items = list(model_or_weights)
        pairs = [it if isinstance(it, (tuple, list)) else (it, None) for it in items]
    weights = [np.asarray(torch.as_tensor(w).detach().cpu(), dtype=np.float32) for w, _ in pairs]
    check_chain([torch.from_numpy(w) for w in weights])
    biases = [None if b is None else np.asarray(torch.as_tensor(b).detach().cpu(),
                                                 dtype=np.float32) for _, b in pairs]
    if any(b is None for b in biases) and not all(b is None for b in biases):
        raise ParameterError("either every layer has a bias or none has")
    for i, (w, b) in enumerate(zip(weights, biases), start=1):
        if not np.all(np.isfinite(w)) or (b is not None and not np.all(np.isfinite(b))):
            raise ParameterError(f"layer {i} has non-finite weights or biases; only a "
                                 "trained, finite network can be encoded")
        if b is not None and b.shape != (w.shape[0],):
            raise ParameterError(f"layer {i}: bias has shape {b.shape}, expected ({w.shape[0]},)")
    return weights, biases


def _round_float(x, dtype: str) -> np.ndarray:
    """x rounded to the storage dtype, returned as float32 (exactly representable)."""
    return np.asarray(x, dtype=np.float16 if dtype == "float16" else np.float32).astype(np.float32)


def _quantise_biases(b: np.ndarray, bias_bits: int, dtype: str) -> tuple[np.ndarray, np.float32]:
    top = (1 << (bias_bits - 1)) - 1
    peak = float(np.abs(b).max()) if b.size else 0.0
    step = _round_float(peak / top, dtype)[()] if peak > 0 else np.float32(0.0)
    if step == 0 or not np.isfinite(step):
        return np.zeros(b.shape, dtype=np.int64), np.float32(0.0)
    levels = np.clip(np.rint(b.astype(np.float64) / float(step)), -top, top).astype(np.int64)
    return levels, np.float32(step)


def _kmeans_1d(v: np.ndarray, k: int, iters: int = 100) -> np.ndarray:
    """Lloyd's algorithm in one dimension from quantile starts; sorted centres.

    Deterministic: centres start at the (i + 1/2)/k quantiles of the values, points
    are assigned by the midpoints between sorted centres, an empty cluster keeps its
    centre. Stops when the assignment no longer changes.
    """
    v = np.sort(v.astype(np.float64))
    centres = np.quantile(v, (np.arange(k) + 0.5) / k)
    assign = None
    for _ in range(iters):
        centres = np.sort(centres)
        new = np.searchsorted((centres[:-1] + centres[1:]) / 2.0, v)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        sums = np.bincount(assign, weights=v, minlength=k)
        counts = np.bincount(assign, minlength=k)
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    return np.sort(centres)


def _nearest(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the nearest table entry (table sorted ascending)."""
    if len(table) == 1:
        return np.zeros(len(values), dtype=np.int64)
    return np.searchsorted((table[:-1].astype(np.float64) + table[1:]) / 2.0,
                           values.astype(np.float64)).astype(np.int64)


def _quantise_values(v: np.ndarray, spec: CodeSpec, layer: int):
    """(symbols, table, step) for the kept weights ``v`` of one layer."""
    k = 1 << spec.bits
    if spec.quantiser == "kmeans":
        if k > len(v):
            raise ParameterError(
                f"bits={spec.bits} asks for a codebook of {k} entries but layer {layer} "
                f"keeps only {len(v)} weights; use bits <= {max(1, len(v).bit_length() - 1)} "
                "or prune less")
        distinct = np.unique(v)
        centres = distinct if len(distinct) <= k else _kmeans_1d(v, k)
        table = np.unique(_round_float(centres, spec.float_dtype))
        symbols = _nearest(v, table)
        used = np.unique(symbols)
        if len(used) < len(table):  # drop entries nobody uses
            table = table[used]
            symbols = np.searchsorted(used, symbols)
        return symbols.astype(np.int64), table.astype(np.float32), None
    half = k // 2
    levels = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)]).astype(np.float64)
    peak = float(np.abs(v).max())
    best = None
    for f in np.linspace(0.25, 1.0, 76):
        step = float(_round_float(peak / half * f, spec.float_dtype))
        if step <= 0:
            continue
        table = (np.float32(step) * levels.astype(np.float32)).astype(np.float32)
        symbols = _uniform_symbols(v, step, half)
        err = float(np.sum((table[symbols].astype(np.float64) - v) ** 2))
        if best is None or err < best[0]:
            best = (err, step, table, symbols)
    if best is None:
        raise ParameterError(f"layer {layer}: weights too small for a {spec.float_dtype} "
                             "grid step; use float_dtype='float32'")
    _, step, table, symbols = best
    return symbols, table, np.float32(step)


def _uniform_symbols(v: np.ndarray, step: float, half: int) -> np.ndarray:
    q = np.rint(v.astype(np.float64) / step)
    q = np.where(q == 0, np.where(v < 0, -1.0, 1.0), q)
    q = np.clip(q, -half, half).astype(np.int64)
    return np.where(q < 0, q + half, q + half - 1)


def _remove_dead_units(weights: list[np.ndarray], biases: list[np.ndarray | None]) -> None:
    """Zero what cannot reach the output (in place); predictions are unchanged.

    Forward: a hidden unit with no incoming weight and bias <= 0 outputs ReLU(b) = 0,
    so its outgoing weights multiply zero. Backward: a hidden unit with no outgoing
    weight reaches nothing, so its incoming weights and bias are irrelevant.
    """
    L = len(weights)
    for l in range(L - 1):  # forward
        dead = ~(weights[l] != 0).any(axis=1)
        if biases[l] is not None:
            dead &= biases[l] <= 0
        weights[l + 1][:, dead] = 0.0
    for l in range(L - 2, -1, -1):  # backward
        dead = ~(weights[l + 1] != 0).any(axis=0)
        weights[l][dead, :] = 0.0
        if biases[l] is not None:
            biases[l][dead] = 0.0


def quantise_network(model_or_weights: Any, spec: CodeSpec | None = None) -> QuantisedNetwork:
    """The coded form of a pruned network: what :func:`encode` writes, exactly.

    Steps: biases onto their grid; units that cannot reach the output removed (see the
    module docstring); each layer's kept weights quantised by ``spec.quantiser``.

    Raises:
        ParameterError: if a layer has no weights left, or the k-means codebook has
            more entries than a layer has kept weights.
    """
    spec = CodeSpec() if spec is None else spec
    weights, biases = _as_weights(model_or_weights)
    for i, w in enumerate(weights, start=1):
        if not (w != 0).any():
            raise ParameterError(f"layer {i} has no weights left after pruning: the network "
                                 "computes a constant; prune less (a smaller d or a larger "
                                 "keep fraction)")
    weights = [w.copy() for w in weights]
    if biases[0] is None:
        _remove_dead_units(weights, list(biases))
        q_biases: list[tuple[np.ndarray, np.float32] | None] = [None] * len(weights)
    else:
        # dead units are found with provisionally quantised biases (a unit without
        # inputs is dead when its quantised bias is <= 0); the grid is then fitted to
        # the biases that remain, so that quantising twice changes nothing
        provisional = [_quantise_biases(b, spec.bias_bits, spec.float_dtype) for b in biases]
        _remove_dead_units(weights, [np.float32(s) * lv.astype(np.float32)
                                     for lv, s in provisional])
        lives = _live_biases([w != 0 for w in weights])
        q_biases = [_quantise_biases(np.where(live, b, np.float32(0)), spec.bias_bits,
                                     spec.float_dtype) for b, live in zip(biases, lives)]
    layers = []
    for i, (w, qb) in enumerate(zip(weights, q_biases), start=1):
        mask = w != 0
        if not mask.any():
            raise ParameterError(f"layer {i} has no weights left once the units that cannot "
                                 "reach the output are removed: the network computes a "
                                 "constant; prune less")
        symbols, table, step = _quantise_values(w[mask], spec, i)
        levels, bstep = (None, None) if qb is None else qb
        layers.append(QuantisedLayer(mask, symbols, table, levels, bstep, step))
    widths = (weights[0].shape[1],) + tuple(w.shape[0] for w in weights)
    return QuantisedNetwork(widths, tuple(layers), spec)


def quantise(model_or_weights: Any, spec: CodeSpec | None = None) -> nn.Module:
    """The network that ``encode(model_or_weights, spec)`` describes, as a module
    (a :class:`prunebounds.zoo.ResNet` for a ResNet, see :func:`quantise_resnet`)."""
    if isinstance(model_or_weights, ResNet):
        return quantise_resnet(model_or_weights, spec).to_module()
    return quantise_network(model_or_weights, spec).to_module()


# ------------------------------------------------------------------ position models
def _column_probabilities(mask: np.ndarray) -> np.ndarray:
    """P(keep) of every entry under the column model, given the rows above it."""
    above = np.cumsum(mask, axis=0) - mask
    rows = np.arange(mask.shape[0], dtype=np.float64)[:, None]
    return (above + _KT) / (rows + 2 * _KT)


def _encode_positions(w: _BitWriter, enc, mask: np.ndarray, model: str) -> None:
    bits = mask.reshape(-1).astype(np.int32)
    if model == "density":
        n_kept = int(bits.sum())
        w.natural(n_kept)
        if 0 < n_kept < bits.size:
            enc.encode(bits, _bernoulli(n_kept / bits.size))
    else:
        enc.encode(bits, _bernoulli(), _column_probabilities(mask).reshape(-1))


def _decode_positions(dec, shape: tuple[int, int], model: str, n_kept: int | None) -> np.ndarray:
    """Inverse of :func:`_encode_positions` (``n_kept`` read from the side info)."""
    n = shape[0] * shape[1]
    if model == "density":
        if n_kept == 0 or n_kept == n:
            return np.full(shape, n_kept == n)
        return np.asarray(dec.decode(_bernoulli(n_kept / n), n), dtype=bool).reshape(shape)
    mask = np.zeros(shape, dtype=bool)
    above = np.zeros(shape[1], dtype=np.float64)
    for i in range(shape[0]):
        p = (above + _KT) / (i + 2 * _KT)
        mask[i] = np.asarray(dec.decode(_bernoulli(), p), dtype=bool)
        above += mask[i]
    return mask


def _ideal_bits(mask: np.ndarray, model: str) -> float:
    """-log2 probability of the mask under a position model (what the coder approaches)."""
    if model == "density":
        n, k = mask.size, int(mask.sum())
        if k in (0, n):
            return 0.0
        p = k / n
        return -(k * math.log2(p) + (n - k) * math.log2(1 - p))
    p = _column_probabilities(mask)
    return float(-np.sum(np.where(mask, np.log2(p), np.log2(1 - p))))


# ------------------------------------------------------------------------ sketches
@dataclass
class SketchAttempt:
    """One sketch size k tried on one layer: whether basis pursuit returned Z exactly."""

    layer: int
    k: int
    exact: bool
    iterations: int
    seconds: float


def _sketch_matrices(shape: tuple[int, int], k: int, seed: int, layer: int):
    p1, p2 = shape
    k1, k2 = min(k, p1), min(k, p2)
    A = bipartite_adjacency(k1, p1, min(default_degree(p1), k1), seed=seed + 2 * layer)
    B = bipartite_adjacency(k2, p2, min(default_degree(p2), k2), seed=seed + 2 * layer + 1)
    return A, B


def _sketch_of(Z: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Y = A Z B^T, exactly: computed in float64 (BLAS) and rounded. Every partial sum
    is an integer far below 2^53 (|Y| <= deg_A deg_B sum |Z|), so float64 holds it
    exactly and the rounding only removes the representation."""
    bound = A.sum(axis=1).max(initial=0) * B.sum(axis=1).max(initial=0) * np.abs(Z).sum()
    if bound >= 2 ** 52:
        return (A.astype(np.int64) @ Z.astype(np.int64)) @ B.astype(np.int64).T
    Y = (A.astype(np.float64) @ Z.astype(np.float64)) @ B.astype(np.float64).T
    return np.rint(Y).astype(np.int64)


def _recover(Y: np.ndarray, A: np.ndarray, B: np.ndarray, max_iter: int):
    """Basis pursuit from the integer sketch, rounded; ``None`` unless it is consistent.

    The decoder's recovery: :func:`prunebounds.sketching.recover_first_order` in
    float64 on the CPU with one thread, rounded to integers, and accepted only if the
    rounded matrix reproduces Y exactly.
    """
    res = recover_first_order(Y.astype(np.float64), A, B, max_iter=max_iter,
                              device="cpu", dtype=torch.float64, threads=1)
    X = res.X.numpy() if isinstance(res.X, torch.Tensor) else np.asarray(res.X)
    if not np.all(np.isfinite(X)):
        return None, res
    Z = np.rint(X).astype(np.int64)
    return (Z if np.array_equal(_sketch_of(Z, A, B), Y) else None), res


def _try_sketch(Z: np.ndarray, k: int, spec: CodeSpec, layer: int,
                log: list[SketchAttempt]) -> np.ndarray | None:
    """The sketch Y of Z at size k if the decoder's recovery returns Z exactly, else None."""
    A, B = _sketch_matrices(Z.shape, k, spec.sketch_seed, layer)
    Y = _sketch_of(Z, A, B)
    start = time.perf_counter()
    Zr, res = _recover(Y, A, B, spec.sketch_max_iter)
    exact = Zr is not None and np.array_equal(Zr, Z)
    log.append(SketchAttempt(layer, k, exact, res.iterations, time.perf_counter() - start))
    return Y if exact else None


def first_sketch_size(nnz: int) -> int:
    """k_0 = max(2, ceil(sqrt(2 nnz))): the smallest sketch size the encoder tries.

    A k x k sketch of a matrix with nnz non-zeros has k^2 numbers; fewer than 2 nnz
    numbers cannot in general determine nnz unknown positions and nnz unknown values.
    """
    nnz = check_int("nnz (non-zeros)", nnz, minimum=0)
    return max(2, math.ceil(math.sqrt(2 * nnz)))


def sketch_bits_at(Z: np.ndarray, k: int, spec: CodeSpec | None = None,
                   layer: int = 1) -> int:
    """Bits of the coded sketch Y = A Z B^T of the integer matrix Z at size k, as the
    sketch segment would hold it (range, histogram, entropy-coded entries), without
    running the recovery: what the sketch would cost *if* basis pursuit returned Z
    exactly at this size. At k = :func:`first_sketch_size` it is the length of the
    sketch at the smallest size the encoder tries."""
    spec = CodeSpec() if spec is None else spec
    Z = np.asarray(Z, dtype=np.int64)
    if Z.ndim != 2:
        raise ParameterError(f"Z must be a matrix, got shape {Z.shape}")
    k = check_int("k (sketch size)", k, minimum=1)
    A, B = _sketch_matrices(Z.shape, k, spec.sketch_seed, check_int("layer", layer, minimum=1))
    Y = _sketch_of(Z, A, B)
    return _stream_bits(lambda w, enc: _encode_ranged(w, enc, Y.reshape(-1)))


def _find_sketch(Z: np.ndarray, spec: CodeSpec, layer: int,
                 log: list[SketchAttempt]) -> tuple[int, np.ndarray]:
    """The smallest sketch size k that recovers Z exactly, searched on a geometric grid.

    Grid k_j = ceil(k_0 g^j), g = ``spec.sketch_growth``, from k_0 = ceil(sqrt(2 nnz))
    (fewer than 2 nnz numbers cannot determine nnz unknown positions and values in
    general) up to max(p1, p2). Doubling steps find a k that works, then bisection over the grid
    between the last failure and the first success (recovery is assumed monotone in
    k between them; every accepted k was verified).
    """
    p1, p2 = Z.shape
    k0, k_max = first_sketch_size(int((Z != 0).sum())), max(p1, p2)
    grid: list[int] = []
    k = float(k0)
    while not grid or grid[-1] < k_max:
        grid.append(min(k_max, max(math.ceil(k), grid[-1] + 1 if grid else 1)))
        k *= spec.sketch_growth
    found: dict[int, np.ndarray | None] = {}

    def ok(j: int) -> bool:
        if j not in found:
            found[j] = _try_sketch(Z, grid[j], spec, layer, log)
        return found[j] is not None

    lo, step, hi = -1, 1, None  # grid[lo] failed (or none tried), grid[hi] works
    j = 0
    while True:
        if ok(j):
            hi = j
            break
        lo = j
        if j == len(grid) - 1:
            raise ParameterError(
                f"sketch recovery failed for layer {layer} at every sketch size up to "
                f"k = {k_max}: the sketch code is invalid for this layer; code its "
                "positions instead (positions='auto', or leave the layer out of "
                "sketch_layers), or raise sketch_max_iter")
        j = min(len(grid) - 1, j + step)
        step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return grid[hi], found[hi]


# --------------------------------------------------- segments shared by every network kind
def _header_writer(kind: str) -> _BitWriter:
    """A header's start: the magic bytes, the format version and the network kind."""
    wh = _BitWriter()
    for byte in MAGIC:
        wh.write(byte, 8)
    wh.gamma(FORMAT_VERSION)
    wh.natural(_NETWORK_KINDS.index(kind))
    return wh


def _codebook_segment(layers: Sequence[Any], spec: CodeSpec) -> bytes:
    """Each layer's codebook: its k-means table (size, then floats) or its grid step."""
    wc = _BitWriter()
    for q in layers:
        if spec.quantiser == "kmeans":
            wc.gamma(len(q.table))
            for t in q.table:
                wc.float(t, spec.float_dtype)
        else:
            wc.float(q.step, spec.float_dtype)
    return wc.to_bytes()


def _read_codebook(segment: bytes, n_layers: int, h: Any) -> tuple[list, list]:
    """Inverse of :func:`_codebook_segment`: each layer's value table and step (None for
    k-means); ``h`` is a header with ``bits``, ``quantiser`` and ``float_dtype``."""
    rc = _BitReader(segment)
    half = (1 << h.bits) // 2
    grid = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)]).astype(np.float32)
    tables, steps = [], []
    for _ in range(n_layers):
        if h.quantiser == "kmeans":
            n = rc.gamma()
            tables.append(np.array([rc.float(h.float_dtype) for _ in range(n)], dtype=np.float32))
            steps.append(None)
        else:
            step = np.float32(rc.float(h.float_dtype))
            tables.append((step * grid).astype(np.float32))
            steps.append(step)
    return tables, steps


def _values_segment(layers: Sequence[Any]) -> bytes:
    """The symbols of ``layers``: each layer's histogram, then its symbols range-coded under
    it (nothing but the histogram when the table has one value)."""
    wv, ev = _BitWriter(), constriction.stream.queue.RangeEncoder()
    for q in layers:
        counts = np.bincount(q.symbols, minlength=len(q.table))
        _write_histogram(wv, counts)
        if len(q.table) > 1:
            ev.encode(q.symbols.astype(np.int32), _categorical(counts))
    return wv.to_bytes() + _words_to_bytes(ev.get_compressed())


# ------------------------------------------------------------------- encode/decode
@dataclass(frozen=True)
class CodeLength:
    """Lengths in bits of the segments of one code (read from the bytes themselves)."""

    header: int
    codebook: int
    positions: int
    values: int
    biases: int
    sketch: int
    layer_positions: tuple[str, ...] = ()
    sketch_k: tuple[int | None, ...] = ()

    @property
    def total(self) -> int:
        return self.header + self.codebook + self.positions + self.values + self.biases + \
            self.sketch

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in SEGMENTS} | {"total": self.total}


def _unit_sets(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The units each layer boundary keeps: S_0 the inputs some kept weight reads, S_l
    (hidden) the units with a kept incoming or outgoing weight, S_L the outputs some
    kept weight writes. Every kept weight of layer l lies in the block S_l x S_(l-1)."""
    sets = [masks[0].any(axis=0)]
    for a, b in zip(masks[:-1], masks[1:]):
        sets.append(a.any(axis=1) | b.any(axis=0))
    sets.append(masks[-1].any(axis=1))
    return sets


def _live_biases(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per layer, the units whose bias the code stores: the hidden units in the unit
    sets (the others have no outgoing weight, and :func:`quantise_network` zeroed
    their biases) and every output unit."""
    sets = _unit_sets(masks)
    return sets[1:-1] + [np.ones(len(sets[-1]), dtype=bool)]


def _blocks(masks: Sequence[np.ndarray], use_units: bool) -> list[np.ndarray]:
    if not use_units:
        return list(masks)
    sets = _unit_sets(masks)
    return [m[np.ix_(sets[l + 1], sets[l])] for l, m in enumerate(masks)]


def _sketched(spec: CodeSpec, n_layers: int) -> list[bool]:
    if not spec.positions.startswith("sketch"):
        return [False] * n_layers
    if spec.sketch_layers is None:
        return [True] * n_layers
    bad = [i for i in spec.sketch_layers if not 1 <= i <= n_layers]
    if bad:
        raise ParameterError(f"sketch_layers {bad} do not exist: the network has layers "
                             f"1..{n_layers}")
    return [i + 1 in spec.sketch_layers for i in range(n_layers)]


def _choose_positions(net: QuantisedNetwork, spec: CodeSpec) -> list[str]:
    """Per layer the position model: the requested one (or the sketch for the layers in
    ``sketch_layers``); for ``"auto"`` and for layers left out of the sketch, the one
    with the shorter ideal length on the layer's block (unit sets) or whole mask."""
    sketched = _sketched(spec, len(net.layers))
    if spec.positions in ("density", "column"):
        return [spec.positions] * len(net.layers)
    use_units = spec.unit_sets and not any(sketched)
    blocks = _blocks([q.mask for q in net.layers], use_units)
    return [spec.positions if sk else min(("density", "column"),
                                          key=lambda m: _ideal_bits(b, m))
            for b, sk in zip(blocks, sketched)]


def _encode_all_positions(net: QuantisedNetwork, models: list[str], use_units: bool) -> bytes:
    """The positions segment: unit sets (optional), then each layer's block."""
    w, enc = _BitWriter(), constriction.stream.queue.RangeEncoder()
    masks = [q.mask for q in net.layers]
    if use_units:
        for unit_set in _unit_sets(masks):
            _encode_positions(w, enc, unit_set[None, :], "density")
    for block, model in zip(_blocks(masks, use_units), models):
        if model in ("density", "column"):
            _encode_positions(w, enc, block, model)
    return w.to_bytes() + _words_to_bytes(enc.get_compressed())


def _decode_all_positions(segment: bytes, shapes: list[tuple[int, int]], models: list[str],
                          use_units: bool) -> list[np.ndarray | None]:
    """Inverse of :func:`_encode_all_positions` (``None`` for sketched layers)."""
    r = _BitReader(segment)
    widths = [shapes[0][1]] + [s[0] for s in shapes]
    # side info first (it precedes the words): counts of the unit sets, then of the blocks
    set_counts = [r.natural() for _ in widths] if use_units else []
    block_counts = [r.natural() if m == "density" else None for m in models]
    dec = _split(segment, r)
    if use_units:
        sets = [_decode_positions(dec, (1, n), "density", k)[0]
                for n, k in zip(widths, set_counts)]
    else:
        sets = [np.ones(n, dtype=bool) for n in widths]
    masks: list[np.ndarray | None] = []
    for l, (shape, model, k) in enumerate(zip(shapes, models, block_counts)):
        if model not in ("density", "column"):
            masks.append(None)
            continue
        rows, cols = sets[l + 1], sets[l]
        block = _decode_positions(dec, (int(rows.sum()), int(cols.sum())), model, k)
        mask = np.zeros(shape, dtype=bool)
        mask[np.ix_(rows, cols)] = block
        masks.append(mask)
    return masks


def encode(model_or_weights: Any, spec: CodeSpec | None = None, *,
           sketch_log: list[SketchAttempt] | None = None) -> bytes:
    """The code of the quantised network (see the module docstring for the format).

    ``model_or_weights``: an MLP (pruned weights are exact zeros) or a list of weight
    matrices / (weight, bias) pairs (out x in). With a sketch position model every
    size k tried is appended to ``sketch_log``.

    Raises:
        ParameterError: bad spec or network (see :func:`quantise_network`), or a
            sketch that no size recovers exactly.
    """
    spec = CodeSpec() if spec is None else spec
    if isinstance(model_or_weights, ResNet):
        return _encode_resnet(model_or_weights, spec)
    net = quantise_network(model_or_weights, spec)
    log = [] if sketch_log is None else sketch_log
    models = _choose_positions(net, spec)
    has_bias = net.layers[0].bias_levels is not None

    codebook = _codebook_segment(net.layers, spec)

    # positions and values (skipped for the layers a sketch describes)
    use_units = spec.unit_sets and not any(m.startswith("sketch") for m in models)
    positions = _encode_all_positions(net, models, use_units)
    values = _values_segment([q for q, m in zip(net.layers, models) if m != "sketch-symbols"])

    # biases
    biases = b""
    if has_bias:
        wb, eb = _BitWriter(), constriction.stream.queue.RangeEncoder()
        for q, live in zip(net.layers, _live_biases([q.mask for q in net.layers])):
            wb.float(q.bias_step, spec.float_dtype)
            _encode_ranged(wb, eb, q.bias_levels[live])
        biases = wb.to_bytes() + _words_to_bytes(eb.get_compressed())

    # sketches
    ks: list[int] = []
    sketch = b""
    if any(m.startswith("sketch") for m in models):
        ws, es = _BitWriter(), constriction.stream.queue.RangeEncoder()
        for i, (q, model) in enumerate(zip(net.layers, models), start=1):
            if not model.startswith("sketch"):
                continue
            Z = q.mask.astype(np.int64) if model == "sketch-mask" else q.ranks()
            known = dict(spec.sketch_k or ())
            if i in known:
                k, Y = known[i], _try_sketch(Z, known[i], spec, i, log)
                if Y is None:
                    raise ParameterError(f"sketch recovery failed for layer {i} at the given "
                                         f"size k = {k}: drop it from sketch_k to search")
            else:
                k, Y = _find_sketch(Z, spec, i, log)
            ks.append(k)
            _encode_ranged(ws, es, Y.reshape(-1))
        sketch = ws.to_bytes() + _words_to_bytes(es.get_compressed())

    # header
    wh = _header_writer("mlp")
    wh.gamma(len(net.layers))
    wh.gamma(net.widths[0])
    for q in net.layers:
        wh.natural(_LAYER_KINDS.index("linear"))
        wh.gamma(q.shape[0])
    wh.gamma(spec.bits)
    wh.natural(QUANTISERS.index(spec.quantiser))
    wh.natural(FLOAT_DTYPES.index(spec.float_dtype))
    wh.natural(spec.bias_bits if has_bias else 0)
    for model in models:
        wh.natural(_LAYER_POSITIONS.index(model))
    wh.natural(int(use_units))
    if ks:
        wh.natural(spec.sketch_seed)
        wh.gamma(spec.sketch_max_iter)
        for k in ks:
            wh.gamma(k)
    for seg in (codebook, positions, values, biases, sketch):
        wh.natural(len(seg))
    return wh.to_bytes() + codebook + positions + values + biases + sketch


@dataclass
class _Header:
    widths: tuple[int, ...]
    bits: int
    quantiser: str
    float_dtype: str
    bias_bits: int
    models: list[str]
    unit_sets: bool
    sketch_seed: int
    sketch_max_iter: int
    ks: list[int]
    lengths: list[int]  # header, codebook, positions, values, biases, sketch (bytes)


def _read_header(code: bytes) -> _Header:
    if not isinstance(code, (bytes, bytearray)):
        raise ParameterError("decode takes the bytes written by encode, got "
                             f"{type(code).__name__}")
    r = _BitReader(bytes(code))
    if bytes([r.read(8), r.read(8)]) != MAGIC:
        raise ParameterError("not a prunebounds code (the magic bytes 'PB' are missing)")
    version = r.gamma()
    if version != FORMAT_VERSION:
        raise ParameterError(f"code format version {version} is not supported (this is "
                             f"version {FORMAT_VERSION}); re-encode with this package")
    kind = r.natural()
    if kind >= len(_NETWORK_KINDS):
        raise ParameterError(f"unknown network kind {kind} in the header")
    if _NETWORK_KINDS[kind] == "resnet":
        return _read_resnet_header(r, code)
    n_layers = r.gamma()
    widths = [r.gamma()]
    for _ in range(n_layers):
        if r.natural() != 0:
            raise ParameterError("this decoder reads dense linear layers only")
        widths.append(r.gamma())
    bits = r.gamma()
    quantiser = QUANTISERS[r.natural()]
    float_dtype = FLOAT_DTYPES[r.natural()]
    bias_bits = r.natural()
    models = [_LAYER_POSITIONS[r.natural()] for _ in range(n_layers)]
    unit_sets = bool(r.natural())
    n_sketch = sum(m.startswith("sketch") for m in models)
    seed, max_iter, ks = 0, 1, []
    if n_sketch:
        seed = r.natural()
        max_iter = r.gamma()
        ks = [r.gamma() for _ in range(n_sketch)]
    lengths = [r.natural() for _ in range(5)]
    header_len = r.byte_offset()
    if header_len + sum(lengths) != len(code):
        raise ParameterError(f"the code has {len(code)} bytes but its header announces "
                             f"{header_len + sum(lengths)}: it is truncated or corrupt")
    return _Header(tuple(widths), bits, quantiser, float_dtype, bias_bits, models, unit_sets, seed,
                   max_iter, ks, [header_len] + lengths)


def _segments(code: bytes, h: _Header) -> list[bytes]:
    out, start = [], 0
    for n in h.lengths:
        out.append(bytes(code[start:start + n]))
        start += n
    return out


def _split(segment: bytes, reader: _BitReader) -> Any:
    """The range decoder over the words that follow the bit-packed side info."""
    return constriction.stream.queue.RangeDecoder(_bytes_to_words(segment[reader.byte_offset():]))


def decode_network(code: bytes) -> "QuantisedNetwork | QuantisedResNet":
    """The :class:`QuantisedNetwork` (or :class:`QuantisedResNet`) a code describes
    (inverse of :func:`encode`)."""
    h = _read_header(code)
    if isinstance(h, _ResNetHeader):
        return _decode_resnet(code, h)
    _, seg_c, seg_p, seg_v, seg_b, seg_s = _segments(code, h)
    shapes = [(h.widths[i + 1], h.widths[i]) for i in range(len(h.widths) - 1)]
    spec = CodeSpec(bits=h.bits, quantiser=h.quantiser, float_dtype=h.float_dtype,
                    bias_bits=max(h.bias_bits, 2), sketch_seed=h.sketch_seed,
                    sketch_max_iter=h.sketch_max_iter, unit_sets=h.unit_sets,
                    positions=h.models[0] if len(set(h.models)) == 1 else "auto")
    tables, steps = _read_codebook(seg_c, len(shapes), h)
    # sketches first: they may carry masks and symbols
    sketched: dict[int, np.ndarray] = {}
    if seg_s:
        rs = _BitReader(seg_s)
        side = []
        for i, (shape, model) in enumerate(zip(shapes, h.models), start=1):
            if model.startswith("sketch"):
                k = h.ks[len(side)]
                A, B = _sketch_matrices(shape, k, h.sketch_seed, i)
                n = A.shape[0] * B.shape[0]
                side.append((i, A, B, n, *_decode_ranged(rs, n)))
        ds = _split(seg_s, rs)
        for i, A, B, n, lo, counts in side:
            Y = _decode_ranged_symbols(ds, lo, counts, n).reshape(A.shape[0], B.shape[0])
            Z, _ = _recover(Y, A, B, h.sketch_max_iter)
            if Z is None:
                raise ParameterError(f"sketch recovery failed while decoding layer {i}: this "
                                     "code is invalid (the encoder should have rejected it)")
            sketched[i] = Z
    # positions
    masks = _decode_all_positions(seg_p, shapes, h.models, h.unit_sets)
    for i in sketched:
        masks[i - 1] = sketched[i] != 0
    # values
    rv = _BitReader(seg_v)
    hists = []
    for i, (mask, model, table) in enumerate(zip(masks, h.models, tables), start=1):
        hists.append(None if model == "sketch-symbols" else
                     _read_histogram(rv, len(table), int(mask.sum())))
    dv = _split(seg_v, rv)
    symbols = []
    for i, (mask, model, table, counts) in enumerate(zip(masks, h.models, tables, hists), start=1):
        n = int(mask.sum())
        if model == "sketch-symbols":
            symbols.append(_symbols_from_ranks(sketched[i], table))
        elif len(table) == 1:
            symbols.append(np.zeros(n, dtype=np.int64))
        else:
            symbols.append(np.asarray(dv.decode(_categorical(counts), n), dtype=np.int64))
    # biases
    bias_levels: list[np.ndarray | None] = [None] * len(shapes)
    bias_steps: list[np.float32 | None] = [None] * len(shapes)
    if h.bias_bits:
        rb = _BitReader(seg_b)
        side = []
        lives = _live_biases(masks)
        for live in lives:
            step = rb.float(h.float_dtype)
            side.append((step, *_decode_ranged(rb, int(live.sum()))))
        db = _split(seg_b, rb)
        for j, ((step, lo, counts), live) in enumerate(zip(side, lives)):
            bias_levels[j] = np.zeros(len(live), dtype=np.int64)
            bias_levels[j][live] = _decode_ranged_symbols(db, lo, counts, int(live.sum()))
            bias_steps[j] = np.float32(step)
    layers = tuple(QuantisedLayer(m, s, t, bl, bs, st) for m, s, t, bl, bs, st in
                   zip(masks, symbols, tables, bias_levels, bias_steps, steps))
    return QuantisedNetwork(h.widths, layers, spec)


def decode(code: bytes) -> nn.Module:
    """The network a code describes, as a :class:`prunebounds.models.MLP` (or a
    :class:`prunebounds.zoo.ResNet` for a residual-CNN code)."""
    return decode_network(code).to_module()


def code_length_breakdown(code: bytes) -> CodeLength:
    """Bits of each segment (header, codebook, positions, values, biases, sketch).

    Read from the byte lengths the header records and checked against the code's
    total length, so the parts add up to exactly ``8 * len(code)``.
    """
    h = _read_header(code)
    n = [8 * x for x in h.lengths]
    ks: list[int | None] = []
    it = iter(h.ks)
    for m in h.models:
        ks.append(next(it) if m.startswith("sketch") else None)
    return CodeLength(*n, layer_positions=tuple(h.models), sketch_k=tuple(ks))


# ------------------------------------------------------------------- checks and tools
@torch.no_grad()
def predictions(model: nn.Module, X: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """Argmax predictions of ``model`` on ``X`` (CPU, batches, eval mode)."""
    model = model.eval()
    return torch.cat([model(X[i:i + batch_size]).argmax(1) for i in range(0, len(X), batch_size)])


def verify_roundtrip(model_or_weights: Any, spec: CodeSpec, X: torch.Tensor,
                     code: bytes | None = None) -> bytes:
    """Encode (unless ``code`` is given), decode, and check against :func:`quantise`.

    Returns the code. The decoded network must have the quantised network's weights
    and biases bit for bit and the same argmax prediction on every row of ``X``.

    Raises:
        ParameterError: naming the first difference (a decoded network whose
            predictions differ from the quantised network's cannot be certified).
    """
    code = encode(model_or_weights, spec) if code is None else code
    reference = quantise(model_or_weights, spec)
    decoded = decode(code)
    for i, (a, b) in enumerate(zip(coded_layers(reference), coded_layers(decoded)), start=1):
        same_w = torch.equal(a.weight, b.weight)
        same_b = (a.bias is None and b.bias is None) or torch.equal(a.bias, b.bias)
        if not (same_w and same_b):
            raise ParameterError(
                f"the decoded network differs from the quantised one in layer {i} "
                f"({'weights' if not same_w else 'biases'}): the code does not describe the "
                "network; encode the network again with the same spec")
    pa, pb = predictions(reference, X), predictions(decoded, X)
    if not torch.equal(pa, pb):
        raise ParameterError(
            f"the decoded network predicts differently on {int((pa != pb).sum())} of "
            f"{len(X)} inputs: the code does not describe the network; encode the "
            "network again with the same spec")
    return code


@dataclass
class LayerCode:
    """Real code lengths (bits) of one layer's parts, each coded as its own stream.

    Attributes:
        shape: out x in.
        n_kept: kept weights.
        log2_binomial: log2 C(out * in, n_kept), the Lemma D.1 count of the positions.
        positions: bits of the layer's mask alone (the shorter of density and column,
            no unit sets), as written by the coder.
        values: bits of its symbols (histogram included).
        sketch: for each sketch model tried (``"sketch-mask"`` replaces the positions,
            ``"sketch-symbols"`` replaces positions and values) a dict with the sketch
            size ``k`` and the ``bits`` of Y (or ``None`` when no size recovered Z
            exactly: then that code is invalid), and the ``attempts`` made.
    """

    shape: tuple[int, int]
    n_kept: int
    log2_binomial: float
    positions: int
    values: int
    sketch: dict[str, dict] = field(default_factory=dict)


def _stream_bits(write) -> int:
    w, enc = _BitWriter(), constriction.stream.queue.RangeEncoder()
    write(w, enc)
    return 8 * len(w.to_bytes() + _words_to_bytes(enc.get_compressed()))


def layer_code_lengths(model_or_weights: Any, spec: CodeSpec | None = None,
                       sketches: Sequence[str] = (),
                       layers: Sequence[int] | None = None) -> list[LayerCode]:
    """Per layer, the real lengths of its position, value and (optionally) sketch codes.

    Answers "does the sketch shorten the code?" layer by layer: ``positions + values``
    against ``sketch["sketch-symbols"]["bits"]``, or ``positions`` against
    ``sketch["sketch-mask"]["bits"]``. Each part is coded as a separate stream, so each
    carries its own coder overhead (tens of bits). Sketch searches can take minutes on
    large layers (one basis-pursuit solve per size tried). ``layers`` (1-based) limits
    the sketch searches to those layers (``None``: every layer); the others get an
    empty ``sketch`` dict. The sketch matrices of layer i are those the encoder uses
    for layer i (:func:`encode` with ``sketch_layers``).
    """
    from scipy.special import gammaln

    spec = CodeSpec() if spec is None else spec
    for mode in sketches:
        check_choice("sketch model", mode, ("sketch-mask", "sketch-symbols"))
    net = quantise_network(model_or_weights, spec)
    out = []
    for i, q in enumerate(net.layers, start=1):
        n, k = q.mask.size, q.n_kept
        model = min(("density", "column"), key=lambda m: _ideal_bits(q.mask, m))
        counts = np.bincount(q.symbols, minlength=len(q.table))

        def values(w, enc, q=q, counts=counts):
            _write_histogram(w, counts)
            if len(q.table) > 1:
                enc.encode(q.symbols.astype(np.int32), _categorical(counts))

        entry = LayerCode(
            q.shape, k,
            float((gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)) / math.log(2)),
            _stream_bits(lambda w, enc: _encode_positions(w, enc, q.mask, model)),
            _stream_bits(values))
        for mode in (sketches if layers is None or i in layers else ()):
            Z = q.mask.astype(np.int64) if mode == "sketch-mask" else q.ranks()
            log: list[SketchAttempt] = []
            try:
                size, Y = _find_sketch(Z, spec, i, log)
                bits = _stream_bits(lambda w, enc: _encode_ranged(w, enc, Y.reshape(-1)))
            except ParameterError:
                size, bits = None, None
            entry.sketch[mode] = {"k": size, "bits": bits, "attempts": log}
        out.append(entry)
    return out


# ------------------------------------------------------------------------ fine-tuning
class _SharedWeights(nn.Module):
    """An MLP whose kept weights are tied to per-layer codebook entries (trainable)."""

    def __init__(self, net: QuantisedNetwork, biases: list[np.ndarray | None]):
        super().__init__()
        self.tables = nn.ParameterList(
            [nn.Parameter(torch.from_numpy(q.table.copy())) for q in net.layers])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.from_numpy(b.copy())) for b in biases])
        self.index = [torch.from_numpy(np.flatnonzero(q.mask.reshape(-1))) for q in net.layers]
        self.symbols = [torch.from_numpy(q.symbols) for q in net.layers]
        self.shapes = [q.shape for q in net.layers]

    def to_device(self, device: torch.device) -> "_SharedWeights":
        """Parameters and index tensors on ``device``."""
        self.to(device)
        self.index = [i.to(device) for i in self.index]
        self.symbols = [s.to(device) for s in self.symbols]
        return self

    def weights(self) -> list[torch.Tensor]:
        out = []
        for t, idx, sym, shape in zip(self.tables, self.index, self.symbols, self.shapes):
            w = torch.zeros(shape[0] * shape[1], dtype=t.dtype, device=t.device)
            out.append(w.index_put((idx,), t[sym]).view(shape))
        return out

    def forward(self, x):
        ws = self.weights()
        for i, (w, b) in enumerate(zip(ws, self.biases)):
            x = nn.functional.linear(x, w, b)
            if i < len(ws) - 1:
                x = torch.relu(x)
        return x


def finetune_codebook(model: nn.Module, spec: CodeSpec, X: torch.Tensor, y: torch.Tensor, *,
                      epochs: int = 1, lr: float = 1e-3, batch_size: int = 256,
                      seed: int = 0, device: str | torch.device | None = "cpu") -> nn.Module:
    """Train the codebook entries and biases of the quantised network (k-means only).

    Han, Mao & Dally (2016), "trained quantisation": the mask and each kept weight's
    codebook index stay fixed, the shared values move (the gradient of an entry is the
    sum of the gradients of the weights that use it), biases are trained in float and
    put back on their grid when the result is encoded. Adam, cross-entropy, shuffled
    batches from a (CPU) generator seeded with ``seed``; the training runs on ``device``
    (:func:`prunebounds.devices.resolve_device`; default the CPU), the result is on the
    CPU. Legitimate before certifying: the
    bound holds for every coded network at once.

    Returns a plain MLP whose kept weights take the trained codebook values exactly
    (so :func:`quantise` keeps them, up to the storage rounding of the entries).
    """
    if spec.quantiser != "kmeans":
        raise ParameterError("finetune_codebook trains a k-means codebook; use "
                             "quantiser='kmeans'")
    epochs = check_int("epochs", epochs, minimum=0)
    net = quantise_network(model, spec)
    _, biases = _as_weights(model)
    if any(b is None for b in biases):
        raise ParameterError("finetune_codebook needs a network with biases")
    # start from the quantised biases (dead units keep zero)
    start_biases = [q.bias() for q in net.layers]
    dev = resolve_device(device)
    shared = _SharedWeights(net, start_biases).to_device(dev)
    X, y = X.to(dev), y.to(dev)
    opt = torch.optim.Adam(shared.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).to(dev).split(batch_size):
            loss = nn.functional.cross_entropy(shared(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    out = copy.deepcopy(net.to_module())
    with torch.no_grad():
        for lin, w, b, q in zip(linear_layers(out), shared.weights(), shared.biases, net.layers):
            lin.weight.copy_(w.detach().cpu())
            b = b.detach().cpu()
            # a dead unit's bias stays zero (it reaches nothing)
            lin.bias.copy_(torch.where(torch.from_numpy(q.mask.any(axis=1)) |
                                       torch.from_numpy(q.bias() != 0), b, torch.zeros_like(b)))
    return out


# ------------------------------------------------------------- the residual CNN (kind 1)
@dataclass(frozen=True)
class ResNetArch:
    """What the decoder needs to rebuild a :class:`prunebounds.zoo.ResNet`: the
    arguments of its constructor, ``ResNet((features, classes), channels, blocks)``."""

    features: int
    classes: int
    channels: tuple[int, ...]
    blocks: int

    def build(self) -> ResNet:
        """A fresh ResNet of this shape (its weights are overwritten by the decoder;
        torch's global generator is left as it was)."""
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return ResNet((self.features, self.classes), self.channels, self.blocks)


def coded_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose weights a code stores, in module (forward) order: every
    ``nn.Conv2d`` and ``nn.Linear``. For an MLP these are its linear layers
    (:func:`prunebounds.models.linear_layers`)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def resnet_arch(model: ResNet) -> ResNetArch:
    """The constructor arguments of ``model``, read from its layers and checked.

    Raises:
        ParameterError: not a zoo ResNet, a normalisation layer inside (fold it into
            the convolution first), or layers that the rebuilt network does not have.
    """
    if not isinstance(model, ResNet):
        raise ParameterError(f"resnet_arch takes a prunebounds.zoo.ResNet, got "
                             f"{type(model).__name__}")
    if any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm))
           for m in model.modules()):
        raise ParameterError("the network has a normalisation layer: fold batch normalisation "
                             "into the convolution before it (the zoo ResNet has none)")
    stems = [m for m in model.stages if not hasattr(m, "conv1")]
    channels = tuple(int(m.conv.out_channels) for m in stems)
    blocks = (len(model.stages) - len(stems)) // max(len(stems), 1)
    arch = ResNetArch(int(model.widths[0]), int(model.widths[-1]), channels, int(blocks))
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if {k: tuple(v.shape) for k, v in arch.build().state_dict().items()} != mine:
        raise ParameterError("the ResNet's layers are not those of the zoo constructor "
                             f"ResNet({(arch.features, arch.classes)}, {channels}, {blocks}); "
                             "only networks built by prunebounds.zoo can be coded")
    return arch


@dataclass(frozen=True)
class QuantisedResNet:
    """A residual CNN in the coded form: its constructor arguments and one
    :class:`QuantisedLayer` per coded layer (:func:`coded_layers`). A convolution's
    kernel (out x in x kh x kw) is stored unfolded, out x (in kh kw), as
    :func:`prunebounds.beyond.weight_matrices_all` reads it; only the head has biases."""

    arch: ResNetArch
    layers: tuple[QuantisedLayer, ...]
    spec: CodeSpec

    @property
    def n_kept(self) -> int:
        return sum(layer.n_kept for layer in self.layers)

    def to_module(self) -> ResNet:
        """The network as a :class:`prunebounds.zoo.ResNet` (float32, CPU, eval mode)."""
        net = self.arch.build()
        with torch.no_grad():
            for module, q in zip(coded_layers(net), self.layers):
                module.weight.copy_(torch.from_numpy(q.weight()).reshape(module.weight.shape))
                if module.bias is not None:
                    module.bias.copy_(torch.from_numpy(q.bias()))
        return net.eval()


def quantise_resnet(model: ResNet, spec: CodeSpec | None = None) -> QuantisedResNet:
    """The coded form of a pruned zoo ResNet: what :func:`encode` writes for it.

    Every coded layer (convolutions unfolded to out x (in kh kw), then the head) has its
    kept weights quantised by ``spec.quantiser`` exactly as an MLP layer is
    (:func:`_quantise_values`), and the head's biases go on the grid of ``bias_bits``.
    No unit is removed: the skip connections carry a channel past a convolution whose
    weights are all pruned, so such a channel is not dead.

    Raises:
        ParameterError: not a zoo ResNet, masks still attached, non-finite weights, a
            layer with no weights left, or a codebook larger than a layer's kept weights.
    """
    spec = CodeSpec() if spec is None else spec
    arch = resnet_arch(model)
    layers = []
    for i, module in enumerate(coded_layers(model), start=1):
        if hasattr(module, "weight_mask"):
            raise ParameterError("the model still carries pruning masks; make them "
                                 "permanent first (torch.nn.utils.prune.remove)")
        W = module.weight.detach().cpu().reshape(module.weight.shape[0], -1).numpy()
        W = W.astype(np.float32)
        b = None if module.bias is None else module.bias.detach().cpu().numpy().astype(np.float32)
        if not np.all(np.isfinite(W)) or (b is not None and not np.all(np.isfinite(b))):
            raise ParameterError(f"layer {i} has non-finite weights or biases; only a "
                                 "trained, finite network can be encoded")
        mask = W != 0
        if not mask.any():
            raise ParameterError(f"layer {i} of the ResNet has no weights left after pruning; "
                                 "prune less (a smaller d or a larger keep fraction)")
        symbols, table, step = _quantise_values(W[mask], spec, i)
        levels, bstep = (None, None) if b is None else _quantise_biases(
            b, spec.bias_bits, spec.float_dtype)
        layers.append(QuantisedLayer(mask, symbols, table, levels, bstep, step))
    return QuantisedResNet(arch, tuple(layers), spec)


@dataclass
class _ResNetHeader:
    arch: ResNetArch
    bits: int
    quantiser: str
    float_dtype: str
    bias_bits: int
    models: list[str]
    lengths: list[int]  # header, codebook, positions, values, biases, sketch (bytes)
    ks: list[int] = field(default_factory=list)


def _resnet_models(net: QuantisedResNet, spec: CodeSpec) -> list[str]:
    """Per layer the position model: the requested one, or for ``"auto"`` the one with
    the shorter ideal length on the layer's whole (unfolded) mask."""
    if spec.positions in ("density", "column"):
        return [spec.positions] * len(net.layers)
    if spec.positions != "auto":
        raise ParameterError(f"positions={spec.positions!r}: sketched positions are coded for "
                             "MLPs only; use positions='auto', 'density' or 'column'")
    return [min(("density", "column"), key=lambda m: _ideal_bits(q.mask, m)) for q in net.layers]


def _encode_resnet(model: ResNet, spec: CodeSpec) -> bytes:
    """The code of a quantised zoo ResNet (network kind 1, see :func:`encode`).

    Segments as for an MLP, without unit sets or sketches: codebook per layer; each
    layer's whole unfolded mask (density or column model); the symbols under each
    layer's histogram; the biases of the layers that have them (the head). The header
    after the network kind holds the constructor's arguments (features, classes, the
    stage channels, blocks per stage), b, quantiser, float format, ``bias_bits``, each
    layer's position model and the five segment lengths (the sketch segment is empty).
    """
    net = quantise_resnet(model, spec)
    models = _resnet_models(net, spec)
    wp, ep = _BitWriter(), constriction.stream.queue.RangeEncoder()
    for q, m in zip(net.layers, models):
        _encode_positions(wp, ep, q.mask, m)
    wb, eb = _BitWriter(), constriction.stream.queue.RangeEncoder()
    has_bias = [q.bias_levels is not None for q in net.layers]
    for q in net.layers:
        if q.bias_levels is not None:
            wb.float(q.bias_step, spec.float_dtype)
            _encode_ranged(wb, eb, q.bias_levels)
    segments = [_codebook_segment(net.layers, spec),
                wp.to_bytes() + _words_to_bytes(ep.get_compressed()),
                _values_segment(net.layers),
                wb.to_bytes() + _words_to_bytes(eb.get_compressed()) if any(has_bias) else b"",
                b""]
    wh = _header_writer("resnet")
    a = net.arch
    wh.gamma(a.features)
    wh.gamma(a.classes)
    wh.gamma(len(a.channels))
    for c in a.channels:
        wh.gamma(c)
    wh.natural(a.blocks)
    wh.gamma(spec.bits)
    wh.natural(QUANTISERS.index(spec.quantiser))
    wh.natural(FLOAT_DTYPES.index(spec.float_dtype))
    wh.natural(spec.bias_bits if any(has_bias) else 0)
    for m in models:
        wh.natural(_LAYER_POSITIONS.index(m))
    for seg in segments:
        wh.natural(len(seg))
    return wh.to_bytes() + b"".join(segments)


def _read_resnet_header(r: _BitReader, code: bytes) -> _ResNetHeader:
    """The rest of a kind-1 header (after the network kind), checked against the length."""
    features, classes = r.gamma(), r.gamma()
    channels = tuple(r.gamma() for _ in range(r.gamma()))
    arch = ResNetArch(features, classes, channels, r.natural())
    try:
        n_layers = len(coded_layers(arch.build()))
    except ParameterError as err:
        raise ParameterError(f"corrupt code: the header's ResNet cannot be built ({err})") from None
    bits = r.gamma()
    quantiser = QUANTISERS[r.natural()]
    float_dtype = FLOAT_DTYPES[r.natural()]
    bias_bits = r.natural()
    models = [_LAYER_POSITIONS[r.natural()] for _ in range(n_layers)]
    if any(m.startswith("sketch") for m in models):
        raise ParameterError("corrupt code: a ResNet layer announces a sketch")
    lengths = [r.natural() for _ in range(5)]
    header_len = r.byte_offset()
    if header_len + sum(lengths) != len(code):
        raise ParameterError(f"the code has {len(code)} bytes but its header announces "
                             f"{header_len + sum(lengths)}: it is truncated or corrupt")
    return _ResNetHeader(arch, bits, quantiser, float_dtype, bias_bits, models,
                         [header_len] + lengths)


def _decode_resnet(code: bytes, h: _ResNetHeader) -> QuantisedResNet:
    """Inverse of :func:`_encode_resnet`."""
    _, seg_c, seg_p, seg_v, seg_b, _ = _segments(code, h)
    modules = coded_layers(h.arch.build())
    shapes = [(int(m.weight.shape[0]), int(m.weight[0].numel())) for m in modules]
    spec = CodeSpec(bits=h.bits, quantiser=h.quantiser, float_dtype=h.float_dtype,
                    bias_bits=max(h.bias_bits, 2),
                    positions=h.models[0] if len(set(h.models)) == 1 else "auto")
    tables, steps = _read_codebook(seg_c, len(shapes), h)
    rp = _BitReader(seg_p)
    counts = [rp.natural() if m == "density" else None for m in h.models]
    dp = _split(seg_p, rp)
    masks = [_decode_positions(dp, s, m, k) for s, m, k in zip(shapes, h.models, counts)]
    rv = _BitReader(seg_v)
    hists = [_read_histogram(rv, len(t), int(mask.sum())) for t, mask in zip(tables, masks)]
    dv = _split(seg_v, rv)
    symbols = [np.zeros(int(mask.sum()), dtype=np.int64) if len(t) == 1 else
               np.asarray(dv.decode(_categorical(c), int(mask.sum())), dtype=np.int64)
               for t, mask, c in zip(tables, masks, hists)]
    levels: list[np.ndarray | None] = [None] * len(shapes)
    bsteps: list[np.float32 | None] = [None] * len(shapes)
    with_bias = [j for j, m in enumerate(modules) if m.bias is not None]
    if with_bias:
        rb = _BitReader(seg_b)
        side = [(np.float32(rb.float(h.float_dtype)), *_decode_ranged(rb, shapes[j][0]))
                for j in with_bias]
        db = _split(seg_b, rb)
        for j, (step, lo, c) in zip(with_bias, side):
            levels[j] = _decode_ranged_symbols(db, lo, c, shapes[j][0])
            bsteps[j] = step
    layers = tuple(QuantisedLayer(*parts) for parts in
                   zip(masks, symbols, tables, levels, bsteps, steps))
    return QuantisedResNet(h.arch, layers, spec)
