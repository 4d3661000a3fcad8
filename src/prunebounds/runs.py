"""Trained networks: what determines one, and training it once.

A :class:`RunConfig` names everything that determines a trained network (data set,
widths or zoo model, optimiser preset, epochs, seed, sample cap, kept snapshots);
:func:`train_cached` trains it, or finds it in the results cache of
:mod:`prunebounds.cache`:

    <cache>/runs/<key>/initial.pt, final.pt, snap-<epoch>.pt   weights (torch.save)
    <cache>/runs/<key>/history.json                              metrics per epoch
    <cache>/runs/<key>/manifest.json                             config + sha256 of each

The key hashes the configuration, the package version and the source of the modules
that training depends on (:data:`TRAINING_MODULES`). Every file is written atomically
and the manifest last, so an interrupted write leaves no entry that could be read. On
loading, each file's checksum is compared with the manifest and weights are read with
``torch.load(weights_only=True)`` (no pickle of arbitrary objects). A damaged entry is
reported with a warning and retrained.

``python -m prunebounds.runs main-network [--profile P]`` trains the main network of a
profile once (``make book`` runs it before the chapters).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .cache import (atomic_write_bytes, cache_root, config_key, environment_stamp,
                    from_jsonable, json_bytes, sha256, source_fingerprint, to_jsonable)
from .data import INPUT_SHAPES, N_CLASSES, load
from .devices import AUTO, resolve_device
from .errors import ParameterError
from .models import build, resolve_widths
from .profiles import PROFILES, Profile, from_environment, resolve
from .train import OPTIMISERS, TrainingHistory, optimiser_config, train
from .validate import check_choice, check_int
from .zoo import MODELS

__all__ = ["TRAINING_MODULES", "RunConfig", "new_model", "TrainedRun", "check_widths_fit",
           "train_cached", "main"]

#: The modules a trained MLP depends on (their source is part of the cache key); the
#: networks of :mod:`prunebounds.zoo` depend on ``zoo.py`` too.
TRAINING_MODULES = ("data.py", "models.py", "train.py", "margins.py")


def check_widths_fit(widths: tuple[int, ...], n_features: int, n_classes: int,
                     dataset: str) -> None:
    """Raise a ParameterError unless ``widths`` start at the data's features and end at
    its classes."""
    if widths[0] != n_features or widths[-1] != n_classes:
        raise ParameterError(
            f"widths {list(widths)} do not fit the data set {dataset!r}, which has "
            f"{n_features} features and {n_classes} classes: the first width must be "
            f"{n_features} and the last {n_classes}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a trained network."""

    dataset: str
    widths: tuple[int, ...]
    optimiser: str
    epochs: int
    seed: int
    max_train: int | None = None
    train_fraction: float = 0.8
    snapshot_epochs: tuple[int, ...] = ()
    model: str = "mlp"  # "mlp", or a name in prunebounds.zoo.MODELS
    device: str = AUTO  # where it is trained; resolved here ("auto": CUDA if available)

    def __post_init__(self):
        object.__setattr__(self, "widths", resolve_widths(self.widths))
        object.__setattr__(self, "device", str(resolve_device(self.device)))
        check_choice("dataset", self.dataset, INPUT_SHAPES)
        check_choice("optimiser", self.optimiser, OPTIMISERS)
        check_choice("model", self.model, ("mlp", *MODELS))
        check_int("epochs", self.epochs, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_widths_fit(self.widths, math.prod(INPUT_SHAPES[self.dataset]), N_CLASSES,
                         self.dataset)
        snaps = tuple(sorted({check_int("snapshot epoch", e, minimum=0)
                              for e in self.snapshot_epochs}))
        object.__setattr__(self, "snapshot_epochs", snaps)

    @classmethod
    def from_profile(cls, p: Profile, **changes: Any) -> "RunConfig":
        """The main network of profile ``p``, with optional field changes.

        The main network keeps its weights after the profile's ``snapshots`` epochs (those
        before its last epoch). A call that changes the network, its data, seed or epochs
        describes another network and keeps no snapshots unless it asks for them.
        """
        base = dict(dataset=p.dataset, widths=resolve_widths(p.arch), optimiser=p.optimiser,
                    epochs=p.epochs, seed=p.seed, max_train=p.max_train,
                    device=str(resolve_device(p.device)))
        if "snapshot_epochs" not in changes:
            other = any(k in changes and changes[k] != base[k] for k in base)
            base["snapshot_epochs"] = () if other else tuple(
                e for e in p.snapshots if e < p.epochs)
        base.update(changes)
        return cls(**base)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["snapshot_epochs"] = list(self.snapshot_epochs)
        d["optimiser_settings"] = optimiser_config(self.optimiser).as_dict()
        # the kind of device enters the key (a network trained on a GPU is not bit for bit
        # the CPU one); which GPU of a machine does not
        d["device"] = torch.device(self.device).type
        if self.model == "mlp":  # keeps the keys of MLP runs as they were
            del d["model"]
        return d

    @property
    def key(self) -> str:
        modules = TRAINING_MODULES + (() if self.model == "mlp" else ("zoo.py",))
        return config_key("run", self.as_dict(), code=source_fingerprint(modules))


def new_model(cfg: RunConfig, seed: int | None = None) -> torch.nn.Module:
    """An initialised network of ``cfg``'s kind (seeded with ``seed`` if given)."""
    if cfg.model == "mlp":
        return build(cfg.widths, cfg.seed if seed is None else seed)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(cfg.seed if seed is None else seed)
        return MODELS[cfg.model](cfg.widths)
    finally:
        torch.random.set_rng_state(state)


@dataclass
class TrainedRun:
    """A trained network with its initial weights, history and snapshots.

    Every tensor is on the CPU, whichever device trained the network (as when it is read
    from the cache); ``model.to(device)`` for an analysis on a GPU.
    """

    config: RunConfig
    model: torch.nn.Module
    initial: dict[str, torch.Tensor]
    history: TrainingHistory
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    from_cache: bool = False
    meta: dict = field(default_factory=dict)

    def model_at(self, epoch: int) -> torch.nn.Module:
        """The network as it was after ``epoch`` epochs (0: at initialisation)."""
        if epoch == self.config.epochs:
            state = self.model.state_dict()
        elif epoch == 0:
            state = self.initial
        elif epoch in self.snapshots:
            state = self.snapshots[epoch]
        else:
            raise KeyError(f"no snapshot at epoch {epoch}; stored: "
                           f"{sorted({0, self.config.epochs, *self.snapshots})}")
        net = new_model(self.config)
        net.load_state_dict(state)
        return net


def _tensor_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _load_entry(folder: Path, cfg: RunConfig) -> TrainedRun:
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("config") != cfg.as_dict() or manifest.get("version") != __version__:
        raise ValueError("manifest does not match the configuration")
    blobs = {}
    for name, digest in manifest["files"].items():
        payload = (folder / name).read_bytes()
        if sha256(payload) != digest:
            raise ValueError(f"checksum mismatch in {name}")
        blobs[name] = payload

    def weights(name: str) -> dict:
        return torch.load(io.BytesIO(blobs[name]), weights_only=True, map_location="cpu")

    model = new_model(cfg)
    model.load_state_dict(weights("final.pt"))
    snaps = {e: weights(f"snap-{e}.pt") for e in cfg.snapshot_epochs
             if e not in (0, cfg.epochs)}
    history = from_jsonable(TrainingHistory, json.loads(blobs["history.json"]))
    return TrainedRun(cfg, model, weights("initial.pt"), history, snaps, from_cache=True,
                      meta=manifest.get("meta", {}))


def _store_entry(folder: Path, run: TrainedRun) -> None:
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():  # an old or damaged entry: invalidate before rewriting
        manifest_path.unlink()
    files = {
        "initial.pt": _tensor_bytes(run.initial),
        "final.pt": _tensor_bytes(run.model.state_dict()),
        "history.json": json_bytes(to_jsonable(run.history)),
    }
    for e, state in run.snapshots.items():
        files[f"snap-{e}.pt"] = _tensor_bytes(state)
    for name, payload in files.items():
        atomic_write_bytes(folder / name, payload)
    manifest = {"config": run.config.as_dict(), "version": __version__, "meta": run.meta,
                "files": {name: sha256(p) for name, p in files.items()}}
    atomic_write_bytes(manifest_path, json_bytes(manifest))


def train_cached(cfg: RunConfig, *, progress: bool = True, use_cache: bool = True,
                 root: Path | None = None) -> TrainedRun:
    """Train the network described by ``cfg``, or load it from the cache.

    The network is trained on ``cfg.device`` (the data are moved there once) and
    returned on the CPU. A cache entry that is missing, partial, damaged or from another
    package version is (re)computed; a damaged one is reported with a warning. Widths
    that do not fit the data set raise a ParameterError naming its features and classes.
    """
    folder = (root or cache_root()) / "runs" / cfg.key
    if use_cache and (folder / "manifest.json").exists():
        try:
            return _load_entry(folder, cfg)
        except Exception as exc:  # any damage means: recompute, never crash
            warnings.warn(f"cache entry {folder} is damaged ({exc}); retraining", stacklevel=2)
    data = load(cfg.dataset, train_fraction=cfg.train_fraction, max_train=cfg.max_train)
    check_widths_fit(cfg.widths, data.n_features, data.n_classes, cfg.dataset)
    model = new_model(cfg)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    history, snaps = train(model, data, optimiser_config(cfg.optimiser), cfg.epochs, cfg.seed,
                           snapshot_epochs=cfg.snapshot_epochs, progress=progress,
                           device=cfg.device)
    seconds = time.perf_counter() - start
    model.cpu()
    snapshots = {e: {k: v.cpu() for k, v in s.items()} for e, s in snaps.items()
                 if e not in (0, cfg.epochs)}
    meta = {"train_seconds": seconds, "device": cfg.device, **environment_stamp()}
    run = TrainedRun(cfg, model, initial, history, snapshots, from_cache=False, meta=meta)
    if use_cache:
        _store_entry(folder, run)
    return run


def main(argv: list[str] | None = None) -> int:
    """``python -m prunebounds.runs main-network [--profile P]``: train (or find in the
    cache) the main network of a profile, the one every chapter starts from.

    ``make book`` runs this once before it executes the chapters several at a time, so
    that they do not each train the same network.
    """
    parser = argparse.ArgumentParser(prog="python -m prunebounds.runs",
                                     description=main.__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["main-network"])
    parser.add_argument("--profile", default=None,
                        help=f"one of {', '.join(PROFILES)} (default: $PRUNEBOUNDS_PROFILE "
                             f"or {from_environment()})")
    args = parser.parse_args(argv)
    try:
        p = resolve(args.profile)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    run = train_cached(RunConfig.from_profile(p))
    what = "found in the cache" if run.from_cache else "trained"
    print(f"main network of profile {p.name}: {what} ({time.perf_counter() - start:.0f} s), "
          f"key {run.config.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
