"""The results cache: train once, reuse everywhere, never trust a damaged file.

A trained network is stored under a key derived from its full configuration (data
set, widths, optimiser settings, epochs, seed, sample cap), the package version and a
hash of the training code (:func:`source_fingerprint`); other results are keyed by a
hash of the whole package, so editing the code never shows a stale result:

    <cache>/runs/<key>/initial.pt, final.pt, snap-<epoch>.pt   weights (torch.save)
    <cache>/runs/<key>/history.json                              metrics per epoch
    <cache>/runs/<key>/manifest.json                             config + sha256 of each

Every file is written to a temporary name and renamed into place, and the manifest is
written last, so an interrupted write leaves no entry that could be read. On loading,
each file's checksum is compared with the manifest and weights are read with
``torch.load(weights_only=True)`` (no pickle of arbitrary objects). A damaged entry is
reported with a warning and recomputed. :func:`cached_json` gives smaller results
(sweeps, tables) the same treatment.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .data import load, project_root
from .models import build, resolve_widths
from .profiles import Profile, check_choice, check_int
from .train import OPTIMISERS, optimiser_config, train

CACHE_ENV = "PRUNEBOUNDS_CACHE"


def cache_root() -> Path:
    """``$PRUNEBOUNDS_CACHE``, else ``<checkout>/_cache``, else ``./_cache``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    root = project_root()
    return (root if root is not None else Path.cwd()) / "_cache"


# ------------------------------------------------------------------ atomic file I/O
def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True).encode()


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


TRAINING_MODULES = ("data.py", "models.py", "train.py")  # + modern.py for non-MLP runs


def source_fingerprint(modules: tuple[str, ...] | None = None) -> str:
    """A hash of the package's source files (all, or the named ``modules``).

    It is part of every cache key, so a result is reused only by the code that computed
    it: editing a module recomputes what depends on it instead of showing stale numbers.
    Trained networks depend on :data:`TRAINING_MODULES` only; other results on all.
    """
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if modules is None or path.name in modules:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def config_key(kind: str, config: dict, code: str | None = None) -> str:
    """A short hash of ``kind``, the canonical JSON of ``config``, the version and the
    source fingerprint ``code`` (default: of the whole package)."""
    blob = json.dumps({"kind": kind, "config": config, "version": __version__,
                       "code": source_fingerprint() if code is None else code},
                      sort_keys=True, default=str)
    return _sha256(blob.encode())[:20]


def environment_stamp() -> dict:
    """Package versions and hardware, stored with every result."""
    return {
        "prunebounds": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# ------------------------------------------------------------------ trained networks
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
    model: str = "mlp"  # "mlp", or a name in prunebounds.modern.MODELS

    def __post_init__(self):
        object.__setattr__(self, "widths", resolve_widths(self.widths))
        check_choice("optimiser", self.optimiser, OPTIMISERS)
        check_int("epochs", self.epochs, minimum=0)
        check_int("seed", self.seed, minimum=0)
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
                    epochs=p.epochs, seed=p.seed, max_train=p.max_train)
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
        if self.model == "mlp":  # keeps the keys of MLP runs as they were
            del d["model"]
        return d

    @property
    def key(self) -> str:
        modules = TRAINING_MODULES + (() if self.model == "mlp" else ("modern.py",))
        return config_key("run", self.as_dict(), code=source_fingerprint(modules))


def new_model(cfg: RunConfig, seed: int | None = None):
    """An initialised network of ``cfg``'s kind (seeded with ``seed`` if given)."""
    if cfg.model == "mlp":
        return build(cfg.widths, cfg.seed if seed is None else seed)
    from .modern import MODELS  # convolutional and attention networks

    if cfg.model not in MODELS:
        raise ValueError(f"unknown model {cfg.model!r}; valid: mlp, {', '.join(MODELS)}")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(cfg.seed if seed is None else seed)
        return MODELS[cfg.model](cfg.widths)
    finally:
        torch.random.set_rng_state(state)


@dataclass
class TrainedRun:
    """A trained network with its initial weights, history and snapshots."""

    config: RunConfig
    model: torch.nn.Module
    initial: dict[str, torch.Tensor]
    history: dict
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
        if _sha256(payload) != digest:
            raise ValueError(f"checksum mismatch in {name}")
        blobs[name] = payload

    def weights(name: str) -> dict:
        return torch.load(io.BytesIO(blobs[name]), weights_only=True, map_location="cpu")

    model = new_model(cfg)
    model.load_state_dict(weights("final.pt"))
    snaps = {e: weights(f"snap-{e}.pt") for e in cfg.snapshot_epochs
             if e not in (0, cfg.epochs)}
    return TrainedRun(cfg, model, weights("initial.pt"), json.loads(blobs["history.json"]),
                      snaps, from_cache=True, meta=manifest.get("meta", {}))


def _store_entry(folder: Path, run: TrainedRun) -> None:
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():  # an old or damaged entry: invalidate before rewriting
        manifest_path.unlink()
    files = {
        "initial.pt": _tensor_bytes(run.initial),
        "final.pt": _tensor_bytes(run.model.state_dict()),
        "history.json": _json_bytes(run.history),
    }
    for e, state in run.snapshots.items():
        files[f"snap-{e}.pt"] = _tensor_bytes(state)
    for name, payload in files.items():
        atomic_write_bytes(folder / name, payload)
    manifest = {"config": run.config.as_dict(), "version": __version__, "meta": run.meta,
                "files": {name: _sha256(p) for name, p in files.items()}}
    atomic_write_bytes(manifest_path, _json_bytes(manifest))


def train_cached(cfg: RunConfig, *, progress: bool = True, use_cache: bool = True,
                 root: Path | None = None) -> TrainedRun:
    """Train the network described by ``cfg``, or load it from the cache.

    A cache entry that is missing, partial, damaged or from another package version
    is (re)computed; a damaged one is reported with a warning.
    """
    folder = (root or cache_root()) / "runs" / cfg.key
    if use_cache and (folder / "manifest.json").exists():
        try:
            return _load_entry(folder, cfg)
        except Exception as exc:  # any damage means: recompute, never crash
            warnings.warn(f"cache entry {folder} is damaged ({exc}); retraining", stacklevel=2)
    data = load(cfg.dataset, train_fraction=cfg.train_fraction, max_train=cfg.max_train)
    model = new_model(cfg)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    history = train(model, data, optimiser_config(cfg.optimiser), cfg.epochs, cfg.seed,
                    snapshot_epochs=cfg.snapshot_epochs, progress=progress)
    seconds = time.perf_counter() - start
    snapshots = {e: s for e, s in history.pop("snapshots").items() if e not in (0, cfg.epochs)}
    meta = {"train_seconds": seconds, **environment_stamp()}
    run = TrainedRun(cfg, model, initial, history, snapshots, from_cache=False, meta=meta)
    if use_cache:
        _store_entry(folder, run)
    return run


# ------------------------------------------------------------------ small JSON results
def cached_json(kind: str, config: dict, compute: Callable[[], dict], *,
                use_cache: bool = True, root: Path | None = None) -> dict:
    """``compute()`` once per (``kind``, ``config``, version); later calls read the file.

    The file holds the configuration and version next to the result and is rejected
    (with a warning) and recomputed when it is damaged or does not match.
    """
    key = config_key(kind, config)
    path = (root or cache_root()) / "results" / f"{kind}-{key}.json"
    if use_cache and path.exists():
        try:
            stored = json.loads(path.read_text())
            if stored["config"] == json.loads(json.dumps(config)) and stored["version"] == __version__:
                return stored["result"]
            raise ValueError("configuration or version mismatch")
        except Exception as exc:
            warnings.warn(f"cached result {path} is damaged ({exc}); recomputing", stacklevel=2)
    result = compute()
    if use_cache:
        atomic_write_bytes(path, _json_bytes({"kind": kind, "config": config,
                                              "version": __version__, "result": result,
                                              "meta": environment_stamp()}))
    return result


def clear(root: Path | None = None) -> None:
    """Remove the whole cache folder."""
    shutil.rmtree(root or cache_root(), ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m prunebounds.experiments main-network [--profile P]``: train (or find in
    the cache) the main network of a profile, the one every chapter starts from.

    ``make book`` runs this once before it executes the chapters several at a time, so
    that they do not each train the same network.
    """
    import argparse
    import sys

    from .errors import ParameterError
    from .profiles import PROFILES, from_environment, resolve

    parser = argparse.ArgumentParser(prog="python -m prunebounds.experiments",
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
