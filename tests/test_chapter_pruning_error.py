"""The pruning-error chapter's module: compute in the smoke profile, its claims, its numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunebounds import claims as cl
from prunebounds import profiles, pruning
from prunebounds.chapters import pruning_error as chapter

#: The claim ids of the chapter's transitional cell (kept), and the new one.
IDS = {"kept-fraction-moments", "lemma-4-1-rmt", "lemma-4-1-markov", "perturbation-lemma",
       "authors-gamma", "needed-margin", "algorithm-1-diagonal", "deterministic-pruning-rmt"}


@pytest.fixture(scope="module")
def R(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBOUNDS_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield chapter.compute(profiles.resolve("smoke"), progress=False)
    finally:
        mp.undo()


def test_result_shape_and_cache(R, monkeypatch, tmp_path):
    assert R.profile == "smoke" and len(R.sweep.paper) == len(R.sweep.d) == len(R.sweep.layer)
    assert all(len(masks) == chapter.SIZES["smoke"]["n_seeds"] for masks in R.sweep.paper)
    assert R.sweep.d[-1] == 10.0 and R.crossover == {1.0: 1417, 10.0: 1137}


def test_claims_are_valid_records(R):
    records = chapter.claims(R)
    assert {c.id for c in records} == IDS
    for c in records:
        assert c.verdict in cl.VERDICTS and c.chapter == chapter.LABEL
    payload = cl.loads(cl.dumps(records, profile="smoke"))
    assert [c.id for c in payload] == [c.id for c in records]


def test_numbers_are_finite_where_the_text_quotes_them(R):
    n = chapter.numbers(R)
    assert all(isinstance(v, (int, float)) and not math.isnan(v) for v in n.values())
    assert n["pruning_cross_d1"] > 784 and n["pruning_cross_d10"] < 2000


def test_monte_carlo_and_kept_fractions(R):
    assert R.monte_carlo.max_z < 5.0                      # the lemma, by Monte Carlo
    kept = chapter.kept_fractions(R)                      # (d, mask, layer)
    net = chapter.network_kept(R)
    assert np.all(net >= kept.min(axis=2) - 1e-12) and np.all(net <= kept.max(axis=2) + 1e-12)
    # more pruning at larger d, mask by mask (masks of one seed are nested in d)
    assert np.all(np.diff(net, axis=0) <= 1e-12)


def test_bounds_lie_above_the_measured_norms(R):
    for b, norms in zip(R.sizes.bounds, R.sizes.norms):   # theorems on E||Delta||
        assert b.frobenius >= np.mean(norms) and b.bvh_symmetric >= np.mean(norms)
    assert list(R.markov.observed) == sorted(R.markov.observed)
    for row in R.looseness:                               # Markov's lambda b_l >= measured
        assert all(db >= m for db, m in zip(row.provable.delta_bounds, row.authors.delta_norms))


def test_deterministic_threshold_matches_its_prediction(R):
    for row in R.deterministic:
        assert row.keep == pytest.approx(pruning.expected_keep_fraction(row.d))
        assert row.fixed <= row.rule                      # smallest weights removed: smaller error
        assert row.quantile == pytest.approx(row.fixed, rel=0.1)
        assert row.fixed == pytest.approx(row.threshold_bounds.asymptotic, rel=0.2)


def test_every_claim_points_at_a_label_of_the_chapter(R):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "notebooks" / "pruning_error.md").read_text()
    for c in chapter.claims(R):
        assert f"name: {c.evidence}" in text or f"({c.evidence})=" in text \
            or f'name="{c.evidence}"' in text, c.evidence


@pytest.mark.cuda
def test_compute_on_cuda(tmp_path, monkeypatch):
    """The smoke profile on a GPU: the network sweep, the batched Monte Carlo and every
    claim run there (the network is trained on the GPU too, so numbers differ slightly
    from the CPU's)."""
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(tmp_path))
    R = chapter.compute(profiles.resolve("smoke", device="cuda"), progress=False)
    assert {c.id for c in chapter.claims(R)} == IDS
    assert R.markov.trials == profiles.resolve("smoke").mc_trials
    assert R.monte_carlo.max_z < 5.0
    for row in R.deterministic:
        assert row.rule == pytest.approx(row.rule_bounds.asymptotic, rel=0.2)
