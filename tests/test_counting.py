"""Tests of prunebounds.counting against direct formulas (math.comb, hand arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunebounds.counting import (authors_q, count_authors, count_dense, count_sketch,
                                  count_sparse_positions_bits, log_binomial, sparse_count_nats)
from prunebounds.errors import ParameterError


def test_log_binomial():
    assert log_binomial(20, 3) == pytest.approx(math.log(1140), rel=1e-12)         # 20*19*18/6 = 1140
    assert log_binomial(5, 0) == pytest.approx(0.0, abs=1e-12)      # C(5, 0) = 1
    assert log_binomial(10**6, 1) == pytest.approx(math.log(10**6), rel=1e-12)


def test_counts_against_direct_formulas():
    assert count_dense(784, 10) == 7840 and count_sketch(540, 540) == 291600
    for d1, d2, alpha, bits in [(5, 6, 7, 8), (10, 10, 0, 16), (4, 4, 16, 1), (30, 20, 55, 3.5)]:
        direct = math.log2(math.comb(d1 * d2, alpha)) + alpha * bits
        assert count_sparse_positions_bits(d1, d2, alpha, bits) == pytest.approx(direct, abs=1e-9)
    keep = 1 - math.sqrt(5 / 7)
    assert count_authors(784, 300, keep) == pytest.approx(784 * 300 * keep * np.log(784) ** 2)


@pytest.mark.parametrize("call", [
    lambda: count_sparse_positions_bits(3, 3, 10, 8),
    lambda: count_sparse_positions_bits(3, 3, -1, 8),
    lambda: count_dense(0, 5),
    lambda: count_authors(5, 5, 1.5),
])
def test_count_bad_input_raises(call):
    with pytest.raises(ParameterError):
        call()


def test_sketch_count_of_an_empty_layer_is_zero():
    assert count_sketch(0, 7) == 0
    with pytest.raises(ParameterError):
        count_sketch(-1, 2)


def test_sparse_count_nats_is_lemma_d1():
    """Two layers: ln C(6, 2) + ln C(12, 5) nats of positions, 7 ln 16 of values."""
    c = sparse_count_nats([2, 5], [(2, 3), (4, 3)], r=16)
    assert c.positions_nats == pytest.approx(math.log(15) + math.log(792), rel=1e-12)
    assert c.values_nats == pytest.approx(7 * math.log(16), rel=1e-12)
    assert c.total == pytest.approx(c.positions_nats + c.values_nats)
    with pytest.raises(ParameterError, match="nnz_per_layer has 1 entries"):
        sparse_count_nats([2], [(2, 3), (4, 3)], r=16)
    with pytest.raises(ParameterError, match="r \\(values per parameter\\)"):
        sparse_count_nats([2], [(2, 3)], r=1)


def test_authors_q_scalar_and_per_layer():
    shapes = [(784, 784), (10, 784)]
    lg = math.log(784) ** 2
    assert authors_q(shapes, 0.5) == pytest.approx([784 * 784 * 0.5 * lg, 7840 * 0.5 * lg])
    assert authors_q(shapes, [0.5, 1.0]) == pytest.approx([784 * 784 * 0.5 * lg, 7840 * lg])
    with pytest.raises(ParameterError, match="keep_fraction has 1 entries"):
        authors_q(shapes, [0.5])
