"""The paper-scale orchestrator (prunebounds.chapters.paper_scale), run on the CPU with the
smoke profile: worker processes, the results file, deadlines, merging and bad options."""

from __future__ import annotations

import json

import pytest

from prunebounds import claims as cl
from prunebounds import profiles
from prunebounds.chapters import load, paper_scale



def _read(path):
    return cl.parse_full_results(json.loads(path.read_text()), profile="smoke")


def test_workers_write_the_chapters_claims_with_provenance(tmp_path):
    P = profiles.resolve("smoke")
    out = tmp_path / "smoke.json"
    seconds = paper_scale.full_results(P, out, jobs=2, chapters=["setting", "compression"])
    assert {"main network", "setting", "compression"} <= set(seconds)
    got = _read(out)
    by_chapter = got.provenance["claims_by_chapter"]
    for name in ("setting", "compression"):     # the same records as in this process
        module = load(name)
        direct = [c.to_dict() for c in module.claims(module.compute(P, progress=False))]
        assert [d["id"] for d in direct] == by_chapter[name]
        for d in direct:
            assert got.by_id()[d["id"]].to_dict() == d
    prov = got.provenance
    assert prov["profile"] == "smoke" and prov["device"].startswith("cpu")
    assert prov["source_fingerprint"] and prov["wall_seconds"] > 0 and not got.missing

    # --only with --merge: the other chapter's records stay; a deadline that has passed
    # records the redone chapter as missing, with the reason.
    paper_scale.full_results(P, out, jobs=1, chapters=["compression"], merge=True,
                             deadline=1e-3)
    again = _read(out)
    assert set(again.provenance["claims_by_chapter"]) == {"setting"}
    assert "deadline" in again.missing["chapter:compression"]
    assert all(i in again.by_id() for i in by_chapter["setting"])


@pytest.mark.parametrize("argv, message", [
    (["full-results", "--profile", "smoke", "--jobs", "0"], "--jobs must be >= 1"),
    (["full-results", "--profile", "smoke", "--deadline", "-5"], "--deadline must be > 0"),
    (["full-results", "--profile", "smoke", "--only", "setting,nosuch"], "nosuch"),
    (["full-results", "--profile", "huge"], "huge"),
])
def test_bad_options_stop_with_a_message(argv, message, capsys):
    assert paper_scale.main(argv) == 2
    assert message in capsys.readouterr().err
