"""The Gaussian-weights chapter's module: compute in the smoke profile, its claims, its numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from prunebounds import claims as cl
from prunebounds import profiles, pruning
from prunebounds.chapters import gaussian_weights as chapter


@pytest.fixture(scope="module")
def R(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBOUNDS_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield chapter.compute(profiles.resolve("smoke"), progress=False)
    finally:
        mp.undo()


def test_result_covers_every_epoch_and_layer(R):
    P = profiles.resolve("smoke")
    assert R.epochs_seen == (0, *P.snapshots, P.epochs)
    assert set(R.layers) == set(R.epochs_seen)
    assert all(len(v) == len(R.shapes) for v in R.layers.values())
    assert len(R.predictions["trained"][0]) == len(R.d_grid)


def test_claims_are_valid_records(R):
    records = chapter.claims(R)
    assert {c.id for c in records} == {"gaussian-weights", "weights-fixed-view"}
    assert all(c.verdict in cl.VERDICTS and c.chapter == chapter.LABEL for c in records)
    assert cl.loads(cl.dumps(records))[0].id == "gaussian-weights"


def test_numbers(R):
    n = chapter.numbers(R)
    assert all(not (isinstance(v, float) and math.isnan(v)) for k, v in n.items()
               if k != "gauss_kurt_share")
    shape, indep = chapter.layer_passes(R)
    assert n["gauss_n_gauss"] == sum(shape) and n["gauss_n_indep"] == sum(indep)


def test_uniform_initialisation_gives_the_known_kept_fraction(R):
    """At initialisation the weights are uniform: the rule keeps
    1 - sqrt(pi d/12) erf(sqrt(3/d)), not chi(d) (the chapter's first exercise)."""
    i1 = R.d_grid.index(1.0)
    uniform_keep = 1 - math.sqrt(math.pi / 12) * special.erf(math.sqrt(3.0))
    expected = 100 * (pruning.expected_keep_fraction(1.0) / uniform_keep - 1)    # about -14.8%
    for l in range(len(R.shapes)):
        err = chapter.rel_err(R, "init", l, "gaussian", "keep")[i1]
        assert err == pytest.approx(expected, abs=4.0)
        # the empirical law is the exact expectation over the coin flips
        emp = R.predictions["init"][l][i1].empirical.keep
        assert emp == pytest.approx(uniform_keep, abs=0.03)


def test_initial_spectrum_follows_marchenko_pastur(R):
    assert R.layers[0][R.layer - 1].mp.top_over_edge == pytest.approx(1.0, abs=0.15)
    for key, v in R.sq_norms.items():
        assert np.mean(v) == pytest.approx(1.0)
    assert chapter.mean_over_iid(R).shape == (len(R.shapes), len(chapter.D_TABLE))


def test_every_claim_points_at_a_label_of_the_chapter(R):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "notebooks" / "gaussian_weights.md").read_text()
    for c in chapter.claims(R):
        assert f"name: {c.evidence}" in text or f"({c.evidence})=" in text \
            or f'name="{c.evidence}"' in text, c.evidence
