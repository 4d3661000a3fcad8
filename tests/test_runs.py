"""Training determinism, the training presets, and the cache of trained networks
(atomic, checksummed, self-healing)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import warnings

import pytest
import torch

from prunebounds import cache, data, margins, profiles, runs, train
from prunebounds.errors import ParameterError

CFG = runs.RunConfig(dataset="synthetic", widths=(784, 32, 10), optimiser="paper-mnist",
                            epochs=2, seed=7, max_train=300, snapshot_epochs=(1,), device="cpu")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_bit_for_bit_reproducible():
    a = runs.train_cached(CFG, use_cache=False, progress=False)
    b = runs.train_cached(CFG, use_cache=False, progress=False)
    assert _same(a.model.state_dict(), b.model.state_dict())
    assert a.history == b.history
    assert _same(a.snapshots[1], b.snapshots[1])
    # initial weights are kept and differ from the trained ones
    assert not torch.equal(a.initial["0.weight"], a.model.state_dict()["0.weight"])
    assert a.history.final_train_acc > 0.2  # it learned something (chance: 0.1; 4 plain SGD steps)


def test_train_against_a_hand_written_loop():
    """train() on the CPU gives bit-identical weights to a plain SGD loop written here,
    and its running and final accuracies are the hand-computed ones (a sample counts as
    correct when its margin is positive: ties are errors)."""
    run = runs.train_cached(CFG, use_cache=False, progress=False)
    D = data.load(CFG.dataset, max_train=CFG.max_train)
    net = runs.new_model(CFG)
    net.load_state_dict(run.initial)
    opt = train.optimiser_config(CFG.optimiser)
    sgd = torch.optim.SGD(net.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
    gen = torch.Generator().manual_seed(CFG.seed)
    running = []
    for _ in range(CFG.epochs):
        order, correct = torch.randperm(len(D.train), generator=gen), 0
        for start in range(0, len(order), opt.batch_size):
            idx = order[start:start + opt.batch_size]
            out = net(D.train.X[idx])
            y = D.train.y[idx]
            others = out.detach().clone()
            others[torch.arange(len(y)), y] = -float("inf")
            correct += int((out.detach()[torch.arange(len(y)), y] > others.max(1).values).sum())
            loss = torch.nn.functional.cross_entropy(out, y)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
        running.append(correct / len(order))
    assert _same(net.state_dict(), run.model.state_dict())   # bit for bit
    assert run.history.train_acc == pytest.approx(running, abs=1e-12)
    with torch.no_grad():
        out = run.model(D.train.X)
        final = float((out.argmax(1) == D.train.y).double().mean())
    assert run.history.final_train_acc == pytest.approx(final, abs=1e-12)


def test_paper_presets_are_plain_sgd():
    """The authors' SGD had no momentum (their attribute assignment was never read)."""
    for name in ("paper-mnist", "paper-cifar10"):
        opt = train.optimiser_config(name)
        assert opt.momentum == 0.0
        sgd = train.make_sgd(torch.nn.Linear(2, 2), opt)
        assert sgd.param_groups[0]["momentum"] == 0.0
    assert train.optimiser_config("paper-mnist").lr == 0.02
    assert train.optimiser_config("paper-mnist").batch_size == 256
    assert train.make_sgd(torch.nn.Linear(2, 2), train.optimiser_config(
        "momentum-mnist")).param_groups[0]["momentum"] == 0.9
    # what the authors' code did: set the attribute after building plain SGD
    lin = torch.nn.Linear(3, 1)
    authors = torch.optim.SGD(lin.parameters(), lr=0.02)
    authors.momentum = 0.9
    assert authors.param_groups[0]["momentum"] == 0


def test_cache_round_trip_is_exact(tmp_path):
    a = runs.train_cached(CFG, root=tmp_path, progress=False)
    b = runs.train_cached(CFG, root=tmp_path, progress=False)
    assert not a.from_cache and b.from_cache
    assert _same(a.model.state_dict(), b.model.state_dict())
    assert _same(a.initial, b.initial) and a.history == b.history
    assert _same(a.model_at(1).state_dict(), b.model_at(1).state_dict())
    assert _same(b.model_at(0).state_dict(), a.initial)


def test_key_depends_on_every_field():
    keys = {CFG.key}
    for change in [dict(seed=8), dict(epochs=3), dict(max_train=301), dict(widths=(784, 33, 10)),
                   dict(dataset="mnist"), dict(snapshot_epochs=(2,)),
                   dict(optimiser="momentum-mnist")]:
        keys.add(runs.RunConfig(**{**CFG.__dict__, **change}).key)
    assert len(keys) == 8


@pytest.mark.parametrize("widths, message", [
    ((100, 10), "784 features and 10 classes: the first width must be 784"),
    ((784, 32, 5), "784 features and 10 classes: the first width must be 784 and the last 10"),
])
def test_widths_that_do_not_fit_the_data_name_its_features_and_classes(widths, message):
    with pytest.raises(ParameterError, match=message):
        runs.train_cached(runs.RunConfig(dataset="synthetic", widths=widths,
                                         optimiser="paper-mnist", epochs=1, seed=0),
                          use_cache=False, progress=False)
    bundle = data.load("synthetic", max_train=50)
    with pytest.raises(ParameterError, match="'synthetic', which has 784 features and 10"):
        runs.check_widths_fit(widths, bundle.n_features, bundle.n_classes, "synthetic")


@pytest.mark.parametrize("damage", ["truncate-weights", "garble-history", "garble-manifest",
                                    "delete-file"])
def test_damaged_entry_is_recomputed(tmp_path, damage):
    good = runs.train_cached(CFG, root=tmp_path, progress=False)
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
        again = runs.train_cached(CFG, root=tmp_path, progress=False)
    assert not again.from_cache
    assert _same(good.model.state_dict(), again.model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the repaired entry loads cleanly
        assert runs.train_cached(CFG, root=tmp_path, progress=False).from_cache


def _train_forever(root: str) -> None:
    cfg = runs.RunConfig(**{**CFG.__dict__, "epochs": 10_000})
    runs.train_cached(cfg, root=__import__("pathlib").Path(root), progress=False)


def test_killed_run_leaves_no_readable_entry(tmp_path):
    proc = mp.get_context("spawn").Process(target=_train_forever, args=(str(tmp_path),))
    proc.start()
    time.sleep(4)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    cfg = runs.RunConfig(**{**CFG.__dict__, "epochs": 10_000})
    assert not (tmp_path / "runs" / cfg.key / "manifest.json").exists()


def test_atomic_write_never_exposes_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    cache.atomic_write_bytes(target, b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        cache.atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary left


def test_weights_are_loaded_without_pickle(tmp_path):
    runs.train_cached(CFG, root=tmp_path, progress=False)
    folder = tmp_path / "runs" / CFG.key
    # a file that would run code under plain pickle is refused by weights_only=True
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    payload = pickle.dumps(Evil())
    (folder / "final.pt").write_bytes(payload)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["final.pt"] = cache.sha256(payload)  # even with a valid checksum
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="damaged"):
        runs.train_cached(CFG, root=tmp_path, progress=False)
    assert not (tmp_path / "pwned").exists()


def test_run_config_from_profile_validates():
    p = profiles.resolve("smoke")
    cfg = runs.RunConfig.from_profile(p)
    assert cfg.widths == (784, 64, 64, 10) and cfg.dataset == "synthetic"
    with pytest.raises(ValueError):
        runs.RunConfig.from_profile(p, optimiser="adam")
    with pytest.raises(ParameterError, match="valid values: mlp, resnet-small"):
        runs.RunConfig.from_profile(p, widths=(784, 10), model="resnet-huge")


def test_main_network_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(tmp_path))
    assert runs.main(["main-network", "--profile", "smoke"]) == 0
    assert "main network of profile smoke: trained" in capsys.readouterr().out
    assert runs.main(["main-network", "--profile", "smoke"]) == 0
    assert "found in the cache" in capsys.readouterr().out
    assert runs.main(["main-network", "--profile", "huge"]) == 2
    assert "valid values: full, quick, smoke" in capsys.readouterr().err


def test_main_network_keeps_the_profile_snapshots():
    q = profiles.resolve("quick")
    assert runs.RunConfig.from_profile(q).snapshot_epochs == (1, 5, 15, 30)
    # epochs at or beyond the last one are not snapshots
    assert runs.RunConfig.from_profile(q.replace(epochs=2)).snapshot_epochs == (1,)
    # another network (a family member) keeps none unless asked
    other = runs.RunConfig.from_profile(q, widths=(784, 100, 10), epochs=5)
    assert other.snapshot_epochs == ()
    asked = runs.RunConfig.from_profile(q, epochs=5, snapshot_epochs=(2,))
    assert asked.snapshot_epochs == (2,)
    assert profiles.resolve("quick", snapshots=[3, 1, 3]).snapshots == (1, 3)
    for bad in ([0], "12", [1.5]):
        with pytest.raises(ParameterError, match="snapshots"):
            profiles.resolve("quick", snapshots=bad)


def test_cache_keys_follow_the_source(tmp_path, monkeypatch):
    """Editing a module changes the keys that depend on it (no stale results)."""
    run_key, json_key = CFG.key, cache.config_key("demo", {"a": 1})
    real = cache.source_fingerprint

    def edited(modules=None):
        return real(modules) if modules is not None else "edited-analysis-code"

    monkeypatch.setattr(cache, "source_fingerprint", edited)
    monkeypatch.setattr(runs, "source_fingerprint", edited)
    assert cache.config_key("demo", {"a": 1}) != json_key  # any edit: results recomputed
    assert CFG.key == run_key  # an analysis edit does not retrain networks
    monkeypatch.setattr(runs, "source_fingerprint", lambda modules=None: "edited-training-code")
    assert CFG.key != run_key  # a training edit does
