"""The certificate chapter's module: compute in the smoke profile, its claims, its checks."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from prunebounds import certificate as K
from prunebounds import claims as cl
from prunebounds import coding as C
from prunebounds import profiles
from prunebounds.cache import to_jsonable
from prunebounds.chapters import certificate as chapter
from prunebounds.errors import ParameterError

IDS = {"certificate-bound", "certificate-sketch-shortens", "certificate-paper-mlp",
       "certificate-resnet"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def R(cache_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBOUNDS_CACHE", str(cache_dir))
    mp.setenv("PRUNEBOUNDS_DEVICE", "cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield chapter.compute(profiles.resolve("smoke"), progress=False)
    finally:
        torch.set_num_threads(before)
        mp.undo()


def test_every_network_is_certified(R):
    S = R.settings
    n_lenet = (1 + S.certify_last) * len(S.bits)
    assert len(R.certified) == n_lenet + 2 * len(S.ds)
    assert {c.family for c in R.certified} == set(chapter.FAMILIES)
    assert R.m == 2500  # the whole synthetic training set: training and validation splits


def test_bounds_are_the_occam_kl_bound_of_the_real_code(R):
    for c in R.certified:
        assert c.parts.total == c.code_bits
        q = 0.0 if math.isnan(c.train_err) else c.train_err
        assert c.bound == pytest.approx(
            K.occam_kl_bound(q, c.code_bits, R.m, R.settings.delta), abs=1e-12)
        # never below the measured test error (certify raises otherwise), never above 1
        assert c.test_err <= c.bound <= 1.0
        assert c.compared.lemma_d1 >= q and c.compared.paper_count >= q
        if c.sketch_bits is not None:  # the same network, the same errors, another length
            assert c.sketch_bound == pytest.approx(
                K.occam_kl_bound(q, c.sketch_bits, R.m, R.settings.delta), abs=1e-12)


def test_sketch_rows_are_consistent(R):
    assert R.layers
    for x in R.layers:
        assert x.k0 == C.first_sketch_size(x.nnz) and x.first_bits > 0 and x.positions > 0
        if x.bits is not None:
            assert x.searched and x.k >= min(x.k0, max(x.shape))
    assert any(x.searched for x in R.layers)
    assert len(chapter.sketch_rows(R)) == len(R.layers)


def test_cached_result_is_read_back_equal(R, cache_dir, monkeypatch):
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(cache_dir))  # the fixture's cache
    again = chapter.compute(profiles.resolve("smoke"), progress=False)
    # field for field (as JSON: NaN marks "not defined" and NaN != NaN)
    assert json.dumps(to_jsonable(again), sort_keys=True) == json.dumps(to_jsonable(R),
                                                                    sort_keys=True)
    assert again.seconds == R.seconds  # read back, not recomputed


def test_claims_are_valid_and_name_the_preface_value(R):
    claims = chapter.claims(R)
    assert {c.id for c in claims} == IDS
    bound = next(c for c in claims if c.id == "certificate-bound")
    assert bound.value("bound").value == R.best.bound
    assert bound.value("test_err").value == R.best.test_err
    cl.loads(cl.dumps(claims))  # serialisable
    resnet = next(c for c in claims if c.id == "certificate-resnet")
    assert resnet.value("bound").value == R.resnet.best.bound  # smoke certifies it
    assert resnet.verdict in (cl.HOLDS, cl.VACUOUS)
    numbers = chapter.numbers(R)
    assert numbers["certificate_best"] == R.best.bound
    assert numbers["certificate_test_err"] == R.best.test_err


def test_residual_cnn_is_coded_and_certified_in_smoke(R):
    S, Q = R.settings, R.resnet
    assert Q.ran and Q.model == "resnet-tiny"
    assert len(Q.certified) == 2 * len(S.resnet_ds)
    assert {c.family for c in Q.certified} == {"resnet-paper-rule", "resnet-magnitude"}
    for c in Q.certified:
        assert c.parts.total == c.code_bits and c.n_kept < Q.n_weights
        assert c.bound == pytest.approx(
            K.occam_kl_bound(c.train_err, c.code_bits, R.m, S.delta), abs=1e-12)
        assert c.test_err <= c.bound <= 1.0
    assert len(chapter.network_rows(R)) == len(R.certified) + len(Q.certified)
    numbers = chapter.numbers(R)
    assert numbers["cert_resnet_bound"] == Q.best.bound
    assert numbers["cert_resnet_bits"] == Q.best.code_bits


def test_a_profile_without_the_residual_cnn_says_why(R):
    quick = chapter.settings(profiles.resolve("quick"))
    assert quick.resnet_ds == ()  # the quick budget: full (and smoke) only
    skipped = chapter.ResNetCertificates(False, "certified in the full profile only", "", 0,
                                         math.nan, ())
    claims = chapter.claims(dataclasses.replace(R, resnet=skipped))
    resnet = next(c for c in claims if c.id == "certificate-resnet")
    assert resnet.verdict == cl.NOT_CHECKED and "full profile" in resnet.judgement.reason
    numbers = chapter.numbers(dataclasses.replace(R, resnet=skipped))
    assert math.isnan(numbers["cert_resnet_bound"]) and numbers["cert_resnet_bits"] == -1


def test_resnet_bound_below_its_test_error_is_caught(R):
    best = R.resnet.best
    broken = dataclasses.replace(best, bound=best.test_err / 2)
    bad = dataclasses.replace(R, resnet=dataclasses.replace(R.resnet, certified=(broken,)))
    with pytest.raises(cl.CriterionError, match="below"):
        chapter.claims(bad)


def test_a_bound_below_the_test_error_is_caught_by_the_claims(R):
    best = R.best
    broken = dataclasses.replace(best, bound=best.test_err / 2)
    bad = dataclasses.replace(R, certified=(broken,) + tuple(c for c in R.certified
                                                            if c is not best))
    with pytest.raises(cl.CriterionError, match="below"):
        chapter.claims(bad)


def test_sketch_verdict_follows_the_measured_ratio(R):
    shorter = [dataclasses.replace(x, bits=max(1, x.positions // 2), k=x.k0, searched=True)
               for x in R.layers]
    claims = chapter.claims(dataclasses.replace(R, layers=tuple(shorter)))
    sketch = next(c for c in claims if c.id == "certificate-sketch-shortens")
    assert sketch.verdict == cl.HOLDS


@pytest.mark.parametrize("bad, message", [
    ({"delta": 1.5}, "open interval"),
    ({"delta": 0.0}, "open interval"),
    ({"bits": 0}, "bits must be an integer >= 1"),
    ({"bits": 9}, "bits must lie in 1..8"),
    ({"bits": ()}, "at least one b"),
    ({"certify_last": 99}, "certify_last must be at most"),
    ({"codebook_epochs": -1}, "codebook_epochs must be an integer >= 0"),
    ({"ds": [-1.0]}, "d > 0"),
])
def test_chapter_parameters_name_the_fix(bad, message):
    with pytest.raises(ParameterError, match=message):
        chapter.settings(profiles.resolve("smoke"), **bad)
