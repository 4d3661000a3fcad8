"""Generalization bounds by compression: Arora et al.'s theorem and the paper's bound.

Every function here is small and pure: it takes numbers (and, for the paper's bound,
the pruned weight matrices and the training margins) and returns a :class:`Bound`.
Nothing is trained or pruned here; the counts (sketch sizes from
:mod:`prunebounds.sketching`, description lengths from :mod:`prunebounds.counting`)
come from their modules. The norm-based baselines are in :mod:`prunebounds.baselines`,
every bound of one network at once and sweeps over d in :mod:`prunebounds.sweeps`.

Conventions used throughout
---------------------------
* ``m`` is the number of training samples, ``gamma`` the margin, ``delta`` the failure
  probability. Logarithms are natural logarithms (so description lengths are in nats).
* The empirical margin loss R^_gamma is the fraction of training margins ``<= gamma``
  (:func:`prunebounds.margins.margin_loss`); every bound below is a bound on the 0-1
  test error, so a value above 1 is *vacuous*.
* A full bound is returned as a :class:`Bound`: ``value`` is the sum of the additive
  ``terms`` (always including ``"empirical_margin_loss"``), ``details`` holds the
  ingredients (norm products, parameter counts) that are not added.
* Biases are ignored, as in the cited papers and in the authors' code: only the weight
  matrices enter.

Which constants are kept is stated function by function. Where a paper states its
result with O(.) and no constant, we use constant 1 and say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .counting import authors_q, sparse_count_nats
from .errors import ParameterError
from .margins import margin_loss
from .sketching import sketch_sizes
from .validate import (check_delta, check_int, check_loss, check_m, check_r,
                       check_real)

__all__ = [
    "Bound",
    "make_bound",
    "compression_term",
    "compression_bound",
    "sketch_bound",
    "authors_sketch_bound",
    "counting_bound",
    "paper_bound",
    "dense_count_bound",
    "sparse_count_bound",
]


# --------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bound:
    """A bound's value and how it is made up.

    Attributes:
        name: short identifier (``"bartlett2017"``, ``"sketch"``, ...).
        value: the bound; equals ``sum(terms.values())``.
        terms: the additive parts, e.g. ``{"empirical_margin_loss": ..., "complexity":
            ...}``; they sum to ``value``.
        details: ingredients that are not added (norm products, q, widths).
        on_probability: ``True`` when ``value`` bounds a 0-1 error (so > 1 is vacuous);
            ``False`` for the authors' unnormalised complexity measures.
    """

    name: str
    value: float
    terms: dict[str, float] = field(default_factory=dict)
    details: dict[str, float] = field(default_factory=dict)
    on_probability: bool = True

    @property
    def vacuous(self) -> bool | None:
        """``True`` if the bound exceeds 1 (says nothing about a 0-1 error)."""
        return (self.value > 1.0) if self.on_probability else None

    @property
    def dominant_term(self) -> str:
        """The name of the largest additive term (the one to blame for vacuity)."""
        return max(self.terms, key=lambda k: self.terms[k]) if self.terms else ""

    def __float__(self) -> float:
        return float(self.value)


def make_bound(name: str, terms: dict[str, float], details: dict[str, float] | None = None,
               on_probability: bool = True) -> Bound:
    """A :class:`Bound` whose value is the exact (``math.fsum``) sum of ``terms``."""
    return Bound(name=name, value=float(math.fsum(terms.values())),
                 terms={k: float(v) for k, v in terms.items()},
                 details={k: float(v) for k, v in (details or {}).items()},
                 on_probability=on_probability)


# --------------------------------------------------------------------------------------
# Arora et al. (2018): compression implies generalization
# --------------------------------------------------------------------------------------

def compression_term(q: float, r: int, m: int, delta: float | None = None) -> float:
    """The complexity term of Arora, Ge, Neyshabur & Zhang (ICML 2018), Theorem 2.1.

    Their theorem: if f is (gamma, S)-compressible into g_A, A ranging over q parameters
    that take at most r values each, then w.h.p. L_0(g_A) <= R^_gamma(f) + O(sqrt(q log
    r / m)).

    * ``delta=None``: returns sqrt(q ln r / m), the O-term with constant 1.
    * ``delta`` given: returns the explicit term the proof yields,
      sqrt((q ln r + ln(1/delta)) / (2m)): one-sided Hoeffding for each of the r^q
      compressed classifiers, P[L_0 - R^_0 >= t] <= exp(-2 m t^2), and a union bound.
      (Note the 1/2: for large q this is *smaller* than the constant-1 form.)

    ``q`` may be fractional (an expected count).
    """
    q = check_real("q (number of parameters)", q, minimum=0.0)
    r = check_r(r)
    m = check_m(m)
    if delta is None:
        return math.sqrt(q * math.log(r) / m)
    d = check_delta(delta)
    return math.sqrt((q * math.log(r) + math.log(1.0 / d)) / (2.0 * m))


def compression_bound(empirical_margin_loss: float, q: float, r: int, m: int,
                      delta: float | None = None) -> Bound:
    """Arora et al. (2018), Theorem 2.1: R^_gamma(f) + :func:`compression_term`.

    The caller supplies R^_gamma(f) at the margin the compression respects. (If the
    compressed outputs differ from f's by at most eps entrywise, a margin above 2 eps
    is what guarantees that g classifies correctly: a margin can shrink by eps from
    each of the two logits it compares.)
    """
    return make_bound("compression", {
        "empirical_margin_loss": check_loss(empirical_margin_loss),
        "complexity": compression_term(q, r, m, delta),
    }, {"q": q, "r": r, "m": m})


# --------------------------------------------------------------------------------------
# The paper (Guha, Dubey & Huo): sketching and counting
# --------------------------------------------------------------------------------------

def sketch_bound(empirical_margin_loss: float, k_list: Sequence[int], r: int, m: int,
                 delta: float | None = None) -> Bound:
    """The paper's Theorem 5.2, as reconstructed: R^_gamma + sqrt(sum_l k_l^2 log r / m).

    Each pruned layer l is stored as its k_l x k_l sketch (Dasarathy et al. 2015), so the
    compressed network has q = sum_l k_l^2 parameters; Arora et al.'s Theorem 2.1 then
    gives the term sqrt(q ln r / m) (constant 1, :func:`compression_term`; pass
    ``delta`` for the explicit Hoeffding form). The sketch matrices live in the helper
    string and are not counted. ``details`` also reports the term without the log r
    factor, sqrt(q / m), and the bound with it, since the paper's statement is O(.).
    """
    ks = [check_int("k_l (sketch size)", k, minimum=1) for k in k_list]
    if not ks:
        raise ParameterError("k_list must name the sketch size of at least one layer")
    loss = check_loss(empirical_margin_loss)
    m = check_m(m)
    q = float(sum(k * k for k in ks))
    with_log = compression_term(q, r, m, delta)
    without_log = math.sqrt(q / m)
    return make_bound("sketch", {"empirical_margin_loss": loss, "complexity": with_log}, {
        "q": q, "r": check_r(r), "log_r": math.log(r),
        "complexity_without_log_r": without_log,
        "value_without_log_r": loss + without_log,
    })


def authors_sketch_bound(empirical_margin_loss: float, layer_shapes, keep_fraction,
                         m: int) -> Bound:
    """The bound the authors' code reports: R^ + sqrt(q / m), q = sum_l d1 d2 chi log^2 max(d1, d2).

    Transcribed from the authors' experiment code (``compute_best_generalization_bound``):
    chi is the expected kept fraction (a scalar for every layer, or one per layer),
    the logarithm is natural, there is no log r factor, no constant and no delta term.
    ``layer_shapes`` are (out, in) pairs or weight tensors (the formula is symmetric).
    The authors evaluate R^ at their ``needed_margin``; pass that loss here.
    """
    per_layer = authors_q(layer_shapes, keep_fraction)
    m = check_m(m)
    q = math.fsum(per_layer)
    details = {"q": q}
    details.update({f"q_layer{l}": v for l, v in enumerate(per_layer, start=1)})
    return make_bound("authors_sketch", {
        "empirical_margin_loss": check_loss(empirical_margin_loss),
        "complexity": math.sqrt(q / m),
    }, details)


def counting_bound(name: str, empirical_margin_loss: float, q_nats: float, m: int,
                   delta: float, details: Mapping[str, float] | None = None) -> Bound:
    """Arora et al.'s Theorem 2.1 with its confidence term written out.

    For a compressed class of exp(q_nats) classifiers fixed before the data (q
    parameters with r values each: q_nats = q ln r), one-sided Hoeffding and a union
    bound give, with probability >= 1 - delta, for every member g,
    L_0(g) <= R^_0(g) + sqrt((q_nats + ln(1/delta)) / (2m)), and R^_0(g) <= R^_gamma(f)
    when g is a gamma-compression of f (see :func:`compression_bound`).

    The square root is split into two additive terms whose sum is exactly that value:
    ``complexity`` = sqrt(q_nats / (2m)) (what the description length costs) and
    ``confidence`` = sqrt((q_nats + ln(1/delta)) / (2m)) - sqrt(q_nats / (2m)) (what the
    failure probability adds on top). ``details`` records q_nats, delta and the
    unsplit square root ``sqrt_term``.
    """
    q = check_real("q_nats (description length in nats)", q_nats, minimum=0.0)
    m = check_m(m)
    d = check_delta(delta)
    complexity = math.sqrt(q / (2.0 * m))
    total = math.sqrt((q + math.log(1.0 / d)) / (2.0 * m))
    info = {"q_nats": q, "delta": d, "m": m, "sqrt_term": total}
    info.update(details or {})
    return make_bound(name, {"empirical_margin_loss": check_loss(empirical_margin_loss),
                        "complexity": complexity, "confidence": total - complexity}, info)


def paper_bound(train_margins, needed_margin: float, pruned_weights, *, r: int = 256,
                delta: float = 0.05, c: float = 1.0) -> Bound:
    """The paper's bound (Theorem 5.2, reconstructed), assembled from its parts.

    L_0(g) <= R^_eps(f) + sqrt((q ln r + ln(1/delta)) / (2m)),   q = sum_l k_out^l k_in^l,

    where g is the pruned network, eps = ``needed_margin`` is the bound on the change of
    the outputs that pruning causes (:func:`prunebounds.perturbation.needed_margin`,
    the authors' quantity), R^_eps(f) the fraction of the m = len(``train_margins``)
    training margins of the *unpruned* network f that are <= eps, and k^l the sketch
    sizes of :func:`prunebounds.sketching.sketch_sizes` (constant ``c``). The compressed network is stored
    as its sketches with r values per entry; the sketching matrices are the helper
    string. The confidence term is written out as in :func:`counting_bound`.

    ``details`` also holds:

    * ``value_without_log_r``: the same bound with ln r replaced by 1 (the form the
      authors evaluate, who drop the discretization), and its ``complexity_without_log_r``;
    * ``loss_at_sqrt2_margin`` and ``value_at_sqrt2_margin``: R^ at sqrt(2) eps. The
      perturbation bound controls the Euclidean norm of the output change, and a margin
      f(x)[y] - f(x)[j] can move by up to sqrt(2) times it, so this is the loss a
      careful proof pays (ours); the authors use R^_eps;
    * ``q``, ``log_r``, ``n_capped`` (layers where the cap binds) and, per layer,
      ``k_layer<l>`` (the theory size) and ``q_layer<l>``.

    The rounding error of the discretization (which must also fit inside the margin)
    is not added to ``needed_margin`` here.
    """
    mg = torch.as_tensor(train_margins).detach().to(torch.float64).flatten()
    if mg.numel() == 0:
        raise ParameterError("train_margins must hold the margin of every training sample")
    eps = check_real("needed_margin", needed_margin, minimum=0.0)
    r = check_r(r)
    m = int(mg.numel())
    sizes = sketch_sizes(pruned_weights, c)
    q = float(sum(s.n_params for s in sizes))
    loss = margin_loss(mg, eps)
    details = {"needed_margin": eps, "q": q, "log_r": math.log(r), "r": r,
               "n_capped": float(sum(s.capped for s in sizes))}
    for l, s in enumerate(sizes, start=1):
        details[f"k_layer{l}"] = s.k_theory
        details[f"q_layer{l}"] = float(s.n_params)
    b = counting_bound("paper", loss, q * math.log(r), m, delta, details)
    plain = counting_bound("paper", loss, q, m, delta)
    loss2 = margin_loss(mg, math.sqrt(2.0) * eps)
    extra = {"complexity_without_log_r": plain.terms["complexity"],
             "value_without_log_r": plain.value,
             "loss_at_sqrt2_margin": loss2,
             "value_at_sqrt2_margin": b.value - loss + loss2}
    return Bound(b.name, b.value, b.terms, {**b.details, **extra})


def dense_count_bound(empirical_margin_loss: float, n_params: int, r: int, m: int,
                      delta: float | None = None) -> Bound:
    """Arora et al.'s Theorem 2.1 with q = every parameter: no compression at all.

    R^_gamma + sqrt(n_params ln r / m) (constant 1; explicit Hoeffding form with ``delta``).
    The baseline any compression argument has to beat.
    """
    n = check_int("n_params", n_params, minimum=1)
    b = compression_bound(empirical_margin_loss, n, r, m, delta)
    return Bound("dense_count", b.value, b.terms, b.details)


def sparse_count_bound(empirical_margin_loss: float, nnz_per_layer: Sequence[int],
                       layer_shapes, r: int, m: int, delta: float | None = None) -> Bound:
    """The paper's Lemma D.1 (plain counting of a sparse network), via Arora et al.

    Describing layer l with alpha_l non-zeros among its d1 d2 entries costs
    ln C(d1 d2, alpha_l) nats for the positions plus alpha_l ln r for the values, so
    the number of distinct compressed networks is exp(q_nats) with
    q_nats = sum_l [ln C(d1 d2, alpha_l) + alpha_l ln r]. The union bound of Theorem 2.1
    then gives the term sqrt(q_nats / m) (constant 1), or with ``delta`` the explicit
    sqrt((q_nats + ln(1/delta)) / (2m)).
    """
    count = sparse_count_nats(nnz_per_layer, layer_shapes, r)
    m = check_m(m)
    q_nats = count.total
    if delta is None:
        term = math.sqrt(q_nats / m)
    else:
        term = math.sqrt((q_nats + math.log(1.0 / check_delta(delta))) / (2.0 * m))
    return make_bound("sparse_count", {
        "empirical_margin_loss": check_loss(empirical_margin_loss),
        "complexity": term,
    }, {"q_nats": q_nats, "positions_nats": count.positions_nats,
        "values_nats": count.values_nats, "nnz": float(sum(nnz_per_layer))})
