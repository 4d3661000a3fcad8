"""The setting chapter: the paper's MNIST network, its training, margins and layer norms.

:func:`compute` trains (or finds in the cache) the main network of a profile with the
authors' optimiser (plain SGD, see :mod:`prunebounds.train`), and measures what every
later chapter builds on: the input bound B, the training curves, the margins
(:mod:`prunebounds.margins`: correct-class logit minus the largest *other* logit, a tie
counts as an error) and each layer's norms. :func:`momentum_attribute_check` replays the
authors' ``configure_optimizers`` to show that their momentum setting had no effect.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..cache import cached_result, sha256
from ..claims import Claim, Value, criteria
from ..data import load
from ..devices import resolve_device
from ..margins import logits, margin_percentile, margins, min_margin
from ..models import build, linear_layers, weight_matrices
from ..norms import frobenius_norm, spectral_norm
from ..profiles import Profile
from ..runs import RunConfig, train_cached
from ..train import optimiser_config

__all__ = ["LABEL", "REQUIRES", "PAPER_EPOCHS", "MomentumCheck", "momentum_attribute_check",
           "LayerNorms", "MarginHistogram", "SettingResult", "compute", "claims"]

LABEL = "chap-setting"
REQUIRES: tuple[str, ...] = ()

#: The authors' training length: ``Trainer(max_epochs=100)`` in their October 2023 code.
PAPER_EPOCHS = 100
#: The last epochs over which the chapter reports the spread of the test error.
TAIL_EPOCHS = 10
#: Bins of the margin histogram.
N_BINS = 80


# --------------------------------------------------------------------------- the authors' optimiser
@dataclass(frozen=True)
class MomentumCheck:
    """Largest weight differences after ``steps`` SGD steps from the same start.

    ``attribute_vs_plain``: SGD built without momentum and then given the Python
    attribute ``momentum = 0.9`` (the authors' code), against plain SGD;
    ``momentum_vs_plain``: SGD with momentum 0.9 in its ``param_groups`` (what the
    attribute was meant to do), against plain SGD.
    """

    steps: int
    attribute_vs_plain: float
    momentum_vs_plain: float


def _sgd_weights(momentum: float, attribute: float | None, steps: int, seed: int) -> torch.Tensor:
    """All parameters of a small MLP after ``steps`` SGD steps with the paper's MNIST
    learning rate and weight decay, on a fixed random batch."""
    opt = optimiser_config("paper-mnist")
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(64, 784, generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)
    net = build((784, 32, 10), seed)
    sgd = torch.optim.SGD(net.parameters(), lr=opt.lr, weight_decay=opt.weight_decay,
                          momentum=momentum)
    if attribute is not None:
        sgd.momentum = attribute  # the authors' line: an attribute torch never reads
    for _ in range(steps):
        sgd.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        sgd.step()
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def momentum_attribute_check(steps: int = 5, seed: int = 0) -> MomentumCheck:
    """Replay the authors' ``configure_optimizers`` (groundzero/models/model.py).

    Their code calls ``SGD(params, lr=..., weight_decay=...)`` (momentum defaults to 0)
    and then ``optimizer.momentum = self.hparams.momentum``. ``torch.optim.SGD`` reads
    the momentum of each step from ``optimizer.param_groups``, so the attribute changes
    nothing: the weights after ``steps`` steps equal those of plain SGD bit for bit,
    while SGD with ``momentum=0.9`` in its constructor moves them elsewhere.
    """
    plain = _sgd_weights(0.0, None, steps, seed)
    attribute = _sgd_weights(0.0, 0.9, steps, seed)
    heavy = _sgd_weights(0.9, None, steps, seed)
    return MomentumCheck(steps, float((attribute - plain).abs().max()),
                         float((heavy - plain).abs().max()))


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LayerNorms:
    """Norms of one trained layer (fan-in x fan-out as in the paper; PyTorch stores out x in)."""

    layer: int
    fan_in: int
    fan_out: int
    spectral: float
    frobenius: float
    variance: float
    dist_to_init: float  # ||A^l - A^l_0||_2, the spectral distance to the initial weights

    @property
    def stable_rank(self) -> float:
        """||A||_F^2 / ||A||_2^2."""
        return self.frobenius ** 2 / self.spectral ** 2


@dataclass(frozen=True)
class MarginHistogram:
    """Densities of the training and test margins over common bin edges."""

    edges: tuple[float, ...]
    train: tuple[float, ...]
    test: tuple[float, ...]


@dataclass(frozen=True)
class SettingResult:
    """Everything the setting chapter shows (errors are fractions; ties count as errors)."""

    profile: str
    device: str
    dataset: str
    m: int
    n_val: int
    n_test: int
    B: float
    widths: tuple[int, ...]
    n_weights: int
    n_biases: int
    run_key: str
    lr: float
    batch_size: int
    weight_decay: float
    momentum: float
    epochs: int
    train_seconds: float
    epoch: tuple[int, ...]
    train_loss: tuple[float, ...]
    running_train_err: tuple[float, ...]
    val_err: tuple[float, ...]
    test_errs: tuple[float, ...]
    train_err: float
    margin_q: float
    min_margin: float
    q_margin: float
    median_margin: float
    n_nonpositive: int
    n_ties: int
    test_min_margin: float
    hist: MarginHistogram
    layers: tuple[LayerNorms, ...]
    momentum_check: MomentumCheck

    @property
    def n_params(self) -> int:
        return self.n_weights + self.n_biases

    @property
    def test_err(self) -> float:
        """The test error of the final network."""
        return self.test_errs[-1]

    @property
    def tail_range(self) -> tuple[float, float]:
        """(smallest, largest) test error over the last :data:`TAIL_EPOCHS` epochs."""
        tail = self.test_errs[-TAIL_EPOCHS:]
        return min(tail), max(tail)

    @property
    def prod_spectral(self) -> float:
        return math.prod(layer.spectral for layer in self.layers)


def _config(P: Profile, run: RunConfig, device: torch.device) -> dict:
    return {"profile": dataclasses.asdict(P), "run": run.key, "device": device.type,
            "chapter": sha256(Path(__file__).read_bytes())[:16]}


def _histogram(m_train: torch.Tensor, m_test: torch.Tensor) -> MarginHistogram:
    lo = float(min(m_train.min(), m_test.min()))
    hi = float(max(m_train.max(), m_test.max()))
    edges = np.linspace(lo, hi, N_BINS + 1)
    train, _ = np.histogram(m_train.cpu().numpy(), bins=edges, density=True)
    test, _ = np.histogram(m_test.cpu().numpy(), bins=edges, density=True)
    return MarginHistogram(tuple(edges.tolist()), tuple(train.tolist()), tuple(test.tolist()))


def _layer_norms(net: nn.Module, init: nn.Module) -> tuple[LayerNorms, ...]:
    out = []
    for l, (A, A0) in enumerate(zip(weight_matrices(net), weight_matrices(init)), 1):
        out.append(LayerNorms(l, A.shape[1], A.shape[0], spectral_norm(A),
                              frobenius_norm(A), float(A.double().var(unbiased=False)),
                              spectral_norm(A - A0)))
    return tuple(out)


def _measure(P: Profile, run, device: torch.device) -> SettingResult:
    D = load(P.dataset, max_train=P.max_train).to(device)
    net = run.model.to(device)
    m_train = margins(logits(net, D.train.X), D.train.y)
    m_test = margins(logits(net, D.test.X), D.test.y)
    H, opt = run.history, optimiser_config(run.config.optimiser)
    return SettingResult(
        profile=P.name, device=str(device), dataset=D.name, m=len(D.train), n_val=len(D.val),
        n_test=len(D.test), B=D.max_input_norm(), widths=tuple(run.config.widths),
        n_weights=sum(w.numel() for w in weight_matrices(net)),
        n_biases=sum(layer.bias.numel() for layer in linear_layers(net)),
        run_key=run.config.key, lr=opt.lr, batch_size=opt.batch_size,
        weight_decay=opt.weight_decay, momentum=opt.momentum, epochs=run.config.epochs,
        train_seconds=float(run.meta.get("train_seconds", math.nan)), epoch=H.epoch,
        train_loss=H.train_loss, running_train_err=tuple(1 - a for a in H.train_acc),
        val_err=tuple(1 - a for a in H.val_acc), test_errs=tuple(1 - a for a in H.test_acc),
        train_err=1 - H.final_train_acc, margin_q=P.margin_q,
        min_margin=min_margin(m_train), q_margin=margin_percentile(m_train, P.margin_q),
        median_margin=margin_percentile(m_train, 50.0),
        n_nonpositive=int((m_train <= 0).sum()), n_ties=int((m_train == 0).sum()),
        test_min_margin=min_margin(m_test), hist=_histogram(m_train, m_test),
        layers=_layer_norms(run.model.cpu(), run.model_at(0)),
        momentum_check=momentum_attribute_check(),
    )


def compute(P: Profile, *, progress: bool = True) -> SettingResult:
    """Train (or load) the profile's main network and measure it (cached)."""
    device = resolve_device(P.device)
    cfg = RunConfig.from_profile(P)
    run = train_cached(cfg, progress=progress)
    return cached_result("chapter-setting", _config(P, cfg, device),
                         lambda: _measure(P, run, device), SettingResult)


def claims(R: SettingResult) -> list[Claim]:
    """The setting reproduced; the authors' momentum attribute has no effect."""
    reproduced = criteria.all_of(
        criteria.at_most(R.test_err, 0.03, what="the test error", limit_what="the paper's regime"),
        criteria.within_factor(R.B, 28.0, 1.05, what="B",
                               reference_what="28, the largest norm of a 28 × 28 image in [−1, 1]"))
    reproduced = criteria.caveat_unless(
        reproduced, criteria.at_least(R.epochs, PAPER_EPOCHS, what="the epochs",
                                      limit_what="the paper's"),
        "trained for fewer epochs than the paper")
    return [
        Claim(
            id="setting-reproduced",
            statement="The setting: the paper's MNIST MLP 784-784×4-10 trained by plain SGD, "
                      "inputs in $[-1,1]$; margin loss with $f(x)[y] \\le \\gamma + "
                      "\\max_{j\\ne y} f(x)[j]$ (the paper prints the inequality reversed)",
            origin="paper", chapter=LABEL, evidence="fig-setting-curves",
            measured=(Value("test_err", "test error", R.test_err, ".2%"),
                      Value("b", "$B$", R.B, ".1f"),
                      Value("min_margin", "smallest training margin", R.min_margin, ".3g"),
                      Value("n_negative", "training samples with margin $\\le 0$",
                            R.n_nonpositive, ",d"),
                      Value("epochs", "epochs of plain SGD", R.epochs, "d")),
            authors="100 epochs; $B = 28$ by the input scaling",
            judgement=criteria.caveat(reproduced, "the margin inequality is used as corrected, "
                                                  "not as printed"),
        ),
        Claim(
            id="authors-plain-sgd",
            statement="The authors' runs were plain SGD: their `optimizer.momentum = 0.9` "
                      "is a Python attribute that torch's SGD never reads",
            origin="ours", chapter=LABEL, evidence="sec-setting-training",
            measured=(Value("attribute_diff", "largest weight difference, attribute vs plain SGD",
                            R.momentum_check.attribute_vs_plain, ".3g"),
                      Value("momentum_diff", "largest weight difference, momentum 0.9 vs plain SGD",
                            R.momentum_check.momentum_vs_plain, ".3g")),
            authors="momentum 0.9 in their configuration",
            judgement=criteria.all_of(
                criteria.equal(R.momentum_check.attribute_vs_plain, 0.0,
                               what="the weight difference with the attribute set",
                               target_what="zero"),
                criteria.at_least(R.momentum_check.momentum_vs_plain, 1e-6,
                                  what="the weight difference with real momentum",
                                  limit_what="a visible change")),
        ),
    ]
