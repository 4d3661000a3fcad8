"""Training determinism and the results cache (atomic, checksummed, self-healing)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import warnings

import pytest
import torch

from prunebounds import experiments, profiles

CFG = experiments.RunConfig(dataset="synthetic", widths=(784, 32, 10), optimiser="paper-mnist",
                            epochs=2, seed=7, max_train=300, snapshot_epochs=(1,))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_bit_for_bit_reproducible():
    a = experiments.train_cached(CFG, use_cache=False, progress=False)
    b = experiments.train_cached(CFG, use_cache=False, progress=False)
    assert _same(a.model.state_dict(), b.model.state_dict())
    assert a.history == b.history
    assert _same(a.snapshots[1], b.snapshots[1])
    # initial weights are kept and differ from the trained ones
    assert not torch.equal(a.initial["0.weight"], a.model.state_dict()["0.weight"])
    assert a.history["final_train_acc"] > 0.5  # it learned something


def test_history_accuracies_against_a_hand_loop():
    """The running accuracy counts each batch before its SGD step; the final accuracy is
    that of the final weights on the whole training set. Both recomputed by hand."""
    from prunebounds import data, train

    run = experiments.train_cached(CFG, use_cache=False, progress=False)
    D = data.load(CFG.dataset, max_train=CFG.max_train)
    net = experiments.new_model(CFG)
    net.load_state_dict(run.initial)
    opt = train.optimiser_config(CFG.optimiser)
    sgd = torch.optim.SGD(net.parameters(), lr=opt.lr, momentum=opt.momentum,
                          weight_decay=opt.weight_decay)
    gen = torch.Generator().manual_seed(CFG.seed)
    running = []
    for _ in range(CFG.epochs):
        order, correct = torch.randperm(len(D.train), generator=gen), 0
        for start in range(0, len(order), opt.batch_size):
            idx = order[start:start + opt.batch_size]
            out = net(D.train.X[idx])
            correct += int((out.argmax(1) == D.train.y[idx]).sum())
            loss = torch.nn.functional.cross_entropy(out, D.train.y[idx])
            sgd.zero_grad()
            loss.backward()
            sgd.step()
        running.append(correct / len(order))
    assert run.history["train_acc"] == pytest.approx(running, abs=1e-12)
    with torch.no_grad():
        final = float((run.model(D.train.X).argmax(1) == D.train.y).double().mean())
    assert run.history["final_train_acc"] == pytest.approx(final, abs=1e-12)


def test_cache_round_trip_is_exact(tmp_path):
    a = experiments.train_cached(CFG, root=tmp_path, progress=False)
    b = experiments.train_cached(CFG, root=tmp_path, progress=False)
    assert not a.from_cache and b.from_cache
    assert _same(a.model.state_dict(), b.model.state_dict())
    assert _same(a.initial, b.initial) and a.history == b.history
    assert _same(a.model_at(1).state_dict(), b.model_at(1).state_dict())
    assert _same(b.model_at(0).state_dict(), a.initial)


def test_key_depends_on_every_field():
    keys = {CFG.key}
    for change in [dict(seed=8), dict(epochs=3), dict(max_train=301), dict(widths=(784, 33, 10)),
                   dict(dataset="mnist"), dict(snapshot_epochs=(2,))]:
        keys.add(experiments.RunConfig(**{**CFG.__dict__, **change}).key)
    assert len(keys) == 7


@pytest.mark.parametrize("damage", ["truncate-weights", "garble-history", "garble-manifest",
                                    "delete-file"])
def test_damaged_entry_is_recomputed(tmp_path, damage):
    good = experiments.train_cached(CFG, root=tmp_path, progress=False)
    folder = tmp_path / "runs" / CFG.key
    if damage == "truncate-weights":
        p = folder / "final.pt"
        p.write_bytes(p.read_bytes()[:100])
    elif damage == "garble-history":
        (folder / "history.json").write_text("{not json")
    elif damage == "garble-manifest":
        (folder / "manifest.json").write_text("]]")
    else:
        (folder / "initial.pt").unlink()
    with pytest.warns(UserWarning, match="damaged"):
        again = experiments.train_cached(CFG, root=tmp_path, progress=False)
    assert not again.from_cache
    assert _same(good.model.state_dict(), again.model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the repaired entry loads cleanly
        assert experiments.train_cached(CFG, root=tmp_path, progress=False).from_cache


def _train_forever(root: str) -> None:
    cfg = experiments.RunConfig(**{**CFG.__dict__, "epochs": 10_000})
    experiments.train_cached(cfg, root=__import__("pathlib").Path(root), progress=False)


def test_killed_run_leaves_no_readable_entry(tmp_path):
    proc = mp.get_context("spawn").Process(target=_train_forever, args=(str(tmp_path),))
    proc.start()
    time.sleep(4)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    cfg = experiments.RunConfig(**{**CFG.__dict__, "epochs": 10_000})
    assert not (tmp_path / "runs" / cfg.key / "manifest.json").exists()


def test_atomic_write_never_exposes_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    experiments.atomic_write_bytes(target, b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        experiments.atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary left


def test_cached_json_recomputes_garbled_file(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": 3.5}

    assert experiments.cached_json("demo", {"a": 1}, compute, root=tmp_path) == {"value": 3.5}
    assert experiments.cached_json("demo", {"a": 1}, compute, root=tmp_path) == {"value": 3.5}
    assert len(calls) == 1
    (path,) = (tmp_path / "results").iterdir()
    path.write_text("garbage")
    with pytest.warns(UserWarning, match="damaged"):
        experiments.cached_json("demo", {"a": 1}, compute, root=tmp_path)
    assert len(calls) == 2 and json.loads(path.read_text())["result"] == {"value": 3.5}


def test_weights_are_loaded_without_pickle(tmp_path):
    experiments.train_cached(CFG, root=tmp_path, progress=False)
    folder = tmp_path / "runs" / CFG.key
    # a file that would run code under plain pickle is refused by weights_only=True
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    payload = pickle.dumps(Evil())
    (folder / "final.pt").write_bytes(payload)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["final.pt"] = experiments._sha256(payload)  # even with a valid checksum
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="damaged"):
        experiments.train_cached(CFG, root=tmp_path, progress=False)
    assert not (tmp_path / "pwned").exists()


def test_run_config_from_profile_validates():
    p = profiles.resolve("smoke")
    cfg = experiments.RunConfig.from_profile(p)
    assert cfg.widths == (784, 64, 64, 10) and cfg.dataset == "synthetic"
    with pytest.raises(ValueError):
        experiments.RunConfig.from_profile(p, optimiser="adam")


def test_main_network_keeps_the_profile_snapshots():
    q = profiles.resolve("quick")
    assert experiments.RunConfig.from_profile(q).snapshot_epochs == (1, 2, 3)
    # epochs at or beyond the last one are not snapshots
    assert experiments.RunConfig.from_profile(q.replace(epochs=2)).snapshot_epochs == (1,)
    # another network (a family member) keeps none unless asked
    other = experiments.RunConfig.from_profile(q, widths=(784, 100, 10), epochs=5)
    assert other.snapshot_epochs == ()
    asked = experiments.RunConfig.from_profile(q, epochs=5, snapshot_epochs=(2,))
    assert asked.snapshot_epochs == (2,)
    assert profiles.resolve("quick", snapshots=[3, 1, 3]).snapshots == (1, 3)
    for bad in ([0], "12", [1.5]):
        with pytest.raises(profiles.ParameterError, match="snapshots"):
            profiles.resolve("quick", snapshots=bad)


def test_cache_keys_follow_the_source(tmp_path, monkeypatch):
    """Editing a module changes the keys that depend on it (no stale results)."""
    import prunebounds.experiments as ex

    run_key, json_key = CFG.key, ex.config_key("demo", {"a": 1})
    real = ex.source_fingerprint

    def edited(modules=None):
        return real(modules) if modules is not None else "edited-analysis-code"

    monkeypatch.setattr(ex, "source_fingerprint", edited)
    assert ex.config_key("demo", {"a": 1}) != json_key  # any edit: results recomputed
    assert CFG.key == run_key  # an analysis edit does not retrain networks
    monkeypatch.setattr(ex, "source_fingerprint", lambda modules=None: "edited-training-code")
    assert CFG.key != run_key  # a training edit does
