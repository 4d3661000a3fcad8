"""The results cache: compute once, reuse everywhere, never trust a damaged file.

A result is stored under a key derived from its kind, its full configuration, the
package version and a hash of the package's source (:func:`source_fingerprint`), so
editing the code never shows a stale result. This module holds the machinery shared by
every cached thing; it imports no model code (trained networks are cached by
:mod:`prunebounds.runs` with the same machinery):

* atomic writes (:func:`atomic_write_bytes`): a temporary file in the same folder,
  ``fsync``, then a rename, so an interrupted write leaves no entry that could be read.
  The temporaries are named ``.<name>.tmp-<pid>-<random>``; one left behind by a killed
  process (a PID that no longer runs) is removed by the next write into that folder
  (:func:`remove_stale_temporaries`);
* checksums (SHA-256) stored with every entry and compared on every read;
* :func:`cached_json` for results that are plain JSON (dicts, lists, numbers) and
  :func:`cached_result` for results that are (nested) dataclasses: they are written
  with :func:`to_jsonable` and rebuilt from the class's type hints by
  :func:`from_jsonable`;
* :func:`cached_tensors` for tensors (trained weights, masks) with JSON info beside them,
  stored with ``torch.save`` and read with ``torch.load(weights_only=True)``.

Nothing is ever read with pickle. An entry that is unreadable, does not match its
configuration or version, or whose checksum does not match its content (a value edited
by hand) is reported with a warning and recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import re
import shutil
import types
import typing
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from . import __version__
from .data import project_root

__all__ = [
    "CACHE_ENV",
    "cache_root",
    "atomic_write_bytes",
    "remove_stale_temporaries",
    "json_bytes",
    "sha256",
    "source_fingerprint",
    "config_key",
    "environment_stamp",
    "to_jsonable",
    "from_jsonable",
    "cached_json",
    "cached_result",
    "clear",
    "cached_tensors",
]

CACHE_ENV = "PRUNEBOUNDS_CACHE"
T = TypeVar("T")


def cache_root() -> Path:
    """``$PRUNEBOUNDS_CACHE``, else ``<checkout>/_cache``, else ``./_cache``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    root = project_root()
    return (root if root is not None else Path.cwd()) / "_cache"


# ------------------------------------------------------------------ atomic file I/O
_TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}$")


def _pid_running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: it runs
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries of :func:`atomic_write_bytes` left in ``folder`` by dead processes.

    A temporary ``.<name>.tmp-<pid>-<hex>`` whose process no longer runs can never be
    completed (a kill or a crash between its creation and the rename). Temporaries of
    running processes, this one included, are left alone. Returns the removed paths.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except FileNotFoundError:
        return removed
    for path in entries:
        match = _TEMPORARY.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _pid_running(int(match.group(1))):
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:  # another process removed it first
                pass
    return removed


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder + rename.

    Stale temporaries of dead processes in that folder are removed first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
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


def json_bytes(obj: Any) -> bytes:
    """Canonical JSON (sorted keys) of ``obj``: the bytes that are stored and checksummed."""
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True).encode()


def sha256(payload: bytes) -> str:
    """The SHA-256 hex digest of ``payload``."""
    return hashlib.sha256(payload).hexdigest()


# ------------------------------------------------------------------ keys
def source_fingerprint(modules: tuple[str, ...] | None = None) -> str:
    """A hash of the package's source files (all, subpackages included, or the named
    ``modules``, given by their path inside the package, e.g. ``"chapters/setting.py"``).

    It is part of every cache key, so a result is reused only by the code that computed
    it: editing a module recomputes what depends on it instead of showing stale numbers.
    """
    package = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()   # "data.py", "chapters/setting.py"
        if modules is None or name in modules:
            h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def config_key(kind: str, config: dict, code: str | None = None) -> str:
    """A short hash of ``kind``, the canonical JSON of ``config``, the version and the
    source fingerprint ``code`` (default: of the whole package)."""
    blob = json.dumps({"kind": kind, "config": config, "version": __version__,
                       "code": source_fingerprint() if code is None else code},
                      sort_keys=True, default=str)
    return sha256(blob.encode())[:20]


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


# ------------------------------------------------------------------ dataclasses <-> JSON
def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: dataclasses become dicts of their fields (as
    ``dataclasses.asdict`` does), tuples become lists, numpy and 0-d torch numbers
    become Python numbers."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        return obj.item()  # numpy scalar
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON")


def from_jsonable(tp: Any, value: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`to_jsonable`'s output.

    Understands dataclasses (fields rebuilt from their type hints), ``list[T]``,
    ``tuple[T, ...]``, ``tuple[A, B]``, ``dict[K, V]`` (keys converted back to ``K``),
    ``X | None``, ``int``, ``float``, ``bool``, ``str`` and ``Any`` (kept as read).
    """
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return from_jsonable(arg, value)
            except (TypeError, ValueError, KeyError) as exc:
                errors.append(exc)
        raise TypeError(f"{value!r} fits none of {tp}: {errors}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__} needs an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        missing = {f.name for f in fields} - set(value)
        if missing:
            raise KeyError(f"{tp.__name__}: missing field(s) {sorted(missing)}")
        return tp(**{f.name: from_jsonable(hints[f.name], value[f.name]) for f in fields})
    if origin in (list, tuple, dict) or tp in (list, tuple, dict):
        args = typing.get_args(tp)
        if origin is dict or tp is dict:
            if not isinstance(value, dict):
                raise TypeError(f"expected an object for {tp}, got {type(value).__name__}")
            kt, vt = args if args else (Any, Any)
            return {_key(kt, k): from_jsonable(vt, v) for k, v in value.items()}
        if not isinstance(value, list):
            raise TypeError(f"expected a list for {tp}, got {type(value).__name__}")
        if origin is list or tp is list:
            item = args[0] if args else Any
            return [from_jsonable(item, v) for v in value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], v) for v in value)
        if args:
            if len(args) != len(value):
                raise TypeError(f"expected {len(args)} items for {tp}, got {len(value)}")
            return tuple(from_jsonable(a, v) for a, v in zip(args, value))
        return tuple(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        return value
    raise TypeError(f"cannot rebuild a value of type {tp!r}")


def _key(tp: Any, key: str) -> Any:
    """A dict key read back from JSON (where every key is a string) as type ``tp``."""
    if tp in (int, float):
        try:
            return tp(key)
        except ValueError:
            raise TypeError(f"key {key!r} is not a {tp.__name__}") from None
    return from_jsonable(tp, key)


# ------------------------------------------------------------------ cached results
def _results_path(kind: str, config: dict, root: Path | None) -> Path:
    return (root or cache_root()) / "results" / f"{kind}-{config_key(kind, config)}.json"


def _read_checked(path: Path, kind: str, config: dict) -> Any:
    """The stored result, after every check (raises on any mismatch)."""
    stored = json.loads(path.read_text())
    if stored.get("kind") != kind or stored.get("version") != __version__:
        raise ValueError("kind or version mismatch")
    if stored.get("config") != json.loads(json.dumps(config)):
        raise ValueError("configuration mismatch")
    if stored.get("sha256") != sha256(json_bytes(stored["result"])):
        raise ValueError("checksum mismatch: the stored result was changed after it was written")
    return stored["result"]


def _cached(kind: str, config: dict, compute: Callable[[], Any], encode: Callable[[Any], Any],
            decode: Callable[[Any], Any] | None, use_cache: bool, root: Path | None) -> Any:
    """The shared body of :func:`cached_json` and :func:`cached_result`.

    ``decode=None`` returns a fresh result as computed and a stored one as read;
    otherwise both go through ``decode(encode(.))``, so they are of the same types.
    """
    path = _results_path(kind, config, root)
    if use_cache and path.exists():
        try:
            stored = _read_checked(path, kind, config)
            return stored if decode is None else decode(stored)
        except Exception as exc:  # any damage means: recompute, never crash
            warnings.warn(f"cached result {path} is damaged ({exc}); recomputing", stacklevel=3)
    result = compute()
    stored = encode(result)
    if use_cache:
        atomic_write_bytes(path, json_bytes({
            "kind": kind, "config": config, "version": __version__, "result": stored,
            "sha256": sha256(json_bytes(stored)), "meta": environment_stamp()}))
    return result if decode is None else decode(stored)


def cached_json(kind: str, config: dict, compute: Callable[[], Any], *,
                use_cache: bool = True, root: Path | None = None) -> Any:
    """``compute()`` once per (``kind``, ``config``, version, source); later calls read the file.

    The result must be plain JSON (dicts, lists, numbers, strings). The file holds the
    configuration, the version and a SHA-256 of the result next to it; it is rejected
    (with a warning) and recomputed when it is damaged, does not match, or its
    checksum does not match its content.
    """
    return _cached(kind, config, compute, lambda r: r, None, use_cache, root)


def cached_result(kind: str, config: dict, compute: Callable[[], T], cls: type[T], *,
                  use_cache: bool = True, root: Path | None = None) -> T:
    """:func:`cached_json` for a result of dataclass (or list, tuple, dict) type ``cls``.

    ``compute()`` returns a ``cls``; it is stored with :func:`to_jsonable` and rebuilt
    with :func:`from_jsonable` (a file that no longer fits ``cls`` counts as damaged), so
    the caller gets the same typed object whether it was computed now or read back.
    """
    return _cached(kind, config, compute, to_jsonable, lambda r: from_jsonable(cls, r),
                   use_cache, root)


def clear(root: Path | None = None) -> None:
    """Remove the whole cache folder."""
    shutil.rmtree(root or cache_root(), ignore_errors=True)



# ------------------------------------------------------------------ cached tensors
def _tensors_paths(kind: str, config: dict, root: Path | None,
                   modules: tuple[str, ...] | None) -> tuple[Path, Path]:
    stem = f"{kind}-{config_key(kind, config, code=source_fingerprint(modules))}"
    folder = (root or cache_root()) / "tensors"
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def _read_tensors(payload_path: Path, manifest_path: Path, kind: str,
                  config: dict) -> tuple[dict[str, torch.Tensor], Any]:
    """The stored tensors and info, after every check (raises on any mismatch)."""
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("kind") != kind or manifest.get("version") != __version__:
        raise ValueError("kind or version mismatch")
    if manifest.get("config") != json.loads(json.dumps(config)):
        raise ValueError("configuration mismatch")
    if manifest.get("info_sha256") != sha256(json_bytes(manifest.get("info"))):
        raise ValueError("checksum mismatch in the info: it was changed after it was written")
    payload = payload_path.read_bytes()
    if manifest.get("sha256") != sha256(payload):
        raise ValueError("checksum mismatch in the tensors")
    tensors = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor)
                                                for v in tensors.values()):
        raise ValueError("the stored payload is not a dict of tensors")
    return tensors, manifest["info"]


def cached_tensors(kind: str, config: dict,
                   compute: Callable[[], tuple[dict[str, torch.Tensor], Any]], *,
                   use_cache: bool = True, root: Path | None = None,
                   modules: tuple[str, ...] | None = None
                   ) -> tuple[dict[str, torch.Tensor], Any]:
    """Tensors (trained weights, masks) and JSON info, computed once per configuration.

    ``compute()`` returns ``(tensors, info)``: a dict of name -> tensor and a plain-JSON
    value. They are stored as ``<cache>/tensors/<kind>-<key>.pt`` (``torch.save`` of the
    tensors moved to the CPU) and ``<kind>-<key>.json`` (the configuration, the version,
    the info and the SHA-256 of both), each written atomically, the manifest last. On
    reading, both checksums are compared and the tensors are loaded with
    ``torch.load(weights_only=True)`` (no pickle of arbitrary objects). A damaged,
    mismatched or edited entry is reported with a warning and recomputed. Returns
    ``(tensors, info)`` on the CPU, whether computed now or read back.

    The key covers the source of the whole package, or only of ``modules`` (file names
    such as ``"lottery.py"``) when given: the modules the tensors depend on, so that an
    edit elsewhere does not retrain a network.
    """
    payload_path, manifest_path = _tensors_paths(kind, config, root, modules)
    if use_cache and manifest_path.exists():
        try:
            return _read_tensors(payload_path, manifest_path, kind, config)
        except Exception as exc:  # any damage means: recompute, never crash
            warnings.warn(f"cached tensors {manifest_path} are damaged ({exc}); recomputing",
                          stacklevel=2)
    tensors, info = compute()
    if not isinstance(tensors, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in tensors.items()):
        raise TypeError("compute() must return (dict of name -> tensor, info)")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    info = json.loads(json_bytes(info))  # plain JSON, exactly as it will be read back
    if use_cache:
        if manifest_path.exists():  # an old or damaged entry: invalidate before rewriting
            manifest_path.unlink()
        buf = io.BytesIO()
        torch.save(tensors, buf)
        payload = buf.getvalue()
        atomic_write_bytes(payload_path, payload)
        atomic_write_bytes(manifest_path, json_bytes({
            "kind": kind, "config": config, "version": __version__, "sha256": sha256(payload),
            "info": info, "info_sha256": sha256(json_bytes(info)),
            "meta": environment_stamp()}))
    return tensors, info
