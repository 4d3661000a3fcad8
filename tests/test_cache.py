"""The results cache: checksums, atomic writes, stale temporaries, typed results."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import warnings
from dataclasses import dataclass

import pytest

from prunebounds import cache


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def test_cached_json_recomputes_garbled_file(tmp_path):
    compute, calls = _counting({"value": 3.5})
    assert cache.cached_json("demo", {"a": 1}, compute, root=tmp_path) == {"value": 3.5}
    assert cache.cached_json("demo", {"a": 1}, compute, root=tmp_path) == {"value": 3.5}
    assert len(calls) == 1
    (path,) = (tmp_path / "results").iterdir()
    path.write_text("garbage")
    with pytest.warns(UserWarning, match="damaged"):
        cache.cached_json("demo", {"a": 1}, compute, root=tmp_path)
    assert len(calls) == 2 and json.loads(path.read_text())["result"] == {"value": 3.5}


def test_an_edited_but_valid_result_is_detected_by_its_checksum(tmp_path):
    """The case of issue 15: acc_rebuilt 0.46 -> 0.96 in a cached file went unnoticed."""
    compute, calls = _counting({"acc_rebuilt": 0.46, "rows": [1, 2]})
    cache.cached_json("sketch-demo", {"p": 3}, compute, root=tmp_path)
    (path,) = (tmp_path / "results").iterdir()
    stored = json.loads(path.read_text())
    stored["result"]["acc_rebuilt"] = 0.96           # still valid JSON, still the right keys
    path.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        again = cache.cached_json("sketch-demo", {"p": 3}, compute, root=tmp_path)
    assert again == {"acc_rebuilt": 0.46, "rows": [1, 2]} and len(calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # the rewritten entry reads cleanly
        assert cache.cached_json("sketch-demo", {"p": 3}, compute, root=tmp_path)[
            "acc_rebuilt"] == 0.46
    assert len(calls) == 2


def test_a_removed_checksum_counts_as_damage(tmp_path):
    compute, calls = _counting([1.0, 2.0])
    cache.cached_json("demo", {}, compute, root=tmp_path)
    (path,) = (tmp_path / "results").iterdir()
    stored = json.loads(path.read_text())
    del stored["sha256"]
    path.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="checksum"):
        cache.cached_json("demo", {}, compute, root=tmp_path)
    assert len(calls) == 2


def _write_forever(folder: str) -> None:
    """Hold a temporary open forever, as a write that is killed half-way does."""
    path = os.path.join(folder, f".result.json.tmp-{os.getpid()}-0123abcd")
    with open(path, "wb") as f:
        f.write(b"half of a result")
        f.flush()
        while True:
            time.sleep(1.0)


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    proc = mp.get_context("spawn").Process(target=_write_forever, args=(str(tmp_path),),
                                           daemon=True)
    proc.start()
    try:
        stale = tmp_path / f".result.json.tmp-{proc.pid}-0123abcd"
        deadline = time.monotonic() + 120   # a spawned interpreter imports torch first
        while not stale.exists() and time.monotonic() < deadline:
            proc.join(0.05)
        assert stale.exists()
        # a running writer's temporary is left alone
        cache.atomic_write_bytes(tmp_path / "other.json", b"{}")
        assert stale.exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    mine = tmp_path / f".mine.json.tmp-{os.getpid()}-89abcdef"   # this process: running
    mine.write_bytes(b"")
    unrelated = tmp_path / ".notes.tmp"                          # not a cache temporary
    unrelated.write_bytes(b"")
    cache.atomic_write_bytes(tmp_path / "other.json", b"{}")     # the next write cleans up
    assert not stale.exists()
    assert mine.exists() and unrelated.exists()
    assert (tmp_path / "other.json").read_bytes() == b"{}"


def test_remove_stale_temporaries_reports_what_it_removed(tmp_path):
    dead = 2 ** 22 + 12345   # above the default pid_max of 4194304: never a running process
    t = tmp_path / f".x.pt.tmp-{dead}-deadbeef"
    t.write_bytes(b"x")
    assert cache.remove_stale_temporaries(tmp_path) == [t]
    assert cache.remove_stale_temporaries(tmp_path / "missing") == []


@dataclass(frozen=True)
class Inner:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Outer:
    count: int
    inner: Inner
    items: list[Inner]
    table: dict[int, float]
    note: str | None = None
    maybe: Inner | None = None


RESULT = Outer(count=3, inner=Inner("a", (1.0, 2.5)),
               items=[Inner("b", ()), Inner("c", (float("nan"),))],
               table={1: 0.5, 10: 2.0}, maybe=Inner("d", (4.0,)))


def test_cached_result_round_trips_nested_dataclasses(tmp_path):
    compute, calls = _counting(RESULT)
    first = cache.cached_result("typed", {"k": 1}, compute, Outer, root=tmp_path)
    second = cache.cached_result("typed", {"k": 1}, compute, Outer, root=tmp_path)
    assert len(calls) == 1
    for r in (first, second):
        assert isinstance(r, Outer) and isinstance(r.items[1], Inner)
        assert r.inner == Inner("a", (1.0, 2.5)) and r.table == {1: 0.5, 10: 2.0}
        assert r.note is None and r.maybe == Inner("d", (4.0,))
        assert r.items[1].values[0] != r.items[1].values[0]   # NaN survives
    assert cache.json_bytes(cache.to_jsonable(first)) == cache.json_bytes(cache.to_jsonable(second))


def test_a_stored_result_that_no_longer_fits_its_class_is_recomputed(tmp_path):
    compute, calls = _counting(RESULT)
    cache.cached_result("typed", {}, compute, Outer, root=tmp_path)
    (path,) = (tmp_path / "results").iterdir()
    stored = json.loads(path.read_text())
    del stored["result"]["inner"]
    stored["sha256"] = cache.sha256(cache.json_bytes(stored["result"]))   # a consistent file
    path.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="missing field"):
        again = cache.cached_result("typed", {}, compute, Outer, root=tmp_path)
    assert cache.json_bytes(cache.to_jsonable(again)) == cache.json_bytes(cache.to_jsonable(RESULT))
    assert len(calls) == 2


@pytest.mark.parametrize("tp, value", [(int, 1.5), (float, "x"), (bool, 1), (str, 3),
                                       (tuple[int, int], [1]), (list[int], {"a": 1}),
                                       (Inner, [1, 2])])
def test_from_jsonable_refuses_values_of_the_wrong_type(tp, value):
    with pytest.raises((TypeError, KeyError)):
        cache.from_jsonable(tp, value)


def test_to_jsonable_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="cannot store"):
        cache.to_jsonable({"f": object()})


# ------------------------------------------------------------------ cached tensors
def test_cached_tensors_round_trip_and_detect_damage(tmp_path):
    import torch

    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(6.0).reshape(2, 3), "mask": torch.tensor([True, False])}, \
            {"acc": [0.5, 0.75], "rounds": 2}

    t, info = cache.cached_tensors("demo-weights", {"n": 2}, compute, root=tmp_path)
    t2, info2 = cache.cached_tensors("demo-weights", {"n": 2}, compute, root=tmp_path)
    assert len(calls) == 1 and info2 == info == {"acc": [0.5, 0.75], "rounds": 2}
    assert torch.equal(t2["w"], t["w"]) and t2["mask"].dtype == torch.bool
    # a different configuration is another entry
    cache.cached_tensors("demo-weights", {"n": 3}, compute, root=tmp_path)
    assert len(calls) == 2
    pt = sorted((tmp_path / "tensors").glob("*.pt"))[0]
    manifest = pt.with_suffix(".json")
    key_cfg = json.loads(manifest.read_text())["config"]
    # flip one byte of the tensors: the checksum catches it and the entry is recomputed
    raw = bytearray(pt.read_bytes())
    raw[-20] ^= 0xFF
    pt.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum mismatch in the tensors"):
        cache.cached_tensors("demo-weights", key_cfg, compute, root=tmp_path)
    assert len(calls) == 3
    # edit the info: caught by its own checksum
    stored = json.loads(manifest.read_text())
    stored["info"]["acc"][0] = 0.99
    manifest.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="checksum mismatch in the info"):
        _, info3 = cache.cached_tensors("demo-weights", key_cfg, compute, root=tmp_path)
    assert info3["acc"][0] == 0.5 and len(calls) == 4


def test_cached_tensors_refuses_what_is_not_tensors(tmp_path):
    with pytest.raises(TypeError, match="dict of name -> tensor"):
        cache.cached_tensors("demo-bad", {}, lambda: ({"w": [1.0]}, {}), root=tmp_path)
