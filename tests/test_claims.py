"""Tests of prunebounds.claims: every criterion branch by hand, the record's JSON form,
record()'s outputs in a real kernel, and the schema of results/full.json."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from prunebounds import claims as cl
from prunebounds.claims import (CAVEAT, FAILS, HOLDS, NOT_CHECKED, VACUOUS, Claim,
                                CriterionError, Judgement, Value, criteria)
from prunebounds.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]
C = criteria


def make_claim(id="thm-5-2-bound", judgement=None, origin="reconstructed", **kw):
    return Claim(id=id, statement="Theorem 5.2: the bound", origin=origin,
                 chapter="chap-generalization-bound", evidence="tab-bound-protocol",
                 measured=kw.pop("measured", (Value("bound_paper", "paper's bound", 12.0, ".3g"),
                                              Value("test_g", "test error", 0.027, ".2%"))),
                 judgement=judgement or C.bound_vs_error(12.0, 0.027),
                 authors=kw.pop("authors", "normalized curves only"), **kw)


# ---------------------------------------------------------------------------------------
# values


def test_value_formats_as_the_record_says():
    assert Value("x", "x", 0.02712, ".2%").text() == "2.71%"
    assert Value("x", "x", 5480.3, ".4g").text() == "5480"
    assert Value("n", "n", 1234567, ",d").text() == "1,234,567"
    assert Value("s", "s", "e·B", "s").text() == "e·B"
    assert Value("b", "b", True).text() == "yes" and Value("b", "b", False).text() == "no"
    assert Value("x", "x", None, ".3g").text() == "n/a"
    assert Value("x", "x", float("nan"), ".3g").text() == "n/a"


def test_value_takes_numpy_and_torch_scalars_as_python_numbers():
    import torch

    v = Value("x", "x", np.float32(0.5), ".2f")
    assert type(v.value) is float and v.text() == "0.50"
    assert type(Value("n", "n", np.int64(7), "d").value) is int
    assert Value("t", "t", torch.tensor(2.5), ".1f").value == 2.5


@pytest.mark.parametrize("name", ["Bad", "1x", "a-b", "", "a b"])
def test_value_names_are_identifiers(name):
    with pytest.raises(ParameterError, match="lowercase"):
        Value(name, "label", 1.0)


def test_value_rejects_a_format_that_does_not_fit_and_non_scalars():
    with pytest.raises(ParameterError, match="format"):
        Value("x", "x", "text", ".3g")
    with pytest.raises(ParameterError, match="number, a string or None"):
        Value("x", "x", [1, 2])
    with pytest.raises(ParameterError, match="label"):
        Value("x", " ", 1.0)


# ---------------------------------------------------------------------------------------
# criteria, branch by branch


def test_bound_vs_error_holds_when_between_error_and_one():
    j = C.bound_vs_error(0.4, 0.1, what="the bound", error_what="the test error")
    assert j.verdict == HOLDS
    assert "0.1" in j.reason and "0.4" in j.reason
    assert "vacuous when the bound > 1" in j.criterion and "bug" in j.criterion


def test_bound_vs_error_is_vacuous_above_one():
    j = C.bound_vs_error(12.0, 0.027)
    assert j.verdict == VACUOUS
    assert j.reason.startswith("the bound = 12 > 1")


def test_bound_vs_error_at_exactly_one_holds():
    assert C.bound_vs_error(1.0, 0.5).verdict == HOLDS


def test_a_bound_below_the_measured_error_is_a_bug():
    with pytest.raises(CriterionError, match="below the measured error"):
        C.bound_vs_error(0.01, 0.027)


def test_bound_vs_truth_uses_its_own_usefulness_limit():
    j = C.bound_vs_truth(50.0, 2.0, useful_below=10.0, what="needed margin",
                         truth_what="true change", useful_what="the margin")
    assert j.verdict == VACUOUS and "needed margin = 50 > the margin" in j.reason
    assert C.bound_vs_truth(5.0, 2.0, useful_below=10.0).verdict == HOLDS
    assert C.bound_vs_truth(2.0 * (1 - 1e-12), 2.0, useful_below=10.0).verdict == HOLDS  # rounding
    with pytest.raises(CriterionError):
        C.bound_vs_truth(1.0, 2.0, useful_below=10.0)


def test_bounds_reject_nan():
    with pytest.raises(ParameterError, match="NaN"):
        C.bound_vs_error(float("nan"), 0.1)


def test_at_most_branches():
    j = C.at_most(0.024, 0.03, what="the test error", limit_what="the paper's regime")
    assert j.verdict == HOLDS
    assert j.criterion == ("holds when the test error ≤ the paper's regime (0.03); "
                           "does not hold otherwise")
    assert j.reason == "the test error = 0.024 ≤ 0.03"
    assert j.condition == "the test error ≤ the paper's regime (0.03)"
    j = C.at_most(0.068, 0.03, what="the test error")
    assert j.verdict == FAILS and j.reason == "the test error = 0.068 > 0.03"
    assert C.at_most(2.0, 1.0, what="x", otherwise=VACUOUS).verdict == VACUOUS
    assert C.at_most(1.0, 1.0, what="x").verdict == HOLDS  # the limit itself holds


def test_at_least_branches():
    assert C.at_least(2.0, 1.0, what="x").verdict == HOLDS
    j = C.at_least(0.9375, 1.0, what="∏Γ_l")
    assert j.verdict == FAILS and j.reason == "∏Γ_l = 0.9375 < 1"
    assert C.at_least(0.5, 1.0, what="x", otherwise=VACUOUS).verdict == VACUOUS


def test_comparisons_with_nan_are_not_checked():
    for j in (C.at_most(float("nan"), 1.0, what="τ"), C.at_least(np.float64("nan"), 0.0, what="τ"),
              C.within_factor(float("nan"), 1.0, 2.0, what="τ", reference_what="1")):
        assert j.verdict == NOT_CHECKED and "NaN" in j.reason


def test_comparisons_reject_bad_parameters():
    with pytest.raises(ParameterError, match="otherwise"):
        C.at_most(1.0, 2.0, what="x", otherwise="holds")
    with pytest.raises(ParameterError, match="number"):
        C.at_most("big", 2.0, what="x")
    with pytest.raises(ParameterError, match="NaN"):
        C.at_most(1.0, float("nan"), what="x")


def test_within_factor_branches():
    assert C.within_factor(18.8 * 1.04, 18.8, 1.05, what="B", reference_what="28").verdict == HOLDS
    assert C.within_factor(18.8 / 1.04, 18.8, 1.05, what="B", reference_what="28").verdict == HOLDS
    j = C.within_factor(18.8, 28.0, 1.05, what="B", reference_what="28")
    assert j.verdict == FAILS and "0.6714" in j.reason
    assert C.within_factor(-28.0, 28.0, 1.05, what="B", reference_what="28").verdict == FAILS
    with pytest.raises(ParameterError, match="positive"):
        C.within_factor(1.0, 0.0, 2.0, what="x", reference_what="y")
    with pytest.raises(ParameterError, match=">= 1"):
        C.within_factor(1.0, 1.0, 0.5, what="x", reference_what="y")


def test_equal_branches():
    assert C.equal(0.9812, 0.9812, what="rebuilt", target_what="pruned").verdict == HOLDS
    j = C.equal(0.46, 0.486, what="rebuilt", target_what="pruned")
    assert j.verdict == FAILS and "0.46 ≠ pruned = 0.486" in j.reason


def test_all_layers_branches():
    j = C.all_layers(5, 5, what="layers Gaussian enough")
    assert j.verdict == HOLDS and j.reason == "5 of 5 layers Gaussian enough"
    assert C.all_layers(4, 5).verdict == FAILS
    assert C.all_layers(0, 5).verdict == FAILS
    assert C.all_layers(np.int64(3), 3).verdict == HOLDS
    for bad in ((6, 5), (-1, 5), (0, 0), (1.5, 3)):
        with pytest.raises(ParameterError):
            C.all_layers(*bad)


def test_not_checked_needs_a_reason():
    j = C.not_checked("no CIFAR-10 data")
    assert j.verdict == NOT_CHECKED and j.reason == "no CIFAR-10 data"
    with pytest.raises(ParameterError):
        C.not_checked("  ")


def test_stated_caveat():
    j = C.caveat(C.at_most(1.0, 2.0, what="x"), "fewer epochs than the paper")
    assert j.verdict == CAVEAT and j.caveats == ("fewer epochs than the paper",)
    assert "stated caveat: fewer epochs than the paper" in j.criterion
    v = C.caveat(C.bound_vs_error(12.0, 0.1), "no log factors")
    assert v.verdict == VACUOUS and v.caveats == ("no log factors",)   # keeps a weaker verdict
    assert C.caveat(C.at_most(3.0, 2.0, what="x"), "c").verdict == FAILS
    with pytest.raises(ParameterError):
        C.caveat(C.at_most(1.0, 2.0, what="x"), "")


def test_caveat_unless_applies_only_when_the_check_fails():
    main = C.at_least(114.7, 1.0, what="bound / truth")
    loose = C.caveat_unless(main, C.at_most(114.7, 10.0, what="bound / truth"), "loose")
    assert loose.verdict == CAVEAT and loose.caveats == ("loose",)
    assert "114.7 > 10" in loose.reason and "unless bound / truth ≤ 10" in loose.criterion
    tight = C.caveat_unless(main, C.at_most(3.0, 10.0, what="bound / truth"), "loose")
    assert tight.verdict == HOLDS and tight.caveats == ()
    vac = C.caveat_unless(C.bound_vs_error(5.0, 0.1), C.at_most(2.0, 1.0, what="x"), "c")
    assert vac.verdict == VACUOUS and vac.caveats == ("c",)


def test_vacuous_unless():
    rec = C.at_most(1e-9, 1e-6, what="recovery error")
    j = C.vacuous_unless(rec, C.at_most(1.7, 1.0, what="theorem's k/p"))
    assert j.verdict == VACUOUS and "holds but vacuous unless theorem's k/p ≤ 1" in j.criterion
    assert C.vacuous_unless(rec, C.at_most(0.5, 1.0, what="k/p")).verdict == HOLDS
    failed = C.at_most(0.17, 1e-6, what="recovery error")
    assert C.vacuous_unless(failed, C.at_most(1.7, 1.0, what="k/p")).verdict == FAILS


def test_all_of_takes_the_weakest_verdict():
    h, f = C.at_most(1.0, 2.0, what="a"), C.at_most(3.0, 2.0, what="b")
    v, n = C.bound_vs_error(5.0, 0.1), C.not_checked("no data")
    c = C.caveat(h, "c")
    assert C.all_of(h, h).verdict == HOLDS
    assert C.all_of(h, c).verdict == CAVEAT
    assert C.all_of(c, v).verdict == VACUOUS
    assert C.all_of(v, n).verdict == NOT_CHECKED
    assert C.all_of(n, f, h).verdict == FAILS
    j = C.all_of(h, f)
    assert j.criterion.startswith("all of: (1) holds when a ≤ 2") and "(2) b = 3 > 2" in j.reason
    with pytest.raises(ParameterError):
        C.all_of()


def test_judgement_verdicts_are_a_closed_set_and_criteria_is_a_namespace():
    with pytest.raises(ParameterError, match="verdict"):
        Judgement("probably fine", "c", "r")
    with pytest.raises(TypeError):
        criteria()


def test_no_verdict_is_written_by_hand():
    """Judgements are built by the criteria only: nothing outside claims.py calls
    Judgement(...) or passes a verdict string of its own."""
    sources = list((ROOT / "notebooks").glob("*.md")) + [
        p for p in (ROOT / "src" / "prunebounds").rglob("*.py") if p.name != "claims.py"]
    offenders = [p.name for p in sources if re.search(r"\bJudgement\s*\(", p.read_text())]
    assert not offenders, f"hand-made judgements in {offenders}"


# ---------------------------------------------------------------------------------------
# claims and their JSON form


def test_claim_validation():
    make_claim()
    for bad in ("Thm_5", "thm--5", "-thm", ""):
        with pytest.raises(ParameterError, match="lowercase"):
            make_claim(id=bad)
    with pytest.raises(ParameterError, match="origin"):
        make_claim(origin="folklore")
    with pytest.raises(ParameterError, match="value names repeat"):
        make_claim(measured=(Value("a", "a", 1.0), Value("a", "b", 2.0)))
    with pytest.raises(ParameterError, match="criteria"):
        make_claim(judgement="holds")
    with pytest.raises(ParameterError, match="label"):
        Claim("x", "s", "paper", "Chapter 5", "tab-x", (), C.not_checked("r"))


def test_claim_groups_follow_the_origin():
    assert make_claim(origin="paper").group == "paper"
    assert make_claim(origin="reconstructed").group == "paper"
    assert make_claim(origin="reviewer").group == "reviewers"
    assert make_claim(origin="ours").group == "beyond"
    c = make_claim()
    assert c.value("bound_paper").value == 12.0 and c.verdict == VACUOUS
    with pytest.raises(ParameterError, match="has no value 'nope'"):
        c.value("nope")


def test_json_round_trip_is_exact():
    a = make_claim(judgement=C.caveat(C.all_of(C.bound_vs_error(12.0, 0.027),
                                               C.at_most(1.0, 2.0, what="x")), "c"))
    b = make_claim(id="sketch-storage", origin="paper", authors=None,
                   measured=(Value("ratio", "sketch / sparse", 2.03, ".2f"),
                             Value("inf", "infinite", float("inf"), ".3g"),
                             Value("nan", "undefined", float("nan"), ".3g"),
                             Value("ran", "ran", False), Value("top", "top", "e·B", "s")),
                   judgement=C.not_checked("no data"))
    text = cl.dumps([a, b], profile="smoke")
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    back = cl.loads(text)
    assert back[0] == a
    assert back[1].value("inf").value == math.inf and math.isnan(back[1].value("nan").value)
    assert [v.value for v in back[1].measured if v.name in ("ratio", "ran", "top")] == [2.03, False, "e·B"]
    assert json.loads(text)["profile"] == "smoke"


def test_loads_rejects_other_json_and_duplicate_ids():
    with pytest.raises(ParameterError, match="schema"):
        cl.loads('{"claims": []}')
    with pytest.raises(ParameterError, match="appears twice"):
        cl.dumps([make_claim(), make_claim()])


# ---------------------------------------------------------------------------------------
# record() and load_from_notebook()


def test_record_outside_ipython_prints_the_summary(capsys):
    cl.record([make_claim()], profile="smoke")
    assert capsys.readouterr().out.strip() == "thm-5-2-bound: holds but vacuous"


def test_record_glues_every_value_and_emits_the_records(monkeypatch):
    import IPython
    import IPython.display
    import myst_nb

    shown, glued = [], {}
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.__setitem__(name, (value, display)))
    cl.record([make_claim()], profile="quick")
    assert glued == {"claim-thm-5-2-bound-verdict": ("holds but vacuous", False),
                     "claim-thm-5-2-bound-bound_paper": (12.0, False),
                     "claim-thm-5-2-bound-test_g": (0.027, False)}
    (obj, raw), = shown
    assert raw and obj[cl.MIME_TYPE]["profile"] == "quick"
    assert [c["id"] for c in obj[cl.MIME_TYPE]["claims"]] == ["thm-5-2-bound"]
    assert "thm-5-2-bound: holds but vacuous" in obj["text/plain"]


def test_record_in_a_real_kernel_round_trips_through_the_notebook(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from prunebounds.claims import Claim, Value, criteria, record\n"
        "record([Claim('a-claim', 'A statement', 'ours', 'chap-x', 'tab-x',\n"
        "              (Value('v', 'a value', 0.25, '.2f'),), criteria.at_most(0.25, 1.0, what='v'))],\n"
        "       profile='smoke')")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    rec = cl.load_from_notebook(path)
    assert rec.profile == "smoke" and [c.id for c in rec.claims] == ["a-claim"]
    assert rec.claims[0].verdict == HOLDS and rec.claims[0].value("v").value == 0.25
    names = {o["metadata"]["scrapbook"]["name"] for o in nb.cells[0].outputs
             if "scrapbook" in o.get("metadata", {})}
    assert names == {"claim-a-claim-verdict", "claim-a-claim-v"}


def _notebook_with(*payloads) -> dict:
    return {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {cl.MIME_TYPE: p}, "metadata": {}}
        for p in payloads]}, {"cell_type": "markdown", "source": "x"}]}


def test_load_from_notebook_checks_ids_and_profiles(tmp_path):
    p1 = cl.payload([make_claim()], "quick")
    p2 = cl.payload([make_claim(id="other")], "quick")
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps(_notebook_with(p1, p2)))
    assert [c.id for c in cl.load_from_notebook(path).claims] == ["thm-5-2-bound", "other"]
    path.write_text(json.dumps(_notebook_with(p1, p1)))
    with pytest.raises(ParameterError, match="twice"):
        cl.load_from_notebook(path)
    path.write_text(json.dumps(_notebook_with(p1, cl.payload([make_claim(id="other")], "smoke"))))
    with pytest.raises(ParameterError, match="several profiles"):
        cl.load_from_notebook(path)
    path.write_text(json.dumps({"cells": []}))
    assert cl.load_from_notebook(path).claims == ()
    path.write_text("not json")
    with pytest.raises(ParameterError, match="cannot read"):
        cl.load_from_notebook(path)


# ---------------------------------------------------------------------------------------
# results/full.json


PROVENANCE = {"profile": "full", "device": "NVIDIA H200", "torch": "2.5.1", "commit": "abc1234",
              "source_fingerprint": "0123456789abcdef", "date": "2026-12-04",
              "wall_seconds": 812.5}


def test_full_results_round_trip_and_coverage(tmp_path):
    path = cl.write_full_results(tmp_path / "results" / "full.json", [make_claim()],
                                 {"cifar10-experiments": "no CIFAR-10 data"}, PROVENANCE)
    full = cl.load_full_results(path)
    assert full.provenance["device"] == "NVIDIA H200"
    assert full.by_id()["thm-5-2-bound"] == make_claim()
    assert full.coverage_gaps(["thm-5-2-bound", "cifar10-experiments", "new-claim"]) == ["new-claim"]
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("provenance"), "provenance"),
    (lambda d: d["provenance"].pop("commit"), "lacks"),
    (lambda d: d["provenance"].update(profile="quick"), "expected 'full'"),
    (lambda d: d["provenance"].update(wall_seconds=-1), "wall_seconds"),
    (lambda d: d["provenance"].update(device=""), "device"),
    (lambda d: d.update(claims={}), "list"),
    (lambda d: d.update(missing={"x": ""}), "non-empty"),
    (lambda d: d.update(missing={"thm-5-2-bound": "why"}), "both recorded and missing"),
    (lambda d: d.update(extra=1), "unknown keys"),
    (lambda d: d["claims"][0].pop("judgement"), "not a claim record"),
])
def test_full_results_schema_errors_name_the_problem(change, message):
    data = {"provenance": dict(PROVENANCE), "claims": [make_claim().to_dict()], "missing": {}}
    change(data)
    with pytest.raises(ParameterError, match=message):
        cl.parse_full_results(data)


def _claim_ids_in_sources() -> set[str]:
    """Claim ids written in the chapters' record cells and the chapter modules."""
    ids: set[str] = set()
    files = list((ROOT / "notebooks").glob("*.md")) + list(
        (ROOT / "src" / "prunebounds" / "chapters").glob("*.py"))
    for f in files:
        text = f.read_text()
        if "prunebounds.claims" in text or "Claim(" in text:
            ids |= set(re.findall(r"Claim\(\s*id=\"([a-z0-9-]+)\"", text))
    return ids


def test_chapter_sources_record_claims_with_unique_ids():
    ids = _claim_ids_in_sources()
    assert len(ids) >= 30, ids
    counts: dict[str, int] = {}
    for f in (ROOT / "notebooks").glob("*.md"):
        for i in re.findall(r"Claim\(\s*id=\"([a-z0-9-]+)\"", f.read_text()):
            counts[i] = counts.get(i, 0) + 1
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n > 1}


def test_committed_full_results_cover_every_claim():
    path = ROOT / "results" / "full.json"
    if not path.exists():
        pytest.skip("results/full.json not produced yet (a GPU run writes it)")
    full = cl.load_full_results(path)
    assert not full.coverage_gaps(_claim_ids_in_sources()), \
        "claims without a full-profile value or a reason in results/full.json"
