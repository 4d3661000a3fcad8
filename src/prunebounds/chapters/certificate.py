"""Chapter "A certificate that is not vacuous": pruned networks coded in bytes, and bounded.

For every network of the chapter the pipeline is the same: quantise the pruned network
(a k-means codebook of 2^b values per layer, :mod:`prunebounds.coding`), write it as a
prefix-free code with a real entropy coder, decode the bytes and check that the decoded
network is the quantised one bit for bit and predicts identically on the test set, then
bound its error with the Occam-kl theorem (:func:`prunebounds.certificate.certify`;
m = every MNIST training image, delta fixed in advance). Beside each certificate it
computes, for the *same* coded network,

* the paper's bound, counting half (Theorem 5.2 reconstructed, with no pruning error
  charged): sum_l k_l^2 sketch entries with r = 2^b values;
* Arora et al.'s counting bound with the positions counted as in Lemma D.1;
* the authors' evaluation, R^ + sqrt(sum_l d1 d2 chi_l ln^2 max(d1, d2) / m);
* for the paper's MLP, also Theorem 5.2 and the authors' evaluation at the margin the
  pruning needs (the bound chapter's protocol, on the unquantised pruned network);
* a code in which the positions are replaced by the paper's sketch A Z B^T of the mask,
  recovered by basis pursuit (its real length; where the sketch search is too slow for
  the profile, the length of the sketch at the smallest size the encoder tries).

The networks: LeNet-300-100 tickets of iterative magnitude pruning
(:func:`prunebounds.lottery.imp`), the last ticket pruned further by weights and hidden
units with masked training (:mod:`prunebounds.gradual`; ours), and the paper's MLP (the
book's main network) pruned by the paper's rule over a grid of d and by magnitude at
equal sparsity; and, where the profile runs it (smoke and full, not quick), the residual
CNN of the beyond-MLPs chapter (trained and cached there,
:func:`prunebounds.chapters.beyond_mlps.train_network`), pruned by the paper's rule in
every convolution and the head (:func:`prunebounds.beyond.prune_paper_all`) and by
magnitude at equal sparsity, each trained a few epochs with its zeros held at zero
(:func:`masked_finetune`), coded with the residual-CNN kind of the code format
(:func:`prunebounds.coding.quantise_resnet`). :func:`compute` returns a :class:`CertificateResult`; :func:`claims`
judges the chapter's claims.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils import prune
from tqdm import tqdm

from .. import certificate as K
from .. import coding as C
from .. import beyond, gradual, lottery
from ..bounds import authors_sketch_bound, counting_bound, paper_bound
from ..cache import cached_result
from ..claims import Claim, Value, criteria
from ..counting import sparse_count_nats
from ..data import load
from ..devices import resolve_device
from ..errors import ParameterError
from ..margins import margins, model_error_rate
from ..models import linear_layers
from ..perturbation import PruningProbe
from ..profiles import Profile
from ..pruning import expected_keep_fraction, prune_like, prune_paper
from ..runs import RunConfig, train_cached
from ..sketching import sketch_sizes
from ..train import OptimiserConfig, train_epoch
from ..validate import check_delta, check_int, check_real
from . import beyond_mlps

__all__ = ["LABEL", "REQUIRES", "CertificateSettings", "SETTINGS", "settings", "Parts",
           "Compared", "Certified", "LayerSketch", "ResNetCertificates", "CertificateResult",
           "magnitude_like", "masked_finetune", "certify_resnet", "compute", "claims",
           "numbers", "network_rows", "sketch_rows", "pipeline_figure"]

LABEL = "chap-certificate"
#: The LeNet tickets are trained here with :func:`prunebounds.lottery.imp`; the paper's
#: MLP comes from :func:`prunebounds.runs.train_cached` (shared with every chapter); the
#: residual CNN is the one the beyond-MLPs chapter trains and caches (run it first).
REQUIRES: tuple[str, ...] = ("beyond_mlps",)

#: The goal for the smallest valid bound, per profile (issue 14, section 5).
GOALS = {"smoke": 1.0, "quick": 0.35, "full": 0.25}
FAMILIES = ("ticket", "ours", "paper-rule", "magnitude")


@dataclass(frozen=True)
class CertificateSettings:
    """Everything the chapter runs (see :data:`SETTINGS`).

    Attributes:
        delta: failure probability of every bound, fixed before any data is seen.
        bits: values per layer 2^b tried for the LeNet networks.
        paper_bits: b of the codes of the paper's MLP.
        bias_bits: biases on a grid of 2^c - 1 levels.
        lenet_hidden: hidden widths of the LeNet.
        imp_rounds, imp_epochs, imp_optimiser: iterative magnitude pruning of the LeNet
            (Frankle & Carbin's schedule, 20% per round, 10% at the output layer).
        levels: further pruning of the last ticket (ours), each trained for the epochs
            of ``level_epochs`` on all m training images.
        certify_last: how many of the last levels are certified.
        codebook_epochs, codebook_lr: fine-tuning of the k-means codebook before coding.
        ds: values of d at which the paper's MLP is pruned.
        sketch_paper: (d, layer) pairs of the paper's MLP (paper's rule) whose sketch is
            searched for real; the other layers get the length at the first size.
        sketch_max_iter: iteration cap of each basis-pursuit recovery.
        measure_paper_train_error: measure the training error of the coded paper MLPs
            even when their bound is vacuous at any training error.
        resnet_ds: values of d at which the residual CNN of the beyond-MLPs chapter is
            pruned and certified (empty: the profile does not certify it).
        resnet_bits: b of the residual CNN's codes (lowered for a network one of whose
            layers keeps fewer than 2^b weights, see :func:`certify_resnet`).
        resnet_epochs: epochs of training of each pruned residual CNN, its pruned
            weights held at zero (:func:`masked_finetune`; 0: none).
    """

    delta: float
    bits: tuple[int, ...]
    paper_bits: int
    bias_bits: int
    lenet_hidden: tuple[int, ...]
    imp_rounds: int
    imp_epochs: int
    imp_optimiser: str
    levels: tuple[gradual.Level, ...]
    level_epochs: tuple[int, ...]
    certify_last: int
    codebook_epochs: int
    codebook_lr: float
    ds: tuple[float, ...]
    sketch_paper: tuple[tuple[float, int], ...]
    sketch_max_iter: int
    measure_paper_train_error: bool
    resnet_ds: tuple[float, ...] = ()
    resnet_bits: int = 3
    resnet_epochs: int = 0


def _levels(*rows) -> tuple[gradual.Level, ...]:
    return tuple(gradual.Level(keep, hidden) for keep, hidden in rows)


SETTINGS: dict[str, CertificateSettings] = {
    "smoke": CertificateSettings(
        0.05, (2,), 2, 4, (30, 10), 2, 3, "momentum-mnist",
        _levels((0.2, (16, 8)), (0.1, (10, 6))), (2, 2), 1, 1, 3e-3, (2.0, 10.0),
        ((10.0, 2),), 3000, True, (1.0, 2.5), 2, 1),
    # quick: LeNet IMP to 2.9% of the weights, then four levels down to 0.25%.
    "quick": CertificateSettings(
        0.05, (2, 3), 3, 4, (300, 100), 16, 1, "momentum-mnist",
        _levels((0.012, (100, 50)), (0.006, (50, 30)), (0.0035, (30, 20)),
                (0.0025, (25, 17))), (2, 2, 3, 3), 2, 1, 3e-3, (2.5, 5.0, 10.0),
        (), 3000, False),
    "full": CertificateSettings(
        0.05, (2, 3), 3, 4, (300, 100), 19, 5, "momentum-mnist",
        _levels((0.015, (120, 60)), (0.008, (70, 40)), (0.005, (45, 30)),
                (0.0035, (32, 22)), (0.0025, (25, 17)), (0.0018, (21, 14))),
        (3, 3, 3, 4, 6, 8), 3, 3, 3e-3, (1.0, 2.5, 5.0, 7.5, 10.0),
        ((10.0, 2), (10.0, 4), (10.0, 5)), 3000, True, (2.5, 5.0, 10.0, 20.0), 3, 3),
}


def settings(P: Profile, *, delta: float | None = None, bits=None,
             certify_last: int | None = None, codebook_epochs: int | None = None,
             ds=None) -> CertificateSettings:
    """The chapter's settings for profile ``P`` with the given overrides (``None``: keep).

    Raises:
        ParameterError: delta outside (0, 1), a b < 1 or > 8, more levels to certify
            than there are, negative epochs, a d <= 0: each message names the fix.
    """
    S = SETTINGS[P.name]
    changes: dict = {}
    if delta is not None:
        changes["delta"] = check_delta(delta)
    if bits is not None:
        bits = (bits,) if isinstance(bits, int) else tuple(bits)
        if not bits:
            raise ParameterError("bits must name at least one b (values per layer 2^b)")
        for b in bits:
            if check_int("bits", b, minimum=1) > 8:
                raise ParameterError(f"bits must lie in 1..8 (a codebook of 2^b values per "
                                     f"layer), got {b}; use bits=2 or 3")
        changes["bits"] = tuple(int(b) for b in bits)
    if certify_last is not None:
        n = check_int("certify_last", certify_last, minimum=1)
        if n > len(S.levels):
            raise ParameterError(f"certify_last must be at most the number of pruning levels "
                                 f"({len(S.levels)}), got {n}")
        changes["certify_last"] = n
    if codebook_epochs is not None:
        changes["codebook_epochs"] = check_int("codebook_epochs", codebook_epochs, minimum=0)
    if ds is not None:
        ds = tuple(ds) if not isinstance(ds, (int, float)) else (ds,)
        if not ds or any(check_real("d", d) <= 0 for d in ds):
            raise ParameterError(f"ds must be a list of pruning parameters d > 0, got {ds}")
        changes["ds"] = tuple(float(d) for d in ds)
    return dataclasses.replace(S, **changes)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Parts:
    """The code's segments in bits (read from the bytes: they add up to the code)."""

    header: int
    codebook: int
    positions: int
    values: int
    biases: int
    sketch: int

    @property
    def total(self) -> int:
        return self.header + self.codebook + self.positions + self.values + self.biases + \
            self.sketch


@dataclass(frozen=True)
class Compared:
    """The other bounds of the same network.

    ``paper_count``, ``lemma_d1`` and ``authors`` are about the coded network itself,
    with r = 2^b values per weight; ``lower`` is True when its training error was not
    measured (0 was used, so these values are lower bounds of the bounds).
    ``paper_margin`` and ``authors_margin``: Theorem 5.2 and the authors' evaluation at
    the margin the pruning needs (paper's MLP only; NaN otherwise).
    """

    paper_count: float
    lemma_d1: float
    authors: float
    paper_margin: float
    authors_margin: float
    q_sketch: int
    lower: bool


@dataclass(frozen=True)
class Certified:
    """One coded and certified network."""

    family: str
    label: str
    d: float
    bits: int
    widths: tuple[int, ...]
    n_kept: int
    kept: float
    train_err: float
    test_err: float
    bound: float
    code_bits: int
    parts: Parts
    compared: Compared
    sketch_bits: int | None
    sketch_bound: float
    seconds: float


@dataclass(frozen=True)
class LayerSketch:
    """One layer: its positions coded, against the paper's sketch of its mask.

    ``positions``: bits of the layer's mask alone (the shorter of the two position
    models, no unit sets); ``log2_binomial``: the Lemma D.1 count log2 C(n, nnz);
    ``first_bits``: the sketch at the smallest size the encoder tries, k0 =
    ceil(sqrt(2 nnz)), *assuming* recovery succeeds there; ``k`` and ``bits``: the
    smallest size at which basis pursuit recovered the mask exactly, and its length
    (``None`` when not searched, or when no size worked: then ``searched`` tells).
    """

    network: str
    family: str
    d: float
    layer: int
    shape: tuple[int, int]
    nnz: int
    positions: int
    log2_binomial: float
    k0: int
    first_bits: int
    searched: bool
    k: int | None
    bits: int | None


@dataclass(frozen=True)
class LevelSummary:
    """One level of the further pruning of the ticket."""

    keep: float
    widths: tuple[int, ...]
    n_kept: int
    test_err: float
    seconds: float


@dataclass(frozen=True)
class ResNetCertificates:
    """The residual CNN of the beyond-MLPs chapter, coded and certified, or why not.

    ``model``: its size preset; ``n_weights``: the weights of its convolutions and head;
    ``test_err``: the unpruned network's test error; ``certified``: one entry per d and
    pruning (``resnet-paper-rule`` and ``resnet-magnitude``)."""

    ran: bool
    reason: str
    model: str
    n_weights: int
    test_err: float
    certified: tuple[Certified, ...]

    @property
    def best(self) -> Certified | None:
        return min(self.certified, key=lambda c: c.bound) if self.certified else None


@dataclass(frozen=True)
class CertificateResult:
    """What the chapter measures (see :func:`compute`)."""

    profile: str
    settings: CertificateSettings
    m: int
    n_test: int
    ticket_kept: float
    ticket_test_err: float
    main_test_err: float
    levels: tuple[LevelSummary, ...]
    certified: tuple[Certified, ...]
    layers: tuple[LayerSketch, ...]
    seconds: dict[str, float]
    resnet: ResNetCertificates

    @property
    def best(self) -> Certified:
        """The certified network with the smallest bound."""
        return min(self.certified, key=lambda c: c.bound)

    def family(self, name: str) -> tuple[Certified, ...]:
        return tuple(c for c in self.certified if c.family == name)

    @property
    def searched(self) -> tuple[LayerSketch, ...]:
        """Layers whose sketch was recovered for real."""
        return tuple(x for x in self.layers if x.bits is not None)


# --------------------------------------------------------------------------- pieces
def _parts(b: C.CodeLength) -> Parts:
    return Parts(b.header, b.codebook, b.positions, b.values, b.biases, b.sketch)


def _compared(net: torch.nn.Module, train_err: float, m: int, delta: float, bits: int,
              margin: tuple[float, float] = (math.nan, math.nan)) -> Compared:
    """The counting bounds of the coded network ``net`` (r = 2^bits, biases counted);
    a convolution counts as its unfolded matrix, out x (in kh kw)."""
    layers = C.coded_layers(net)
    W = [layer.weight.detach().reshape(layer.weight.shape[0], -1) for layer in layers]
    shapes = [tuple(w.shape) for w in W]
    nnz = [int(torch.count_nonzero(w)) for w in W]
    n_bias = sum(int(layer.bias.numel()) for layer in layers if layer.bias is not None)
    log_r = math.log(2 ** bits)
    lower = math.isnan(train_err)
    loss = 0.0 if lower else train_err
    q_sketch = int(sum(s.n_params for w in W for s in sketch_sizes([w])))  # unchained
    paper = counting_bound("paper", loss, (q_sketch + n_bias) * log_r, m, delta).value
    d1 = sparse_count_nats(nnz, shapes, 2 ** bits).total + n_bias * log_r
    lemma = counting_bound("sparse_count", loss, d1, m, delta).value
    kept = [a / (o * i) for a, (o, i) in zip(nnz, shapes)]
    authors = authors_sketch_bound(loss, shapes, kept, m).value
    return Compared(paper, lemma, authors, margin[0], margin[1], q_sketch, lower)


def _layer_sketches(net: torch.nn.Module, spec: C.CodeSpec, label: str, family: str, d: float,
                    search: set[int]) -> list[LayerSketch]:
    """Per layer of the coded network: positions against the sketch of the mask."""
    q = C.quantise_network(net, spec)
    lengths = C.layer_code_lengths(net, spec, sketches=("sketch-mask",) if search else (),
                                   layers=sorted(search))
    rows = []
    for i, (layer, lc) in enumerate(zip(q.layers, lengths), start=1):
        k0 = C.first_sketch_size(lc.n_kept)
        found = lc.sketch.get("sketch-mask", {})
        rows.append(LayerSketch(label, family, d, i, lc.shape, lc.n_kept, lc.positions,
                                lc.log2_binomial, k0,
                                C.sketch_bits_at(layer.mask.astype(np.int64), k0, spec, i),
                                i in search, found.get("k"), found.get("bits")))
    return rows


def _sketch_code(net, spec, rows, X_test, train_err, m, delta) -> tuple[int | None, float]:
    """The code with the recovered layers' positions replaced by their sketches."""
    ok = tuple(r.layer for r in rows if r.bits is not None)
    if not ok:
        return None, math.nan
    sk = spec.replace(positions="sketch-mask", sketch_layers=ok,
                      sketch_k=tuple((r.layer, r.k) for r in rows if r.bits is not None))
    code = C.verify_roundtrip(net, sk, X_test)
    bits = 8 * len(code)
    bound = math.nan if math.isnan(train_err) else K.occam_kl_bound(train_err, bits, m, delta)
    return bits, bound


def _certify(family, label, d, net, n_total, b, S, X, y, Xt, yt, skip, seen: dict, dev,
             margin=(math.nan,) * 2, search: set[int] = frozenset(), finetune: bool = True):
    """Fine-tune (LeNet), certify, compare and sketch one network.

    Returns the :class:`Certified` and the network's :class:`LayerSketch` rows, or no
    rows when ``seen`` (label and mask -> rows) already holds them: the sketch of a
    mask does not depend on b, so it is searched once per network."""
    start = time.perf_counter()
    spec = C.CodeSpec(bits=b, bias_bits=S.bias_bits)
    if finetune and S.codebook_epochs:
        net = C.finetune_codebook(net, spec, X, y, epochs=S.codebook_epochs, lr=S.codebook_lr,
                                  device=dev)
    cert = K.certify(net, spec, X, y, delta=S.delta, X_test=Xt, y_test=yt, skip_vacuous=skip)
    decoded = C.quantise(net, spec)
    key = (label, b"".join(np.packbits(q.mask).tobytes() for q in
                           C.quantise_network(net, spec).layers))
    new = key not in seen
    if new:
        seen[key] = _layer_sketches(net, spec, label, family, d, search)
    rows = seen[key]
    sk_bits, sk_bound = _sketch_code(net, spec, rows, Xt, cert.train_error, cert.m, S.delta)
    widths = tuple(decoded.widths)
    return Certified(
        family, label, d, b, widths, cert.n_kept, cert.n_kept / n_total, cert.train_error,
        float(cert.test_error), cert.bound, cert.code_bits, _parts(cert.breakdown),
        _compared(decoded, cert.train_error, cert.m, S.delta, b, margin), sk_bits, sk_bound,
        time.perf_counter() - start), (rows if new else [])


def _lenet(P: Profile, S: CertificateSettings, data, dev, progress: bool):
    """The last IMP ticket of LeNet and the levels of further pruning."""
    widths = (data.n_features, *S.lenet_hidden, data.n_classes)
    res = lottery.imp(widths, data, "frankle-carbin", S.imp_rounds, S.imp_epochs, P.seed,
                      progress=progress, optimiser=S.imp_optimiser, device=dev)
    return res.model_at(S.imp_rounds), res.rounds[-1]


# --------------------------------------------------------------------------- residual CNN
def magnitude_like(net: torch.nn.Module, reference: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` with, in every coded layer (convolutions and the head), only as
    many of its largest-magnitude weights kept as ``reference`` keeps there: magnitude
    pruning at the sparsity of the paper's rule, layer by layer (what
    :func:`prunebounds.pruning.prune_like` does for an MLP)."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for layer, ref in zip(C.coded_layers(out), C.coded_layers(reference)):
            w = layer.weight.view(-1)
            keep = torch.topk(w.abs(), int(torch.count_nonzero(ref.weight))).indices
            w.mul_(torch.zeros_like(w).index_fill_(0, keep, 1.0))
    return out


def masked_finetune(net: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int,
                    seed: int, device: torch.device | str = "cpu", lr: float = 1e-3,
                    batch_size: int = 128) -> torch.nn.Module:
    """A copy of the pruned ``net`` trained ``epochs`` epochs with its zeros held at zero.

    Every coded layer (:func:`prunebounds.coding.coded_layers`) gets the mask of its
    non-zero weights (``torch.nn.utils.prune.custom_from_mask``: a pruned weight gets no
    gradient), Adam at a constant ``lr`` runs :func:`prunebounds.train.train_epoch` on
    ``device`` (batch order from a CPU generator seeded with ``seed``), and the masks are
    made permanent. Ours, as the masked training of :mod:`prunebounds.gradual`. Returns
    the network on the CPU, in eval mode.
    """
    out = copy.deepcopy(net).to(resolve_device(device))
    layers = C.coded_layers(out)
    for layer in layers:
        prune.custom_from_mask(layer, "weight", layer.weight.detach() != 0)
    adam = torch.optim.Adam(out.parameters(), lr=lr)
    batch = OptimiserConfig(lr=lr, batch_size=batch_size, weight_decay=0.0)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    dev = layers[0].weight.device
    try:
        out.train()
        for _ in range(check_int("epochs", epochs, minimum=0)):
            train_epoch(out, X.to(dev), y.to(dev), adam, batch, gen)
    finally:
        for layer in layers:
            prune.remove(layer, "weight")
    return out.cpu().eval()


def certify_resnet(net: torch.nn.Module, ds, bits: int, S: CertificateSettings, X, y, Xt, yt,
                   seed: int, progress: bool = False,
                   device: torch.device | str = "cpu") -> tuple[Certified, ...]:
    """The residual CNN pruned at each d, trained, coded, decoded, checked and certified.

    Pruning: the paper's rule in every convolution and the head
    (:func:`prunebounds.beyond.prune_paper_all`, as the beyond-MLPs chapter prunes it)
    and magnitude at equal sparsity (:func:`magnitude_like`); each pruned network then
    trains ``S.resnet_epochs`` epochs on (X, y) with its pruned weights held at zero
    (:func:`masked_finetune` on ``device``; allowed: the bound holds for every coded
    network at once, whatever the data did to choose it). Then
    :func:`prunebounds.certificate.certify`: quantise (k-means, 2^bits values per
    layer), encode, decode, check identical predictions on ``Xt``, measure the decoded
    network's error on all m rows of ``X``, bound it by (Occam-kl). Every choice (d,
    pruning, b, the network itself) is recorded in the code, so no union bound is due
    beyond the code length (the module docstring of :mod:`prunebounds.certificate`).
    A k-means codebook cannot have more entries than a layer has kept weights, so a
    network whose sparsest layer keeps n < 2^bits weights is coded with b = floor(log2 n)
    (b is written in the header too)."""
    n_total = sum(layer.weight.numel() for layer in C.coded_layers(net))
    a = C.resnet_arch(net)
    widths = (a.features, *a.channels, a.classes)
    out = []
    for d in tqdm(ds, desc="residual CNN", disable=not progress, file=sys.stderr, leave=False):
        g = beyond.prune_paper_all(net, d, seed)
        for family, pruned in (("resnet-paper-rule", g), ("resnet-magnitude",
                                                          magnitude_like(net, g))):
            start = time.perf_counter()
            pruned = masked_finetune(pruned, X, y, S.resnet_epochs, seed, device)
            fewest = min(int(torch.count_nonzero(m.weight)) for m in C.coded_layers(pruned))
            b = max(1, min(bits, fewest.bit_length() - 1))
            spec = C.CodeSpec(bits=b, bias_bits=S.bias_bits)
            cert = K.certify(pruned, spec, X, y, delta=S.delta, X_test=Xt, y_test=yt)
            out.append(Certified(
                family, f"{family} d={d:g}", float(d), b, widths, cert.n_kept,
                cert.n_kept / n_total, cert.train_error, float(cert.test_error), cert.bound,
                cert.code_bits, _parts(cert.breakdown),
                _compared(C.quantise(pruned, spec), cert.train_error, cert.m, S.delta, b),
                None, math.nan, time.perf_counter() - start))
    return tuple(out)


def _resnet(P: Profile, S: CertificateSettings, X, y, Xt, yt, progress) -> ResNetCertificates:
    """The residual CNN of the beyond-MLPs chapter (its cached training) certified."""
    if not S.resnet_ds:
        return ResNetCertificates(
            False, f"the residual CNN is certified at full scale in the full profile only "
                   f"(the smoke profile runs a tiny one as a test); the {P.name} profile "
                   "skips it to stay within its CPU budget",
            "", 0, math.nan, ())
    BS = beyond_mlps.settings(P)
    net, _, _ = beyond_mlps.train_network(P, BS, "ResNet", progress=progress)
    net = net.cpu().eval()
    certified = certify_resnet(net, S.resnet_ds, S.resnet_bits, S, X, y, Xt, yt, P.seed,
                               progress, resolve_device(P.device))
    return ResNetCertificates(True, "coded and certified in this build", BS.resnet,
                              sum(layer.weight.numel() for layer in C.coded_layers(net)),
                              model_error_rate(net, Xt, yt), certified)


# --------------------------------------------------------------------------- compute
def compute(P: Profile, *, progress: bool = True, S: CertificateSettings | None = None,
            use_cache: bool = True) -> CertificateResult:
    """Every network of the chapter coded, decoded, certified and compared (cached)."""
    S = settings(P) if S is None else S
    config = {"profile": dataclasses.asdict(P) | {"device": resolve_device(P.device).type},
              "settings": dataclasses.asdict(S)}
    return cached_result("certificate", config, lambda: _compute(P, S, progress),
                         CertificateResult, use_cache=use_cache)


def _compute(P: Profile, S: CertificateSettings, progress: bool) -> CertificateResult:
    t0 = time.perf_counter()
    dev = resolve_device(P.device)
    data = load(P.dataset, max_train=P.max_train)
    X = torch.cat([data.train.X, data.val.X])
    y = torch.cat([data.train.y, data.val.y])
    Xt, yt = data.test.X, data.test.y
    seconds: dict[str, float] = {}

    # LeNet-300-100: the ticket, then further pruning (ours)
    ticket, last = _lenet(P, S, data, dev, progress)
    ticket = ticket.cpu()
    n_lenet = sum(layer.weight.numel() for layer in linear_layers(ticket))
    seconds["imp"] = time.perf_counter() - t0
    t = time.perf_counter()
    pruned = gradual.gradual_prune(ticket, X, y, S.levels, S.level_epochs, seed=P.seed,
                                   device=dev, progress=progress)
    levels = tuple(LevelSummary(p.level.keep, p.widths, p.n_kept,
                                model_error_rate(p.model, Xt, yt), p.seconds) for p in pruned)
    seconds["prune"] = time.perf_counter() - t

    t = time.perf_counter()
    jobs = [("ticket", f"ticket ({last.fraction_left:.1%})", ticket)]
    jobs += [("ours", f"ours ({p.fraction:.2%})", p.model) for p in pruned[-S.certify_last:]]
    certified, layers, seen = [], [], {}
    bar = tqdm([(j, b) for j in jobs for b in S.bits], desc="LeNet certificates",
               disable=not progress, file=sys.stderr, leave=False)
    for (family, label, net), b in bar:
        search = set(range(1, len(linear_layers(net)) + 1)) if family == "ours" else set()
        c, rows = _certify(family, label, math.nan, net, n_lenet, b, S, X, y, Xt, yt, False,
                           seen, dev, search=search)
        certified.append(c)
        layers += rows
    seconds["lenet"] = time.perf_counter() - t

    # the paper's MLP: the paper's rule over d, and magnitude at equal sparsity
    t = time.perf_counter()
    run = train_cached(RunConfig.from_profile(P), progress=progress)
    f = run.model.cpu()
    n_main = sum(layer.weight.numel() for layer in linear_layers(f))
    probe = PruningProbe(f, data.train.X, data.train.y)
    mg = margins(probe.reference_logits, data.train.y)
    bar = tqdm(S.ds, desc="paper's MLP", disable=not progress, file=sys.stderr, leave=False)
    for d in bar:
        g = prune_paper(f, d, P.seed)
        for family, net in (("paper-rule", g), ("magnitude", prune_like(f, g))):
            Wg = [layer.weight.detach() for layer in linear_layers(net)]
            pb = paper_bound(mg, probe.needed_margin(Wg).value, Wg, r=256, delta=S.delta)
            chi = expected_keep_fraction(d) if family == "paper-rule" else \
                sum(int(torch.count_nonzero(w)) for w in Wg) / n_main
            ab = authors_sketch_bound(pb.terms["empirical_margin_loss"], Wg, float(chi), len(mg))
            search = {i for dd, i in S.sketch_paper if dd == d} if family == "paper-rule" else set()
            c, rows = _certify(family, f"{family} d={d:g}", d, net, n_main, S.paper_bits, S, X,
                               y, Xt, yt, not S.measure_paper_train_error, seen, dev,
                               (pb.value, ab.value), search, finetune=False)
            certified.append(c)
            layers += rows
    seconds["paper"] = time.perf_counter() - t
    t = time.perf_counter()
    resnet = _resnet(P, S, X, y, Xt, yt, progress)
    seconds["resnet"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    return CertificateResult(P.name, S, len(y), len(yt), float(last.fraction_left),
                             model_error_rate(ticket, Xt, yt), model_error_rate(f, Xt, yt),
                             levels, tuple(certified), tuple(layers), seconds, resnet)


# --------------------------------------------------------------------------- claims
def _ratios(R: CertificateResult) -> tuple[float, float]:
    """(smallest real sketch / positions, smallest first-size sketch / positions)."""
    real = [x.bits / x.positions for x in R.layers if x.bits is not None and x.positions]
    first = [x.first_bits / x.positions for x in R.layers if x.positions]
    return (min(real) if real else math.nan), (min(first) if first else math.nan)


def _vs_error(bound: float, test_err: float):
    """Valid (not below the measured test error) and useful (below 1 - 1e-6)."""
    return criteria.bound_vs_truth(bound, test_err, useful_below=K.VACUOUS_AT,
                                   what="the certificate", truth_what="the measured test error",
                                   useful_what="1 − 10⁻⁶ (a bound of 1 says nothing)")


def claims(R: CertificateResult) -> list[Claim]:
    """The chapter's claims, each judged by an explicit criterion."""
    best = R.best
    goal = GOALS[R.profile]
    bound = criteria.caveat_unless(
        _vs_error(best.bound, best.test_err),
        criteria.at_most(best.bound, goal, what="the certificate",
                         limit_what=f"the {R.profile} profile's goal"),
        f"the bound misses the {R.profile} profile's goal")
    paper = R.family("paper-rule")
    best_paper = min(paper, key=lambda c: c.bound)
    real, first = _ratios(R)
    measured = len(R.searched)
    sketch = criteria.at_most(real, 1.0, what="the shortest sketch over the positions it "
                              "replaces", limit_what="1 (equal length)")
    claims_ = [
        Claim("certificate-bound",
              "A pruned, quantised MNIST network coded in bytes gets a valid, non-vacuous "
              "Occam-kl bound on its test error (delta and m stated, every choice paid).",
              "ours", LABEL, "fig-certificate-bounds",
              (Value("bound", "smallest valid bound (a probability)", best.bound, ".3f"),
               Value("test_err", "measured test error of that network", best.test_err, ".2%"),
               Value("code_bits", "its code length (bits)", best.code_bits, ",d"),
               Value("kept", "weights kept (of LeNet-300-100's)", best.kept, ".2%"),
               Value("bits", "b (2^b values per layer)", best.bits, "d"),
               Value("bound_paper_mlp", "best certificate of the paper's MLP (paper's rule)",
                     best_paper.bound, ".4f"),
               Value("goal", "the profile's goal", goal, ".2f")),
              judgement=bound),
        Claim("certificate-sketch-shortens",
              "Sketching beats sparse storage, measured in bits: replacing the coded "
              "positions of a pruned layer by the paper's sketch A Z Bᵀ of its mask "
              "(recovered exactly by basis pursuit) shortens the code.",
              "reviewer", LABEL, "tab-certificate-sketch",
              (Value("ratio", "smallest recovered sketch / coded positions", real, ".2f"),
               Value("ratio_first", "smallest first-size sketch / coded positions", first,
                     ".2f"),
               Value("n_layers", "layers whose sketch was recovered", measured, "d")),
              judgement=sketch),
        Claim("certificate-paper-mlp",
              "Coded the same way, the paper's MLP pruned by its own rule gets a certificate "
              "of its test error at some d of the grid (useful when below 1).", "ours",
              LABEL, "tab-certificate-networks",
              (Value("bound", "smallest certificate over d", best_paper.bound, ".4f"),
               Value("code_bits", "its code length (bits)", best_paper.code_bits, ",d"),
               Value("d", "its d", best_paper.d, "g")),
              judgement=_vs_error(best_paper.bound, best_paper.test_err)),
        _resnet_claim(R.resnet),
    ]
    return claims_


def _resnet_claim(Q: ResNetCertificates) -> Claim:
    """The residual CNN's best certificate, judged like the MLPs' (valid, useful below 1)."""
    best = Q.best
    if best is None:
        measured = (Value("done", "the residual CNN coded and certified", False),)
        judgement = criteria.not_checked(Q.reason)
    else:
        measured = (Value("done", "the residual CNN coded and certified", True),
                    Value("bound", "smallest certificate over d and pruning", best.bound,
                          ".4f"),
                    Value("test_err", "measured test error of that network", best.test_err,
                          ".2%"),
                    Value("code_bits", "its code length (bits)", best.code_bits, ",d"),
                    Value("kept", "weights kept (of the residual CNN's)", best.kept, ".2%"),
                    Value("d", "its d", best.d, "g"))
        judgement = _vs_error(best.bound, best.test_err)
    return Claim("certificate-resnet",
                 "The residual CNN of the beyond-MLPs chapter, pruned and coded with its "
                 "convolutions, gets a certificate of its test error too (useful when below "
                 "1).", "ours", LABEL, "tab-certificate-networks", measured,
                 judgement=judgement)


# --------------------------------------------------------------------------- for the text
def numbers(R: CertificateResult) -> dict[str, float | int | str]:
    """Every number the chapter's text quotes, by glue name."""
    S, best = R.settings, R.best
    paper = min(R.family("paper-rule"), key=lambda c: c.bound)
    ticket = min(R.family("ticket"), key=lambda c: c.bound)
    real, first = _ratios(R)
    n_layers = len(R.family("paper-rule")[0].widths) - 1
    paper_rows = [x for x in R.layers if x.family in ("paper-rule", "magnitude") and x.positions]
    hidden = [x.first_bits / x.positions for x in paper_rows if x.layer < n_layers]
    output = [x.first_bits / x.positions for x in paper_rows if x.layer == n_layers]
    found = [x for x in R.layers if x.bits is not None]
    where = min(found, key=lambda x: x.bits / x.positions) if found else None
    q0 = 0.0 if math.isnan(paper.train_err) else paper.train_err
    return {
        "certificate_best": best.bound, "certificate_test_err": best.test_err,
        "cert_best_train_err": best.train_err, "cert_best_bits": best.code_bits,
        "cert_best_kept": best.kept, "cert_best_n_kept": best.n_kept, "cert_best_b": best.bits,
        "cert_best_widths": "-".join(map(str, best.widths)), "cert_best_label": best.label,
        "cert_best_complexity": (best.code_bits * K.LN2 + math.log(1 / S.delta)) / R.m,
        "cert_best_positions": best.parts.positions, "cert_best_values": best.parts.values,
        "cert_best_sketch_bits": -1 if best.sketch_bits is None else best.sketch_bits,
        "cert_best_sketch_bound": best.sketch_bound,
        "cert_best_lemma": best.compared.lemma_d1, "cert_best_paper_count":
            best.compared.paper_count, "cert_best_authors": best.compared.authors,
        "cert_m": R.m, "cert_delta": S.delta, "cert_n_test": R.n_test,
        "cert_n_networks": len(R.certified), "cert_goal": GOALS[R.profile],
        "cert_imp_rounds": S.imp_rounds, "cert_imp_epochs": S.imp_epochs,
        "cert_ticket_kept": R.ticket_kept, "cert_ticket_test_err": R.ticket_test_err,
        "cert_ticket_bound": ticket.bound, "cert_ticket_bits": ticket.code_bits,
        "cert_main_test_err": R.main_test_err,
        "cert_paper_bound": paper.bound, "cert_paper_d": paper.d,
        "cert_paper_bits": paper.code_bits, "cert_paper_kept": paper.kept,
        "cert_paper_min_bits": min(c.code_bits for c in R.family("paper-rule")),
        "cert_paper_max_bits": max(c.code_bits for c in R.family("paper-rule")),
        "cert_paper_budget": K.bits_for_bound(q0, 0.9, R.m, S.delta),
        "cert_paper_margin_min": min(c.compared.paper_margin for c in R.family("paper-rule")),
        "cert_sketch_ratio": real, "cert_sketch_ratio_first": first,
        "cert_sketch_ratio_first_hidden": min(hidden) if hidden else math.nan,
        "cert_sketch_ratio_first_output": min(output) if output else math.nan,
        "cert_sketch_where": "none recovered" if where is None else
            f"{where.network}, layer {where.layer} ({where.shape[0]}x{where.shape[1]}, "
            f"{where.nnz / (where.shape[0] * where.shape[1]):.2%} kept)",
        "cert_outputs_recovered": sum(1 for x in found if x.layer == len(
            next(c for c in R.certified if c.label == x.network).widths) - 1),
        "cert_outputs_tried": sum(1 for x in R.layers if x.searched and x.layer == len(
            next(c for c in R.certified if c.label == x.network).widths) - 1),
        "cert_n_searched": len(R.searched),
        "cert_n_tried": sum(x.searched for x in R.layers),
        "cert_seconds": R.seconds["total"],
        "cert_resnet_epochs": S.resnet_epochs, **_resnet_numbers(R.resnet),
    }


def _resnet_numbers(Q: ResNetCertificates) -> dict[str, float | int | str]:
    """The residual CNN's numbers (NaN, -1 or "not run" where the profile skips it)."""
    best = Q.best
    return {
        "cert_resnet_n": len(Q.certified), "cert_resnet_model": Q.model or "not run",
        "cert_resnet_weights": Q.n_weights, "cert_resnet_test_err_full": Q.test_err,
        "cert_resnet_bound": math.nan if best is None else best.bound,
        "cert_resnet_test_err": math.nan if best is None else best.test_err,
        "cert_resnet_train_err": math.nan if best is None else best.train_err,
        "cert_resnet_bits": -1 if best is None else best.code_bits,
        "cert_resnet_kept": math.nan if best is None else best.kept,
        "cert_resnet_label": "not run" if best is None else best.label,
        "cert_resnet_lemma": math.nan if best is None else best.compared.lemma_d1,
    }


NETWORK_HEADERS = ("network", "b", "kept", "test error", "certificate", "sketch code",
                   "Lemma D.1 count", "paper (sketch count)", "authors' evaluation",
                   "Thm 5.2 at its margin")


def network_rows(R: CertificateResult) -> list[tuple]:
    """One row per certified network for the side-by-side table."""
    return [(c.label, c.bits, f"{c.kept:.2%}", f"{c.test_err:.2%}", c.bound, c.sketch_bound,
             c.compared.lemma_d1, c.compared.paper_count, c.compared.authors,
             c.compared.paper_margin) for c in R.certified + R.resnet.certified]


SKETCH_HEADERS = ("network", "layer", "shape", "kept", "positions (bits)", "log2 C(n, nnz)",
                  "sketch at k0 (k0, bits)", "recovered sketch (k, bits)",
                  "sketch / positions")


def sketch_rows(R: CertificateResult, families=FAMILIES) -> list[tuple]:
    """One row per layer: coded positions against the paper's sketch of the mask."""
    out = []
    for x in R.layers:
        if x.family not in families:
            continue
        found = "not tried" if not x.searched else (
            f"{x.k}, {x.bits:,}" if x.bits is not None else "no size recovered")
        best = x.bits if x.bits is not None else x.first_bits
        out.append((x.network, x.layer, f"{x.shape[0]}x{x.shape[1]}",
                    f"{x.nnz / (x.shape[0] * x.shape[1]):.2%}", f"{x.positions:,}",
                    f"{x.log2_binomial:,.0f}", f"{x.k0}, {x.first_bits:,}", found,
                    best / x.positions if x.positions else math.nan))
    return out


# --------------------------------------------------------------------------- figure
def pipeline_figure(R: CertificateResult):
    """The schematic: from a pruned network to a code, and from the code to a bound."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    best = R.best
    p = best.parts
    steps = [
        ("1  prune", f"weights and units\n{best.n_kept:,} weights\nkept ({best.kept:.2%})"),
        ("2  quantise", f"k-means codebook\n{2 ** best.bits} values\nper layer,\nfine-tuned"),
        ("3  encode", f"header {p.header}\ncodebook {p.codebook}\npositions {p.positions:,}\n"
                      f"values {p.values:,}\nbiases {p.biases} (bits)"),
        ("4  decode", "same weights,\nbit for bit;\nsame predictions\non the test set"),
        ("5  count errors", f"decoded network\non all m = {R.m:,}\ntraining images:\n"
                            f"{best.train_err:.2%} errors"),
        ("6  bound", f"kl(err ‖ p) ≤\n(|c| ln 2 + ln 1/δ) / m\n|c| = {best.code_bits:,} bits\n"
                     f"δ = {R.settings.delta:g}: p ≤ {best.bound:.3f}"),
    ]
    fig, ax = plt.subplots(figsize=(10.0, 2.7))
    w, gap = 1.5, 0.22
    for i, (title, text) in enumerate(steps):
        x = i * (w + gap)
        ax.add_patch(FancyBboxPatch((x, 0), w, 1.0, boxstyle="round,pad=0.02,rounding_size=0.06",
                                    fc="#eef3fb" if i < 4 else "#fbf3e6", ec="#4a6fa5"))
        ax.text(x + w / 2, 0.88, title, ha="center", va="center", weight="bold", fontsize=9)
        ax.text(x + w / 2, 0.42, text, ha="center", va="center", fontsize=7.5, linespacing=1.4)
        if i:
            ax.annotate("", (x - 0.03, 0.5), (x - gap + 0.03, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#4a6fa5", lw=1.2))
    ax.set_xlim(-0.05, len(steps) * (w + gap) - gap + 0.05)
    ax.set_ylim(-0.05, 1.05)
    ax.axis("off")
    return fig
