"""The sparsity-pattern chapter's module: compute in the smoke profile, claims, numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunebounds import claims as cl
from prunebounds import profiles
from prunebounds.chapters import sparsity_pattern as chapter

IDS = {"lemma-5-1-sparsity", "rev-q7-dead-neurons"}
#: Numbers that are undefined on synthetic data (no input is constant there).
PIXEL_RATIOS = {"sparsity_const_moved", "sparsity_const_absw", "sparsity_const_cols_mag",
                "sparsity_const_cols_paper"}


@pytest.fixture(scope="module")
def R(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBOUNDS_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield chapter.compute(profiles.resolve("smoke"), progress=False)
    finally:
        mp.undo()


def test_claims_are_valid_records(R):
    records = chapter.claims(R)
    assert {c.id for c in records} == IDS
    lemma = next(c for c in records if c.id == "lemma-5-1-sparsity")
    assert "Binomial}(n, \\keep(d))" in lemma.statement  # n the line length, not d
    for c in records:
        assert c.verdict in cl.VERDICTS and c.chapter == chapter.LABEL
    assert len(cl.loads(cl.dumps(records))) == len(records)


def test_numbers_are_finite_except_the_pixel_ratios_of_synthetic_data(R):
    n = chapter.numbers(R)
    assert R.pixels.n_constant == 0
    assert {k for k, v in n.items() if isinstance(v, float) and math.isnan(v)} == PIXEL_RATIOS


def test_nested_masks_make_the_counts_monotone_in_d(R):
    for s in R.lines:
        mx = np.array(s.paper_max)          # (d, mask)
        dead = np.array(s.paper_dead)
        assert (mx[0] == s.length).all()    # d = 0 keeps everything
        assert (np.diff(mx, axis=0) <= 0).all() and (np.diff(dead, axis=0) >= 0).all()
        assert s.expected_max[0] == pytest.approx(s.length)
        assert s.authors[0] == pytest.approx(3 * s.length)


def test_series_cover_every_layer_and_direction(R):
    assert len(R.lines) == 2 * len(R.shapes)
    for s in R.lines:
        o, i = R.shapes[s.layer]
        assert (s.n_lines, s.length) == ((o, i) if s.axis == "rows" else (i, o))
    assert len(R.detail.first_cols_paper) == R.shapes[0][1]
