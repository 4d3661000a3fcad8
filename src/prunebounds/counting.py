"""Parameter counting: how many numbers (or bits, or nats) describe a compressed network.

Arora et al.'s compression theorem pays for the description length of the compressed
network, so every bound of the book starts from a count. All of them live here:

* a dense layer: d1 d2 numbers (:func:`count_dense`);
* a sketched layer: the k1 k2 entries of its sketch A X B^T (:func:`count_sketch`; the
  sketch sizes themselves are in :mod:`prunebounds.sketching`);
* a sparse layer by plain counting, the paper's Lemma D.1: the positions of its alpha
  non-zeros, ln C(d1 d2, alpha) nats (:func:`log_binomial`), plus alpha values
  (:func:`count_sparse_positions_bits` in bits, :func:`sparse_count_nats` in nats for a
  whole network);
* the authors' per-layer count q_l = d1 d2 chi (ln max(d1, d2))^2
  (:func:`count_authors`, :func:`authors_q`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.special import gammaln

from .errors import ParameterError
from .validate import check_int, check_layer_shapes, check_r, check_real

__all__ = [
    "log_binomial",
    "count_dense",
    "count_sketch",
    "count_sparse_positions_bits",
    "SparseCount",
    "sparse_count_nats",
    "count_authors",
    "authors_q",
]


def log_binomial(n: int, k: int) -> float:
    """ln C(n, k) via log-gamma (exact to rounding for huge n)."""
    n = check_int("n", n, minimum=0)
    k = check_int("k", k, minimum=0)
    if k > n:
        raise ParameterError(f"cannot choose {k} entries out of {n}")
    return float(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))


def count_dense(d1: int, d2: int) -> int:
    """Parameters of a dense d1 x d2 layer: d1 d2."""
    return check_int("d1", d1, minimum=1) * check_int("d2", d2, minimum=1)


def count_sketch(k1: int, k2: int) -> int:
    """Parameters of a k1 x k2 sketch A X B^T (Theorem 5.2's k_l^2 when k1 = k2).

    A side of 0 (the sketch of an all-zero layer) stores nothing.
    """
    return check_int("k1", k1, minimum=0) * check_int("k2", k2, minimum=0)


def count_sparse_positions_bits(d1: int, d2: int, alpha: int,
                                bits_per_value: float) -> float:
    """Bits to store a d1 x d2 matrix with ``alpha`` non-zeros by plain counting.

    log2 C(d1 d2, alpha) bits name the positions, plus ``bits_per_value`` for each
    non-zero value: the counting argument of the paper's Lemma D.1 (about
    alpha log2(d1 d2 / alpha) + 1.44 alpha for the positions).
    """
    n = count_dense(d1, d2)
    alpha = check_int("alpha", alpha, minimum=0)
    if alpha > n:
        raise ParameterError(f"alpha must satisfy 0 <= alpha <= d1*d2 = {n}, got {alpha}")
    bits = check_real("bits_per_value", bits_per_value, minimum=0.0)
    return float(log_binomial(n, alpha) / math.log(2) + alpha * bits)


@dataclass(frozen=True)
class SparseCount:
    """The Lemma D.1 description length of :func:`sparse_count_nats`, in nats."""

    positions_nats: float
    values_nats: float

    @property
    def total(self) -> float:
        return self.positions_nats + self.values_nats


def sparse_count_nats(nnz_per_layer: Sequence[int], layer_shapes, r: int) -> SparseCount:
    """The paper's Lemma D.1 description length of a sparse network, in nats.

    Layer l with alpha_l non-zeros among its d1 d2 entries costs ln C(d1 d2, alpha_l)
    nats for the positions and alpha_l ln r for the values (r values per parameter).
    Returns the two sums over the layers.
    """
    shapes = check_layer_shapes(layer_shapes)
    nnz = [check_int("nnz (non-zeros of a layer)", a, minimum=0) for a in nnz_per_layer]
    if len(nnz) != len(shapes):
        raise ParameterError(
            f"nnz_per_layer has {len(nnz)} entries but layer_shapes has {len(shapes)}"
        )
    r = check_r(r)
    positions = math.fsum(log_binomial(d1 * d2, a) for (d1, d2), a in zip(shapes, nnz))
    values = math.fsum(a * math.log(r) for a in nnz)
    return SparseCount(positions, values)


def count_authors(d1: int, d2: int, keep: float) -> float:
    """The authors' per-layer parameter count q_l = d1 d2 keep (ln max(d1, d2))^2.

    From the authors' code (``compute_best_generalization_bound``:
    ``d1 * d2 * chi(d) * np.square(np.log(max(d1, d2)))``, natural log); their bound
    adds ``sqrt(sum_l q_l / m)``.  It equals the expected non-zeros times log^2 p,
    the size j p log^2 p of a sketch with k = sqrt(j p) log p.
    """
    n = count_dense(d1, d2)
    keep = check_real("keep", keep, minimum=0.0, maximum=1.0)
    return n * keep * math.log(max(d1, d2)) ** 2


def authors_q(layer_shapes, keep_fraction) -> list[float]:
    """:func:`count_authors` of every layer; ``keep_fraction`` is one chi for all layers
    or one per layer. ``layer_shapes`` are (out, in) pairs or weight tensors."""
    shapes = check_layer_shapes(layer_shapes)
    if isinstance(keep_fraction, Sequence) and not isinstance(keep_fraction, str):
        chis = [check_real("keep_fraction", c, minimum=0.0, maximum=1.0) for c in keep_fraction]
        if len(chis) != len(shapes):
            raise ParameterError(
                f"keep_fraction has {len(chis)} entries but there are {len(shapes)} layers"
            )
    else:
        chis = [check_real("keep_fraction", keep_fraction, minimum=0.0, maximum=1.0)] * len(shapes)
    return [count_authors(d1, d2, c) for (d1, d2), c in zip(shapes, chis)]
