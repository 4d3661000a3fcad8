"""Generalization bounds: the paper's, its baselines', and the authors' simplified ones.

Every function here is small and pure: it takes weight matrices (torch tensors in the
PyTorch convention, ``out x in``, i.e. the paper's A^l acting on column vectors
x -> A^l x) and numbers, and returns numbers. Nothing is trained or pruned here; the
counts that other modules produce (sketch sizes, non-zeros, keep fractions) come in as
arguments. The one exception is :func:`bounds_over_d`, the sweep over the pruning
parameter that the bound chapter draws and ``benchmarks/bounds_sweep.py`` times.

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
from typing import NamedTuple

import torch
from scipy import stats
from scipy.special import gammaln

from .errors import ParameterError
from .margins import margin_loss
from .models import check_chain, weight_matrices
from .profiles import check_int, check_real
from .random_matrices import spectral_norm as _rm_spectral_norm
from .sketching import theory_sketch_size
from .sparsity import nonzeros_per_col, nonzeros_per_row

__all__ = [
    "Bound",
    "KendallTau",
    "spectral_norm",
    "frobenius_norm",
    "norm_21",
    "bartlett_21",
    "authors_lpq_norm",
    "input_norms",
    "log_binomial",
    "compression_term",
    "compression_bound",
    "sketch_bound",
    "authors_sketch_bound",
    "counting_bound",
    "SketchSize",
    "sketch_sizes",
    "paper_bound",
    "dense_count_bound",
    "sparse_count_bound",
    "spectral_complexity",
    "neyshabur2015_bound",
    "bartlett2017_bound",
    "neyshabur2018_bound",
    "authors_neyshabur2015",
    "authors_bartlett2017",
    "authors_neyshabur2018",
    "kendall_tau",
    "all_bounds",
    "bounds_table",
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


def _make(name: str, terms: dict[str, float], details: dict[str, float] | None = None,
          on_probability: bool = True) -> Bound:
    return Bound(name=name, value=float(math.fsum(terms.values())),
                 terms={k: float(v) for k, v in terms.items()},
                 details={k: float(v) for k, v in (details or {}).items()},
                 on_probability=on_probability)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

def _gamma(gamma) -> float:
    g = check_real("gamma", gamma)
    if g <= 0:
        raise ParameterError(
            f"gamma must be > 0, got {g}: margin bounds need a positive margin "
            "(a network with a non-positive minimum margin misclassifies a training "
            "sample; use a positive margin percentile instead)"
        )
    return g


def _m(m) -> int:
    return check_int("m (number of training samples)", m, minimum=1)


def _delta(delta) -> float:
    d = check_real("delta", delta)
    if not 0.0 < d < 1.0:
        raise ParameterError(f"delta must lie in the open interval (0, 1), got {d}")
    return d


def _loss(x) -> float:
    return check_real("empirical_margin_loss", x, minimum=0.0, maximum=1.0)


def _r(r) -> int:
    return check_int("r (values per parameter)", r, minimum=2)


def _weights(weights, name: str = "weights", float64: bool = True) -> list[torch.Tensor]:
    """Weight matrices as float64 CPU tensors (``float64=False``: as given), checked to
    be 2-D, finite and chaining."""
    if isinstance(weights, torch.Tensor) or not isinstance(weights, Sequence):
        raise ParameterError(
            f"{name} must be a list of 2-D weight matrices (out x in), got {type(weights).__name__}"
        )
    out = []
    for l, w in enumerate(weights, start=1):
        t = torch.as_tensor(w).detach()
        if t.ndim != 2:
            raise ParameterError(
                f"{name}: layer {l} has shape {tuple(t.shape)}; every weight must be a "
                "2-D (out x in) matrix"
            )
        if float64:
            t = t.to(dtype=torch.float64, device="cpu")
        # the sum is finite unless an entry is inf/nan (or it overflows): a quick first test
        if not (bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())):
            raise ParameterError(f"{name}: layer {l} has non-finite entries")
        out.append(t)
    check_chain(out)
    return out


def _nonzero_spectral(ws: list[torch.Tensor], given=None) -> list[float]:
    """Spectral norms of ``ws`` (or the precomputed ``given`` ones), all checked > 0."""
    if given is None:
        s = [spectral_norm(w) for w in ws]
    else:
        s = [check_real("spectral norm", v, minimum=0.0) for v in given]
        if len(s) != len(ws):
            raise ParameterError(
                f"spectral_norms has {len(s)} entries but there are {len(ws)} layers"
            )
    for l, v in enumerate(s, start=1):
        if v == 0.0:
            raise ParameterError(
                f"layer {l} is all zeros (spectral norm 0): the network is constant and "
                "the normalised bounds are undefined"
            )
    return s


def _width(ws: list[torch.Tensor], width) -> int:
    """The largest dimension of any weight matrix (input dimension included)."""
    w_max = max(max(w.shape) for w in ws)
    if width is None:
        return w_max
    return check_int("width", width, minimum=1)


# --------------------------------------------------------------------------------------
# Norms
# --------------------------------------------------------------------------------------

def spectral_norm(A: torch.Tensor) -> float:
    """||A||_2: the largest singular value of ``A``, in float64.

    One implementation serves the whole package:
    :func:`prunebounds.random_matrices.spectral_norm` with Lanczos bidiagonalisation
    (ARPACK, fixed start vector; it falls back to a full SVD for tiny matrices or if
    ARPACK does not converge).
    """
    t = torch.as_tensor(A).detach()
    if t.numel() == 0:
        return 0.0
    return _rm_spectral_norm(t, "lanczos")


def frobenius_norm(A: torch.Tensor) -> float:
    """||A||_F = sqrt(sum_ij A_ij^2)."""
    t = torch.as_tensor(A).detach().to(dtype=torch.float64, device="cpu")
    return float(torch.linalg.matrix_norm(t, ord="fro"))


def norm_21(A: torch.Tensor) -> float:
    """The (2,1) matrix norm ||A||_{2,1} = sum over the COLUMNS j of ||A[:, j]||_2.

    This is Bartlett, Foster & Telgarsky's (2017) definition ||A||_{p,q} =
    ||(||A_{:,1}||_p, ..., ||A_{:,n}||_p)||_q with p = 2, q = 1. Their bound uses it on
    the *transpose*, ||A^T||_{2,1}; see :func:`bartlett_21`.
    """
    t = torch.as_tensor(A).detach().to(dtype=torch.float64, device="cpu")
    return float(torch.linalg.vector_norm(t, ord=2, dim=0).sum())


def bartlett_21(A: torch.Tensor, M: torch.Tensor | None = None) -> float:
    """||A^T - M^T||_{2,1} as it enters Bartlett et al. (2017), Theorem 1.1.

    With A acting on column vectors (x -> A x, PyTorch's ``out x in`` weight), the
    columns of A^T are the rows of A, so this is the sum over output units of the
    2-norm of each unit's incoming weight vector (minus its reference): sum_i
    ||A[i, :] - M[i, :]||_2. ``M=None`` means the zero reference matrix.
    """
    t = torch.as_tensor(A).detach().to(dtype=torch.float64, device="cpu")
    if M is not None:
        ref = torch.as_tensor(M).detach().to(dtype=torch.float64, device="cpu")
        if ref.shape != t.shape:
            raise ParameterError(
                f"reference matrix has shape {tuple(ref.shape)}, weight has {tuple(t.shape)}"
            )
        t = t - ref
    return norm_21(t.T)


def authors_lpq_norm(A: torch.Tensor, p: float, q: float) -> float:
    """The authors' ``lpq_norm(A, p, q)``, transcribed: (sum_j ||(|A[:, j]|^p)||_2^(q/p))^(1/q).

    It takes the Euclidean norm of each column of |A|^p (whatever p is), raises it to
    q/p, sums over columns and takes the 1/q-th root. For (p, q) = (1, 2), the call in
    the authors' Bartlett baseline, this is (sum_j ||A[:, j]||_2^2)^(1/2) = ||A||_F: the
    Frobenius norm, not Bartlett's (2,1) norm.
    """
    t = torch.as_tensor(A).detach().to(dtype=torch.float64, device="cpu")
    cols = torch.linalg.vector_norm(t.abs() ** p, ord=2, dim=0)
    return float((cols ** (q / p)).sum() ** (1.0 / q))


def input_norms(X: torch.Tensor) -> dict[str, float]:
    """Norms of a data set ``X`` (n samples, any trailing shape, flattened per sample).

    Returns ``{"max": B = max_i ||x_i||_2, "fro": ||X||_F = sqrt(sum_i ||x_i||_2^2),
    "rms": sqrt(mean_i ||x_i||_2^2), "n": n}``. B is the input radius of Neyshabur et al.
    and of the perturbation bound; ||X||_F is what Bartlett et al.'s bound uses.
    """
    t = torch.as_tensor(X).detach().to(dtype=torch.float64)
    if t.ndim < 1 or t.shape[0] == 0:
        raise ParameterError("X must hold at least one sample (first axis = samples)")
    norms = torch.linalg.vector_norm(t.reshape(t.shape[0], -1), ord=2, dim=1)
    sq = float((norms ** 2).sum())
    return {"max": float(norms.max()), "fro": math.sqrt(sq),
            "rms": math.sqrt(sq / t.shape[0]), "n": float(t.shape[0])}


def log_binomial(n: int, k: int) -> float:
    """ln C(n, k) via log-gamma (exact to rounding for huge n)."""
    n = check_int("n", n, minimum=0)
    k = check_int("k", k, minimum=0)
    if k > n:
        raise ParameterError(f"cannot choose {k} entries out of {n}")
    return float(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))


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
    r = _r(r)
    m = _m(m)
    if delta is None:
        return math.sqrt(q * math.log(r) / m)
    d = _delta(delta)
    return math.sqrt((q * math.log(r) + math.log(1.0 / d)) / (2.0 * m))


def compression_bound(empirical_margin_loss: float, q: float, r: int, m: int,
                      delta: float | None = None) -> Bound:
    """Arora et al. (2018), Theorem 2.1: R^_gamma(f) + :func:`compression_term`.

    The caller supplies R^_gamma(f) at the margin the compression respects. (If the
    compressed outputs differ from f's by at most eps entrywise, a margin above 2 eps
    is what guarantees that g classifies correctly: a margin can shrink by eps from
    each of the two logits it compares.)
    """
    return _make("compression", {
        "empirical_margin_loss": _loss(empirical_margin_loss),
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
    loss = _loss(empirical_margin_loss)
    m = _m(m)
    q = float(sum(k * k for k in ks))
    with_log = compression_term(q, r, m, delta)
    without_log = math.sqrt(q / m)
    return _make("sketch", {"empirical_margin_loss": loss, "complexity": with_log}, {
        "q": q, "r": _r(r), "log_r": math.log(r),
        "complexity_without_log_r": without_log,
        "value_without_log_r": loss + without_log,
    })


def _shapes(layer_shapes) -> list[tuple[int, int]]:
    shapes = []
    for s in layer_shapes:
        s = tuple(s.shape) if isinstance(s, torch.Tensor) else tuple(s)
        if len(s) != 2:
            raise ParameterError(f"a layer shape must be (out, in), got {s}")
        shapes.append((check_int("layer dimension", s[0], minimum=1),
                       check_int("layer dimension", s[1], minimum=1)))
    if not shapes:
        raise ParameterError("layer_shapes must name at least one layer")
    return shapes


def authors_sketch_bound(empirical_margin_loss: float, layer_shapes, keep_fraction,
                         m: int) -> Bound:
    """The bound the authors' code reports: R^ + sqrt(q / m), q = sum_l d1 d2 chi log^2 max(d1, d2).

    Transcribed from the authors' experiment code (``compute_best_generalization_bound``):
    chi is the expected kept fraction (a scalar for every layer, or one per layer),
    the logarithm is natural, there is no log r factor, no constant and no delta term.
    ``layer_shapes`` are (out, in) pairs or weight tensors (the formula is symmetric).
    The authors evaluate R^ at their ``needed_margin``; pass that loss here.
    """
    shapes = _shapes(layer_shapes)
    if isinstance(keep_fraction, Sequence) and not isinstance(keep_fraction, str):
        chis = [check_real("keep_fraction", c, minimum=0.0, maximum=1.0) for c in keep_fraction]
        if len(chis) != len(shapes):
            raise ParameterError(
                f"keep_fraction has {len(chis)} entries but there are {len(shapes)} layers"
            )
    else:
        chis = [check_real("keep_fraction", keep_fraction, minimum=0.0, maximum=1.0)] * len(shapes)
    m = _m(m)
    per_layer = [d1 * d2 * c * math.log(max(d1, d2)) ** 2 for (d1, d2), c in zip(shapes, chis)]
    q = math.fsum(per_layer)
    details = {"q": q}
    details.update({f"q_layer{l}": v for l, v in enumerate(per_layer, start=1)})
    return _make("authors_sketch", {
        "empirical_margin_loss": _loss(empirical_margin_loss),
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
    m = _m(m)
    d = _delta(delta)
    complexity = math.sqrt(q / (2.0 * m))
    total = math.sqrt((q + math.log(1.0 / d)) / (2.0 * m))
    info = {"q_nats": q, "delta": d, "m": m, "sqrt_term": total}
    info.update(details or {})
    return _make(name, {"empirical_margin_loss": _loss(empirical_margin_loss),
                        "complexity": complexity, "confidence": total - complexity}, info)


@dataclass(frozen=True)
class SketchSize:
    """The sketch of one pruned layer (Dasarathy et al. 2015), as the paper counts it.

    Attributes:
        shape: the layer's (out, in) shape.
        j: the largest number of non-zeros in any row or column of the pruned layer.
        p: the side of the square matrix the layer is padded to, max(out, in).
        k_theory: c sqrt(j p) ln p (:func:`prunebounds.sketching.theory_sketch_size`).
        k_out, k_in: the sketch's sides, ceil(k_theory) capped at out and in.
        capped: True if the cap binds on either side (the theory size exceeds the
            layer's dimension there, so that side is not compressed at all).
        n_params: k_out * k_in, the numbers stored for this layer.
    """

    shape: tuple[int, int]
    j: int
    p: int
    k_theory: float
    k_out: int
    k_in: int
    capped: bool
    n_params: int


def sketch_sizes(pruned_weights, c: float = 1.0) -> list[SketchSize]:
    """The sketch size of every pruned layer: k = c sqrt(j p) ln p, capped at the layer.

    Dasarathy, Shah, Bhaskar & Nowak (2015) recover a p x p matrix with at most j
    non-zeros in every row and column from a k x k sketch A X B^T once
    k = O(sqrt(j p) log p). The O(.) has no explicit constant; ``c`` (default 1) stands
    for it. A rectangular out x in layer is treated as padded with zeros to p x p,
    p = max(out, in) (padding adds no non-zeros), and j is the *realized* maximum of
    the non-zeros per row and per column of the pruned layer. A sketch side larger
    than the layer's own dimension is pointless (storing that side unsketched costs
    less), so each side is capped: k_out = min(ceil(k), out), k_in = min(ceil(k), in).
    A layer whose both sides are capped is stored densely.
    """
    ws = _weights(pruned_weights, "pruned_weights", float64=False)  # only counts non-zeros
    c = check_real("c (sketch-size constant)", c, minimum=0.0)
    out = []
    for w in ws:
        n_out, n_in = (int(v) for v in w.shape)
        j = int(max(nonzeros_per_row(w).max(), nonzeros_per_col(w).max()))
        p = max(n_out, n_in)
        k = theory_sketch_size(j, p, c)
        k_int = math.ceil(k - 1e-9)
        k_out, k_in = min(k_int, n_out), min(k_int, n_in)
        out.append(SketchSize((n_out, n_in), j, p, float(k), k_out, k_in,
                              bool(k_int > n_out or k_int > n_in), k_out * k_in))
    return out


def paper_bound(train_margins, needed_margin: float, pruned_weights, *, r: int = 256,
                delta: float = 0.05, c: float = 1.0) -> Bound:
    """The paper's bound (Theorem 5.2, reconstructed), assembled from its parts.

    L_0(g) <= R^_eps(f) + sqrt((q ln r + ln(1/delta)) / (2m)),   q = sum_l k_out^l k_in^l,

    where g is the pruned network, eps = ``needed_margin`` is the bound on the change of
    the outputs that pruning causes (:func:`prunebounds.perturbation.needed_margin`,
    the authors' quantity), R^_eps(f) the fraction of the m = len(``train_margins``)
    training margins of the *unpruned* network f that are <= eps, and k^l the sketch
    sizes of :func:`sketch_sizes` (constant ``c``). The compressed network is stored
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
    r = _r(r)
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
    shapes = _shapes(layer_shapes)
    nnz = [check_int("nnz (non-zeros of a layer)", a, minimum=0) for a in nnz_per_layer]
    if len(nnz) != len(shapes):
        raise ParameterError(
            f"nnz_per_layer has {len(nnz)} entries but layer_shapes has {len(shapes)}"
        )
    r = _r(r)
    m = _m(m)
    positions = [log_binomial(d1 * d2, a) for (d1, d2), a in zip(shapes, nnz)]
    values = [a * math.log(r) for a in nnz]
    q_nats = math.fsum(positions) + math.fsum(values)
    if delta is None:
        term = math.sqrt(q_nats / m)
    else:
        term = math.sqrt((q_nats + math.log(1.0 / _delta(delta))) / (2.0 * m))
    return _make("sparse_count", {
        "empirical_margin_loss": _loss(empirical_margin_loss),
        "complexity": term,
    }, {"q_nats": q_nats, "positions_nats": math.fsum(positions),
        "values_nats": math.fsum(values), "nnz": float(sum(nnz))})


# --------------------------------------------------------------------------------------
# Norm-based baselines, with the constants their papers give
# --------------------------------------------------------------------------------------

def neyshabur2015_bound(weights, input_norm: float, gamma: float, m: int, *,
                        delta: float = 0.05, empirical_margin_loss: float = 0.0,
                        n_classes: int | None = None) -> Bound:
    """Frobenius-norm bound of Neyshabur, Tomioka & Srebro (COLT 2015), made multiclass.

    Ingredients:

    1. Their Theorem 1 / Corollary 2 with p = q = 2 (group norm = Frobenius norm): for
       depth-L ReLU networks with prod_l ||A^l||_F <= G and inputs ||x||_2 <= B, the
       Rademacher complexity of the scalar class is at most
       2^(L-1) G B sqrt(c / m), with c = min(p*, 4 ln(2D)) = 2 for p* = 2 (the
       linear-class factor of their corollary, as we read it; the sharper linear-class
       bound of Kakade et al. 2009 has c = 1). The 2 per layer comes from peeling one
       ReLU at a time, L - 1 times.
    2. The multiclass margin bound of Mohri, Rostamizadeh & Talwalkar (Foundations of
       ML, 2nd ed., Theorem 9.2): L_0 <= R^_gamma + (4k/gamma) Rad_m(Pi_1(H)) +
       sqrt(ln(1/delta)/(2m)), k classes. The scalar networks x -> f(x)[y] use one row
       of A^L, whose norm is at most ||A^L||_F, so step 1 applies to Pi_1(H).

    Result: R^_gamma + (4k/gamma) 2^(L-1) B prod_l ||A^l||_F sqrt(2/m) + sqrt(ln(1/delta)/(2m)).
    The bound uses the network's own norms as if they were fixed in advance (no union
    bound over G or gamma). ``n_classes`` defaults to the output dimension.
    """
    ws = _weights(weights)
    B = check_real("input_norm (max ||x||_2)", input_norm, minimum=0.0)
    g = _gamma(gamma)
    m = _m(m)
    d = _delta(delta)
    k = check_int("n_classes", ws[-1].shape[0] if n_classes is None else n_classes, minimum=2)
    L = len(ws)
    fro = [frobenius_norm(w) for w in ws]
    prod_fro = math.prod(fro)
    rademacher = 2.0 ** (L - 1) * B * prod_fro * math.sqrt(2.0 / m)
    return _make("neyshabur2015", {
        "empirical_margin_loss": _loss(empirical_margin_loss),
        "complexity": 4.0 * k / g * rademacher,
        "confidence": math.sqrt(math.log(1.0 / d) / (2.0 * m)),
    }, {"frobenius_product": prod_fro, "rademacher": rademacher, "depth": L,
        "n_classes": k, "input_norm": B})


def spectral_complexity(weights, reference_weights=None, *,
                        spectral_norms: Sequence[float] | None = None) -> dict[str, float]:
    """Bartlett et al. (2017)'s spectral complexity R_A for ReLU networks (rho_i = 1).

    R_A = (prod_i ||A_i||_2) (sum_i (||A_i^T - M_i^T||_{2,1} / ||A_i||_2)^(2/3))^(3/2),
    with reference matrices M_i (``reference_weights``; ``None`` = zero matrices; the
    initial weights make it a distance to initialisation). ``spectral_norms``: the
    ||A_i||_2, if already computed (they dominate the cost; every function that needs
    them takes this argument). Returns ``{"R_A", "lipschitz": prod ||A_i||_2,
    "ratio_sum": sum (b_i/s_i)^(2/3)}``.
    """
    ws = _weights(weights)
    if reference_weights is None:
        refs = [None] * len(ws)
    else:
        refs = _weights(reference_weights, "reference_weights")
        if len(refs) != len(ws):
            raise ParameterError(
                f"reference_weights has {len(refs)} layers, weights has {len(ws)}"
            )
    s = _nonzero_spectral(ws, spectral_norms)
    b = [bartlett_21(w, ref) for w, ref in zip(ws, refs)]
    lip = math.prod(s)
    ratio_sum = math.fsum((bi / si) ** (2.0 / 3.0) for bi, si in zip(b, s))
    return {"R_A": lip * ratio_sum ** 1.5, "lipschitz": lip, "ratio_sum": ratio_sum}


def bartlett2017_bound(weights, reference_weights, X_norm_fro: float, gamma: float,
                       m: int, delta: float = 0.05, width: int | None = None, *,
                       empirical_margin_loss: float = 0.0,
                       spectral_norms: Sequence[float] | None = None) -> Bound:
    """Spectrally-normalised margin bound of Bartlett, Foster & Telgarsky (NeurIPS 2017).

    Their Theorem 1.1 reads L_0 <= R^_gamma + O~(||X||_F R_A ln(W) / (gamma m) +
    sqrt(ln(1/delta)/m)); the constants are in the appendix. We evaluate the
    fixed-bounds form (their Lemma A.8, as we read it), plugging in the network's own
    norms s_i = ||A_i||_2, b_i = ||A_i^T - M_i^T||_{2,1}:

        R^_gamma + 8/m + 72 ||X||_F ln(2W) ln(m) R_A / (gamma m) + 3 sqrt(ln(2/delta) / (2m))

    * ||X||_F = sqrt(sum_i ||x_i||_2^2) over the m training inputs (``X_norm_fro``; see
      :func:`input_norms`). It grows like sqrt(m), so the middle term decays like
      ln(m)/sqrt(m) at fixed data distribution.
    * W = the largest dimension of any weight matrix, input included (``width``).
      Their covering-number bound (Theorem 3.3) carries ln(2W^2) under a square root;
      the ln(2W) factor used here is larger once W >= 4, so it can only overstate.
    * rho_i = 1 (ReLU). R_A from :func:`spectral_complexity`.
    * The constants 8, 72 and 3 were not checked against the PDF in writing this
      module (no copy of the appendix was at hand): verify before quoting them.
    * The confidence term uses ln(2/delta), the standard form for empirical Rademacher
      complexity; the appendix may print ln(1/delta), which is smaller.
    * Not included: the cost of making the bound uniform over gamma and the norms
      (their Lemma A.9: a larger constant and extra logarithmic terms). The value here
      is therefore *optimistic* for data-chosen gamma and norms.
    """
    ws = _weights(weights)
    X = check_real("X_norm_fro", X_norm_fro, minimum=0.0)
    g = _gamma(gamma)
    m = _m(m)
    d = _delta(delta)
    W = _width(ws, width)
    sc = spectral_complexity(ws, reference_weights, spectral_norms=spectral_norms)
    complexity = 72.0 * X * math.log(2.0 * W) * math.log(m) * sc["R_A"] / (g * m)
    return _make("bartlett2017", {
        "empirical_margin_loss": _loss(empirical_margin_loss),
        "offset": 8.0 / m,
        "complexity": complexity,
        "confidence": 3.0 * math.sqrt(math.log(2.0 / d) / (2.0 * m)),
    }, {"spectral_complexity": sc["R_A"], "lipschitz": sc["lipschitz"],
        "ratio_sum": sc["ratio_sum"], "width": W, "X_norm_fro": X})


def neyshabur2018_bound(weights, input_norm: float, gamma: float, m: int,
                        delta: float = 0.05, *, empirical_margin_loss: float = 0.0,
                        width: int | None = None, constant: float = 1.0,
                        spectral_norms: Sequence[float] | None = None) -> Bound:
    """PAC-Bayes spectral bound of Neyshabur, Bhojanapalli & Srebro (ICLR 2018), Theorem 1.

    Their statement, for a depth-d ReLU network with inputs ||x||_2 <= B and at most h
    units per layer:

        L_0 <= R^_gamma + O( sqrt( (B^2 d^2 h ln(d h) prod_i ||W_i||_2^2
                                    sum_i ||W_i||_F^2 / ||W_i||_2^2 + ln(d m / delta))
                                   / (gamma^2 m) ) ).

    The statement gives no constant, so ``constant`` (default 1) multiplies the square
    root. (Their proof runs through a PAC-Bayes margin lemma with a factor 4 and a
    posterior width gamma / (42 d B beta^(d-1) sqrt(h ln(4hd))), i.e. a constant of
    several hundred in front; we do not reconstruct it.) h defaults to the largest
    dimension of any weight matrix, input included.
    """
    ws = _weights(weights)
    B = check_real("input_norm (max ||x||_2)", input_norm, minimum=0.0)
    g = _gamma(gamma)
    m = _m(m)
    dl = _delta(delta)
    c = check_real("constant", constant, minimum=0.0)
    h = _width(ws, width)
    depth = len(ws)
    s = _nonzero_spectral(ws, spectral_norms)
    fro = [frobenius_norm(w) for w in ws]
    spec_prod_sq = math.prod(v * v for v in s)
    ratio_sum = math.fsum((f / v) ** 2 for f, v in zip(fro, s))
    kl_part = B * B * depth * depth * h * math.log(depth * h) * spec_prod_sq * ratio_sum
    log_part = math.log(depth * m / dl)
    complexity = c * math.sqrt((kl_part + log_part) / (g * g * m))
    return _make("neyshabur2018", {
        "empirical_margin_loss": _loss(empirical_margin_loss),
        "complexity": complexity,
    }, {"kl_part": kl_part, "log_part": log_part, "spectral_product_sq": spec_prod_sq,
        "frobenius_ratio_sum": ratio_sum, "width": h, "depth": depth, "constant": c})


# --------------------------------------------------------------------------------------
# The authors' simplified baselines (their code: no sqrt(m), no constants, no logs)
# --------------------------------------------------------------------------------------

def authors_neyshabur2015(weights, gamma: float) -> float:
    """The authors' "Neyshabur 2015" measure: prod_l ||A^l||_F^2 / gamma^2.

    As their code computes it (``calc_neyshabur``): no 2^L, no input norm, no sqrt(m),
    no classes. A complexity measure, not a bound on an error.
    """
    ws = _weights(weights)
    g = _gamma(gamma)
    return math.prod(frobenius_norm(w) ** 2 for w in ws) / (g * g)


def authors_bartlett2017(weights, gamma: float, *,
                         spectral_norms: Sequence[float] | None = None) -> float:
    """The authors' "Bartlett 2017" measure: (1/gamma^2) prod ||A||_2^2 sum ||A||_lpq^2 / ||A||_2^2.

    Transcribed from their ``calc_bartlett``: the per-layer norm is their
    ``lpq_norm(A, 1, 2)`` (:func:`authors_lpq_norm`), which equals ||A||_F, so the
    measure is (1/gamma^2) prod_l ||A_l||_2^2 sum_l ||A_l||_F^2 / ||A_l||_2^2. That is
    the Neyshabur et al. (2018) quantity without B, d, h -- not Bartlett et al.'s R_A,
    which has a (2,1) distance to a reference and exponents 2/3, 3/2.
    """
    ws = _weights(weights)
    g = _gamma(gamma)
    s = _nonzero_spectral(ws, spectral_norms)
    prod = math.prod(v * v for v in s)
    ratios = math.fsum(authors_lpq_norm(w, 1, 2) ** 2 / (v * v) for w, v in zip(ws, s))
    return prod * ratios / (g * g)


def authors_neyshabur2018(weights, gamma: float, *,
                          spectral_norms: Sequence[float] | None = None) -> float:
    """The authors' "Neyshabur 2018" measure: (1/gamma^2) prod ||A||_2^2 sum fan_in ||A||_F^2/||A||_2^2.

    Transcribed from their ``calc_second_neyshabur``: each ratio is multiplied by the
    layer's fan-in (``weight.shape[1]``, the ``in`` dimension), standing in for h.
    """
    ws = _weights(weights)
    g = _gamma(gamma)
    s = _nonzero_spectral(ws, spectral_norms)
    prod = math.prod(v * v for v in s)
    ratios = math.fsum(w.shape[1] * frobenius_norm(w) ** 2 / (v * v) for w, v in zip(ws, s))
    return prod * ratios / (g * g)


# --------------------------------------------------------------------------------------
# Rank correlation and the assembled report
# --------------------------------------------------------------------------------------

class KendallTau(NamedTuple):
    """Kendall's tau between bound values and test errors, with its two-sided p-value."""

    tau: float
    pvalue: float


def kendall_tau(bound_values: Sequence[float], test_errors: Sequence[float]) -> KendallTau:
    """Kendall's tau-b (``scipy.stats.kendalltau``) of bounds against test errors.

    Jiang et al. (ICLR 2020) rank generalization measures this way: tau = 1 when the
    bound orders the models exactly as their test errors do.
    """
    x = [check_real("bound value", v) for v in bound_values]
    y = [check_real("test error", v) for v in test_errors]
    if len(x) != len(y):
        raise ParameterError(f"got {len(x)} bound values but {len(y)} test errors")
    if len(x) < 2:
        raise ParameterError("Kendall's tau needs at least two (bound, error) pairs")
    res = stats.kendalltau(x, y)
    return KendallTau(float(res.statistic), float(res.pvalue))


def all_bounds(weights, init_weights, input_norm: float, X_norm_fro: float,
               gamma: float, m: int, delta: float, empirical_margin_loss: float, *,
               r: int = 256, n_classes: int | None = None,
               k_list: Sequence[int] | None = None,
               nnz_per_layer: Sequence[int] | None = None,
               keep_fraction=None, authors_loss: float | None = None,
               spectral_norms: Sequence[float] | None = None) -> dict[str, Bound]:
    """Every bound of this module for one network, keyed by name.

    Args:
        weights: the (possibly pruned) network's weight matrices, out x in.
        init_weights: its initial weights, Bartlett et al.'s reference matrices
            (``None``: zero reference).
        input_norm: B = max_i ||x_i||_2 over the training inputs.
        X_norm_fro: sqrt(sum_i ||x_i||_2^2) over the m training inputs.
        gamma, m, delta: margin, training-set size, failure probability.
        empirical_margin_loss: R^_gamma on the training set, shared by all bounds.
        r: values per parameter for the counting bounds (default 256, an 8-bit grid;
            Arora et al. leave r to the user -- state it with any result).
        n_classes: for Neyshabur 2015 (default: the output dimension).
        k_list: sketch sizes k_l; adds ``"sketch"`` (the paper's Theorem 5.2).
        nnz_per_layer: non-zeros per layer for Lemma D.1 (default: counted in
            ``weights``).
        keep_fraction: chi (scalar or per layer); adds ``"authors_sketch"``.
        authors_loss: R^ at the authors' needed margin for ``"authors_sketch"``
            (default: ``empirical_margin_loss``).
        spectral_norms: ||A^l||_2 of ``weights`` when already known (a sweep computes
            them once); default: computed here, once, and shared by every norm bound.

    Returns:
        name -> :class:`Bound`. Bounds on the 0-1 error: ``dense_count``,
        ``sparse_count``, ``neyshabur2015``, ``bartlett2017``, ``neyshabur2018``, and
        optionally ``sketch``, ``authors_sketch``. The authors' unnormalised measures
        ``authors_neyshabur2015``, ``authors_bartlett2017``, ``authors_neyshabur2018``
        have ``on_probability=False`` (their size says nothing about vacuity).
    """
    ws = _weights(weights)
    shapes = [tuple(w.shape) for w in ws]
    spec = _nonzero_spectral(ws, spectral_norms)   # once, shared by every bound below
    if nnz_per_layer is None:
        nnz_per_layer = [int(torch.count_nonzero(w)) for w in ws]
    out: dict[str, Bound] = {
        "dense_count": dense_count_bound(empirical_margin_loss, sum(w.numel() for w in ws), r, m),
        "sparse_count": sparse_count_bound(empirical_margin_loss, nnz_per_layer, shapes, r, m),
    }
    if k_list is not None:
        out["sketch"] = sketch_bound(empirical_margin_loss, k_list, r, m)
    if keep_fraction is not None:
        out["authors_sketch"] = authors_sketch_bound(
            empirical_margin_loss if authors_loss is None else authors_loss,
            shapes, keep_fraction, m)
    out["neyshabur2015"] = neyshabur2015_bound(
        ws, input_norm, gamma, m, delta=delta,
        empirical_margin_loss=empirical_margin_loss, n_classes=n_classes)
    out["bartlett2017"] = bartlett2017_bound(
        ws, init_weights, X_norm_fro, gamma, m, delta,
        empirical_margin_loss=empirical_margin_loss, spectral_norms=spec)
    out["neyshabur2018"] = neyshabur2018_bound(
        ws, input_norm, gamma, m, delta, empirical_margin_loss=empirical_margin_loss,
        spectral_norms=spec)
    for name, v in (("authors_neyshabur2015", authors_neyshabur2015(ws, gamma)),
                    ("authors_bartlett2017", authors_bartlett2017(ws, gamma, spectral_norms=spec)),
                    ("authors_neyshabur2018", authors_neyshabur2018(ws, gamma, spectral_norms=spec))):
        out[name] = Bound(name, float(v), {"measure": float(v)}, {}, on_probability=False)
    return out


def bounds_table(bounds: Mapping[str, Bound]) -> list[dict[str, object]]:
    """Rows for a table (e.g. ``pandas.DataFrame(bounds_table(all_bounds(...)))``).

    One row per bound: name, value, whether it is vacuous, its dominant term, and
    every additive term as its own column (``term:<name>``).
    """
    rows = []
    for name, b in bounds.items():
        row: dict[str, object] = {"bound": name, "value": b.value, "vacuous": b.vacuous,
                                  "dominant_term": b.dominant_term}
        row.update({f"term:{k}": v for k, v in b.terms.items()})
        rows.append(row)
    return rows


def bounds_over_d(probe, model, train_margins, ds: Sequence[float], seed: int, *,
                  r: int = 256, delta: float = 0.05, test=None) -> list[dict[str, float]]:
    """The bounds that depend on the pruning parameter, for each d in ``ds``.

    For each d: the weights of ``prune_paper(model, d, seed)`` (the paper's rule; drawn
    by :func:`prunebounds.pruning.paper_rule_sweep`, which gives the same matrices
    without copying the model), the authors' needed margin eps(d) from ``probe`` (a
    :class:`prunebounds.perturbation.PruningProbe` of ``model`` on the training set:
    one spectral norm of Delta^l per layer, the weight norms are reused), and the
    paper's bound (:func:`paper_bound`), the authors' evaluation
    (:func:`authors_sketch_bound` with chi(d)) and the Lemma D.1 count
    (:func:`sparse_count_bound`, confidence term written out as in
    :func:`counting_bound`), all at the margin loss R^_eps(d)(f). The norm-based
    baselines do not depend on d: compute them once with :func:`all_bounds`.

    Args:
        train_margins: the unpruned network's training margins (m = their number).
        test: optional split with ``X`` and ``y``; adds the pruned network's test
            error (one forward pass per d, on a pruned copy of ``model``).

    Returns:
        One dict per d: ``d``, ``needed``, ``loss``, ``paper``, ``paper_nolog``,
        ``n_capped``, ``authors``, ``sparse``, ``kept`` and, with ``test``, ``test_err``.
    """
    from .margins import logits, margins
    from .pruning import expected_keep_fraction, paper_rule_sweep, prune_paper

    mg = torch.as_tensor(train_margins).detach().to(torch.float64).flatten()
    m = int(mg.numel())
    seed = check_int("seed", seed, minimum=0)
    out = []
    for d, Wg in paper_rule_sweep(model, ds, seed):
        eps = probe.needed_margin(Wg).value
        pb = paper_bound(mg, eps, Wg, r=r, delta=delta)
        loss = pb.terms["empirical_margin_loss"]
        ab = authors_sketch_bound(loss, Wg, float(expected_keep_fraction(d)), m)
        nnz = [int(torch.count_nonzero(w)) for w in Wg]
        shapes = [tuple(w.shape) for w in Wg]
        sc = sparse_count_bound(loss, nnz, shapes, r, m)
        row = {"d": d, "needed": eps, "loss": loss, "paper": pb.value,
               "paper_nolog": pb.details["value_without_log_r"],
               "n_capped": pb.details["n_capped"], "authors": ab.value,
               "sparse": counting_bound("sparse_count", loss, sc.details["q_nats"], m,
                                        delta).value,
               "kept": sum(nnz) / sum(a * b for a, b in shapes)}
        if test is not None:
            g = prune_paper(model, d, seed)
            row["test_err"] = margin_loss(margins(logits(g, test.X), test.y), 0.0)
        out.append(row)
    return out
