"""The sketching chapter's module: compute in the smoke profile, its claims, its numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunebounds import claims as cl
from prunebounds import profiles, sketching
from prunebounds.chapters import sketching as chapter
from prunebounds.errors import ParameterError

IDS = {"sketch-size-theorem", "sketch-exact-recovery", "sketch-storage",
       "rev-q4-sketch-storage", "authors-count-square"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def R(cache_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBOUNDS_CACHE", str(cache_dir))
    try:
        yield chapter.compute(profiles.resolve("smoke"), progress=False)
    finally:
        mp.undo()


def test_claims_are_valid_records(R):
    records = chapter.claims(R)
    assert {c.id for c in records} == IDS
    for c in records:
        assert c.verdict in cl.VERDICTS and c.chapter == chapter.LABEL
    assert [c.id for c in cl.loads(cl.dumps(records, profile="smoke"))] == [c.id for c in records]


def test_numbers_are_finite(R):
    n = chapter.numbers(R)
    assert all(isinstance(v, str) or not math.isnan(v) for v in n.values())


def test_schematic_is_the_sketch_of_its_matrix(R):
    X, A, B, Y = (np.array(M) for M in (R.schematic.X, R.schematic.A, R.schematic.B,
                                        R.schematic.Y))
    assert np.allclose(A @ X @ B.T, Y) and R.schematic.kron_error < 1e-12
    assert set(A.sum(axis=0)) == {float(sketching.default_degree(X.shape[0]))}
    assert (np.count_nonzero(X, axis=1) <= 1).all()


def test_storage_counts_against_their_formulas(R):
    for s, layer in zip(R.storage, R.layers):
        d2, d1 = s.shape
        assert s.dense_bits == 32 * d1 * d2 and s.sketch_bits == 32 * layer.k_out * layer.k_in
        assert s.values_bits < s.sparse_bits < s.dense_bits
        # the authors' count is the squared theory sketch of the padded layer times d1 d2 / p^2
        assert s.authors_q == pytest.approx(s.theory_k_squared * d1 * d2 / max(d1, d2) ** 2)
        assert s.theory_capped <= d1 * d2
    assert R.curve.dense[0] == pytest.approx(sum(32 * a * b for a, b in
                                                 (st.shape for st in R.storage)) / 8e3)


def test_solvers_agree_and_the_cache_returns_the_same_result(R, cache_dir, monkeypatch):
    assert R.agreement.fo_vs_lp < 1e-6 and R.agreement.lp_vs_truth < 1e-6
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(cache_dir))
    again = chapter.compute(profiles.resolve("smoke"), progress=False)
    assert again == R


def test_bad_parameters_name_the_range():
    with pytest.raises(ParameterError, match="k_fraction must be <= 1.0"):
        chapter.compute(profiles.resolve("smoke"), k_fraction=1.5)
    with pytest.raises(ParameterError, match="d_prune must be >= 0.0"):
        chapter.compute(profiles.resolve("smoke"), d_prune=-1.0)
