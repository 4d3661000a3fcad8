"""The compression chapter: Arora et al.'s theorem, and rounding as the simplest compression.

:func:`compute` counts the dense network's parameters (Arora, Ge, Neyshabur & Zhang,
ICML 2018, Theorem 2.1: the term sqrt(q log r / m)), rounds the trained network to b bits
for each b of the profile, and measures each rounded network g against f: the per-logit
deviation of Arora et al.'s definition, the Euclidean change of the outputs (what the
book's perturbation bounds control), the largest drop of a training margin, and the
bound R^_{sqrt2 eps}(f) + sqrt(q log r / m) that the margin-transfer lemma
(:func:`margin_cost`) and the theorem give.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..bounds import compression_term
from ..cache import cached_result, sha256
from ..claims import Claim, Value, criteria
from ..data import load
from ..devices import resolve_device
from ..discretization import (check_bits_list, count_levels, discretize_model,
                              grid_spacing_for_bits)
from ..errors import ParameterError
from ..margins import error_rate, logits, margin_loss, margin_percentile, margins, min_margin
from ..models import linear_layers, weight_matrices
from ..perturbation import output_change_from_logits
from ..profiles import Profile
from ..runs import RunConfig, train_cached
from ..validate import check_int, check_real

__all__ = ["LABEL", "REQUIRES", "BITS", "margin_cost", "samples_for_term", "RoundedNetwork",
           "MarginChoice", "CompressionResult", "compute", "claims"]

LABEL = "chap-compression"
REQUIRES = ("setting",)

#: Bit widths of the rounding sweep, per profile.
BITS = {"smoke": (2, 3, 4, 6, 8), "quick": (2, 3, 4, 6, 8, 12), "full": tuple(range(2, 17))}
#: A float32 takes at most 2^32 values.
FLOAT_BITS = 32
#: The exercise: samples needed for the counting term to fall to TARGET_TERM at TARGET_BITS.
TARGET_TERM, TARGET_BITS = 0.1, 8
#: Points of the margin-loss curve R^_gamma(f) drawn against gamma.
N_TRADEOFF = 300


def margin_cost(eps_l2: float) -> float:
    """sqrt(2) eps: the most a training margin can drop when every output vector moves
    by at most eps in Euclidean norm (the book's margin-transfer lemma,
    ``lem-margin-transfer``).

    The margin f(x)[y] - max_{j != y} f(x)[j] is min_{j != y} <e_y - e_j, f(x)>, and
    |<e_y - e_j, f(x) - g(x)>| <= ||e_y - e_j||_2 ||f(x) - g(x)||_2 = sqrt(2) eps by
    Cauchy-Schwarz. So g misclassifies only samples whose f-margin is at most
    sqrt(2) eps: R^_0(g) <= R^_{sqrt2 eps}(f). (With Arora et al.'s per-logit deviation
    gamma, ||e_y - e_j||_1 = 2 gives 2 gamma instead.)
    """
    return math.sqrt(2.0) * check_real("eps_l2", eps_l2, minimum=0.0)


def samples_for_term(q: float, bits: int, target: float) -> float:
    """The m at which sqrt(q ln(2^bits) / m), the term of Arora et al.'s Theorem 2.1 with
    r = 2^bits, equals ``target``: m = q bits ln 2 / target^2."""
    q = check_real("q", q, minimum=0.0)
    bits = check_int("bits", bits, minimum=1)
    target = check_real("target", target, minimum=0.0)
    if target == 0.0:
        raise ParameterError("target must be > 0 (no finite m makes the term 0)")
    return q * bits * math.log(2.0) / target ** 2


@dataclass(frozen=True)
class RoundedNetwork:
    """The network f with every weight and bias rounded to its tensor's own b-bit grid.

    eps_sup: max over training samples and labels of |f(x)[y] - g(x)[y]| (Arora et al.'s
    deviation); eps_l2: max over training samples of ||f(x) - g(x)||_2; margin_drop: the
    largest drop of a training margin; gamma: sqrt(2) eps_l2, the margin the compression
    costs; margin_loss: R^_gamma(f); term: sqrt(q ln r / m) with r = 2^b - 1.
    """

    bits: int
    levels: int
    eps_sup: float
    eps_l2: float
    margin_drop: float
    train_err: float
    test_err: float
    gamma: float
    margin_loss: float
    term: float

    @property
    def r(self) -> int:
        """The values a parameter may take on the grid (zero included), fixed in advance."""
        return 2 ** self.bits - 1

    @property
    def bound(self) -> float:
        return self.margin_loss + self.term


@dataclass(frozen=True)
class MarginChoice:
    """A training margin used as gamma, and the fewest bits whose cost fits in it."""

    name: str
    gamma: float
    fewest_bits: int | None


@dataclass(frozen=True)
class CompressionResult:
    """Everything the compression chapter shows (errors are fractions; ties are errors)."""

    profile: str
    device: str
    m: int
    n_weights: int
    n_biases: int
    f_train_err: float
    f_test_err: float
    term_float: float
    term_float_delta: float
    term_one_bit: float
    q_max_8bit: int
    samples_needed: float
    rounded: tuple[RoundedNetwork, ...]
    choices: tuple[MarginChoice, ...]
    median_margin: float
    loss_at_median: float
    tradeoff_gamma: tuple[float, ...]
    tradeoff_loss: tuple[float, ...]

    @property
    def q(self) -> int:
        return self.n_weights + self.n_biases

    @property
    def best(self) -> RoundedNetwork:
        """The rounded network with the smallest bound."""
        return min(self.rounded, key=lambda g: g.bound)

    @property
    def per_bit(self) -> float:
        """Factor by which eps_l2 shrinks per extra bit (least squares on log2 eps)."""
        b = np.array([g.bits for g in self.rounded], dtype=float)
        slope = np.polyfit(b, np.log2([g.eps_l2 for g in self.rounded]), 1)[0]
        return float(2.0 ** -slope)

    @property
    def transfer_ratio(self) -> float:
        """Largest margin drop / sqrt(2) eps_l2 over the bit widths (the lemma: <= 1)."""
        return max(g.margin_drop / g.gamma for g in self.rounded)

    @property
    def transfer_ratio_sup(self) -> float:
        """Largest margin drop / 2 eps_sup over the bit widths (the per-logit form: <= 1)."""
        return max(g.margin_drop / (2 * g.eps_sup) for g in self.rounded)

    @property
    def n_vacuous(self) -> int:
        return sum(g.bound > 1 for g in self.rounded)


def _levels(g: torch.nn.Module, f: torch.nn.Module, bits: int) -> int:
    """The largest number of distinct values (zero included) of any rounded tensor of g."""
    return max(count_levels(pg.detach(), grid_spacing_for_bits(pf.detach(), bits))
               for pg, pf in zip(g.parameters(), f.parameters()))


def _round(net, bits, D, f_train, m_train, q) -> RoundedNetwork:
    g = discretize_model(net, bits, biases=True)
    g_train = logits(g, D.train.X)
    change = output_change_from_logits(f_train, g_train, D.train.y)
    gamma = margin_cost(change.max_l2_change)
    return RoundedNetwork(
        bits=bits, levels=_levels(g, net, bits), eps_sup=change.max_sup_change,
        eps_l2=change.max_l2_change,
        margin_drop=float((m_train - margins(g_train, D.train.y)).max()),
        train_err=error_rate(g_train, D.train.y), test_err=error_rate(logits(g, D.test.X), D.test.y),
        gamma=gamma, margin_loss=margin_loss(m_train, gamma),
        term=compression_term(q, 2 ** bits - 1, len(D.train)))


def _choices(m_train: torch.Tensor, q_pct: float, rounded) -> tuple[MarginChoice, ...]:
    out = []
    for name, gamma in (("minimum", min_margin(m_train)),
                        ("1st percentile", margin_percentile(m_train, 1.0)),
                        (f"{q_pct:g}th percentile", margin_percentile(m_train, q_pct))):
        fits = [g.bits for g in rounded if gamma > 0 and g.gamma <= gamma]
        out.append(MarginChoice(name, gamma, min(fits) if fits else None))
    return tuple(out)


def _measure(P: Profile, run, bits: list[int], device: torch.device, progress: bool):
    D = load(P.dataset, max_train=P.max_train).to(device)
    net = run.model.to(device)
    m = len(D.train)
    f_train = logits(net, D.train.X)
    m_train = margins(f_train, D.train.y)
    n_weights = sum(w.numel() for w in weight_matrices(net))
    q = n_weights + sum(layer.bias.numel() for layer in linear_layers(net))
    rounded = tuple(_round(net, b, D, f_train, m_train, q)
                    for b in tqdm(bits, desc="rounding", disable=not progress, leave=False))
    positive = m_train[m_train > 0]
    lo = max(float(positive.min()), 1e-4) if len(positive) else 1e-4
    hi = 1.2 * max(float(m_train.max()), max(g.gamma for g in rounded))
    grid = np.geomspace(lo, max(hi, 2 * lo), N_TRADEOFF)
    median = margin_percentile(m_train, 50.0)
    return CompressionResult(
        profile=P.name, device=str(device), m=m, n_weights=n_weights, n_biases=q - n_weights,
        f_train_err=error_rate(f_train, D.train.y),
        f_test_err=error_rate(logits(net, D.test.X), D.test.y),
        term_float=compression_term(q, 2 ** FLOAT_BITS, m),
        term_float_delta=compression_term(q, 2 ** FLOAT_BITS, m, delta=0.05),
        term_one_bit=compression_term(q, 2, m), q_max_8bit=int(m / (8 * math.log(2))),
        samples_needed=samples_for_term(q, TARGET_BITS, TARGET_TERM), rounded=rounded,
        choices=_choices(m_train, P.margin_q, rounded), median_margin=median,
        loss_at_median=margin_loss(m_train, median), tradeoff_gamma=tuple(grid.tolist()),
        tradeoff_loss=tuple(margin_loss(m_train, float(g)) for g in grid))


def compute(P: Profile, *, bits: list[int] | None = None,
            progress: bool = True) -> CompressionResult:
    """Round the profile's main network to each bit width and measure the bounds (cached).

    ``bits``: the bit widths (each in [2, 24]); default :data:`BITS` of the profile.
    """
    bits = check_bits_list(list(BITS[P.name]) if bits is None else bits)
    device = resolve_device(P.device)
    cfg = RunConfig.from_profile(P)
    run = train_cached(cfg, progress=progress)
    config = {"profile": dataclasses.asdict(P), "run": cfg.key, "bits": bits,
              "device": device.type, "chapter": sha256(Path(__file__).read_bytes())[:16]}
    return cached_result("chapter-compression", config,
                         lambda: _measure(P, run, bits, device, progress), CompressionResult)


def claims(R: CompressionResult) -> list[Claim]:
    """Arora et al.'s theorem needs compression; the margin-transfer lemma holds."""
    best = R.best
    return [
        Claim(
            id="arora-compression",
            statement="Compression implies generalization {cite:p}`arora2018stronger`; the "
                      "dense network needs compressing",
            origin="paper", chapter=LABEL, evidence="tab-compress-bound",
            measured=(Value("term32", "counting term of the dense network $\\sqrt{q\\log r/m}$",
                            R.term_float, ".3g"),
                      Value("best_bound", "best bound after rounding", best.bound, ".3g"),
                      Value("best_test_err", "test error of that rounded network",
                            best.test_err, ".4f"),
                      Value("samples_needed", "samples for a term of 0.1 at 8 bits",
                            R.samples_needed, ".3g")),
            judgement=criteria.all_of(
                criteria.at_least(R.term_float, 1.0, what="the dense network's counting term",
                                  limit_what="the value above which a bound on an error rate "
                                             "says nothing"),
                criteria.bound_vs_error(best.bound, best.test_err,
                                        what="the best bound after rounding",
                                        error_what="the rounded network's test error")),
        ),
        Claim(
            id="margin-transfer",
            statement="An output change of Euclidean norm $\\varepsilon$ moves every margin by "
                      "at most $\\sqrt2\\,\\varepsilon$, so $\\Rhat_0(g) \\le "
                      "\\Rhat_{\\sqrt2\\varepsilon}(f)$ (the book's margin-transfer lemma)",
            origin="ours", chapter=LABEL, evidence="fig-compress-rounding",
            measured=(Value("ratio_l2", "largest margin drop / $\\sqrt2\\,\\varepsilon$",
                            R.transfer_ratio, ".3f"),
                      Value("ratio_sup", "largest margin drop / $2\\gamma$ (per-logit form)",
                            R.transfer_ratio_sup, ".3f"),
                      Value("n_bits", "bit widths checked", len(R.rounded), "d")),
            judgement=criteria.at_most(R.transfer_ratio, 1.0 + 1e-9,
                                       what="the largest margin drop / √2 ε",
                                       limit_what="1 (the lemma)"),
        ),
    ]
