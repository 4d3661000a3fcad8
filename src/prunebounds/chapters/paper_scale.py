"""The paper-scale run (``python -m prunebounds.chapters full-results``): every chapter's
results without notebooks.

Its functions live here, not in ``__main__``, so that the worker processes (spawned, not
forked: CUDA) can import them by name.

Meant for one GPU, it

1. trains (or finds in the cache) the profile's main network once, in this process, then
   the other networks that chapters declare (their optional ``runs_needed(P)``) in worker
   processes side by side: small networks leave a GPU mostly idle, so several training
   processes share it well;
2. runs each chapter's ``compute`` and ``claims`` in a fresh worker process, up to
   ``--jobs`` at a time on the same device, a chapter starting once the chapters in its
   ``REQUIRES`` are done, the slowest first;
3. writes the results file (:func:`prunebounds.claims.write_full_results`): the claim
   records, a reason for every chapter that produced none (``missing["chapter:<name>"]``),
   and the provenance of the run (profile, device, torch version, commit, the package's
   source fingerprint, date, wall time, seconds per step). The file is rewritten after
   every chapter, so a run stopped early keeps what it finished.

``--deadline`` bounds the wall time: chapters still running then are stopped and recorded
as missing, with the reason. ``--merge`` keeps the chapters of an earlier results file that
this run does not redo (with ``--only``, to rerun the chapters that failed).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from .. import __version__
from ..cache import source_fingerprint
from ..claims import Claim, load_full_results, parse_full_results, write_full_results
from ..data import project_root
from ..devices import resolve_device
from ..errors import PruneBoundsError
from ..profiles import PROFILES, Profile, resolve
from ..runs import RunConfig, train_cached
from . import CHAPTERS, load

#: Chapters started first when several are ready (the slowest at full scale).
LONGEST_FIRST = ("lottery_tickets", "generalization_bound", "beyond_mlps", "certificate",
                 "reviewers", "pruning_error", "sketching", "gaussian_weights")


def _commit() -> str:
    """The checkout's commit (``git rev-parse HEAD``), or ``$PRUNEBOUNDS_COMMIT``."""
    env = os.environ.get("PRUNEBOUNDS_COMMIT", "").strip()
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root() or Path.cwd(),
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _device_name(P: Profile) -> str:
    device = resolve_device(P.device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _train(cfg: RunConfig, threads: int) -> tuple[str, float]:
    """Worker: train (or find in the cache) one network."""
    torch.set_num_threads(max(1, threads))
    start = time.perf_counter()
    train_cached(cfg, progress=False)
    return cfg.key, time.perf_counter() - start


def _run_chapter(name: str, P: Profile, threads: int) -> tuple[str, list[dict], float]:
    """Worker: one chapter's compute and claims, as JSON-able records."""
    torch.set_num_threads(max(1, threads))
    start = time.perf_counter()
    module = load(name)
    result = module.compute(P, progress=False)
    records = [c.to_dict() for c in module.claims(result)]
    return name, records, time.perf_counter() - start


def networks_needed(names: list[str], P: Profile) -> list[RunConfig]:
    """Every network the chapters ``names`` declare, once each, the main network left out."""
    main_key = RunConfig.from_profile(P).key
    found: dict[str, RunConfig] = {}
    for name in names:
        for cfg in getattr(load(name), "runs_needed", lambda _: [])(P):
            if cfg.key != main_key:
                found.setdefault(cfg.key, cfg)
    return list(found.values())


def _order(names: list[str]) -> list[str]:
    first = [n for n in LONGEST_FIRST if n in names]
    return first + [n for n in names if n not in first]


class _Results:
    """What the run has so far, written to ``out`` after every change."""

    def __init__(self, P: Profile, out: Path, names: list[str], merge: bool):
        self.out, self.start = out, time.perf_counter()
        self.claims: dict[str, list[Claim]] = {}      # chapter -> its claims
        self.missing: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        if merge and out.exists():   # keep the chapters this run does not redo
            old = load_full_results(out) if P.name == "full" else parse_full_results(
                json.loads(out.read_text()), profile=P.name)
            by_chapter = old.provenance.get("claims_by_chapter", {})
            for chapter, ids in by_chapter.items():
                if chapter not in names:
                    self.claims[chapter] = [c for c in old.claims if c.id in ids]
            self.missing = {k: v for k, v in old.missing.items()
                            if k.removeprefix("chapter:") not in names}
            self.seconds = {k: v for k, v in old.provenance.get("seconds", {}).items()
                            if k not in names}
        self.provenance = {
            "profile": P.name, "device": _device_name(P), "torch": torch.__version__,
            "commit": _commit(), "source_fingerprint": source_fingerprint(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": 0.0, "prunebounds": __version__, "seconds": self.seconds,
        }

    def chapter_done(self, name: str, records: list[dict], seconds: float) -> None:
        self.claims[name] = [Claim.from_dict(r) for r in records]
        self.seconds[name] = round(seconds, 1)
        self.missing.pop(f"chapter:{name}", None)
        self.flush()

    def chapter_missing(self, name: str, why: str) -> None:
        self.missing[f"chapter:{name}"] = why
        self.flush()

    def flush(self) -> None:
        self.provenance["wall_seconds"] = round(time.perf_counter() - self.start, 1)
        self.provenance["claims_by_chapter"] = {n: [c.id for c in cs]
                                                for n, cs in self.claims.items()}
        write_full_results(self.out, [c for cs in self.claims.values() for c in cs],
                           self.missing, self.provenance)


def full_results(P: Profile, out: Path, *, jobs: int = 8, deadline: float | None = None,
                 chapters: list[str] | None = None, merge: bool = False) -> dict[str, float]:
    """Run the chapters of profile ``P`` and write ``out``; returns seconds per step."""
    names = list(chapters or CHAPTERS)
    res = _Results(P, out, names, merge)
    stop_at = res.start + deadline if deadline else float("inf")
    threads = max(1, (os.cpu_count() or 2) // jobs)
    ctx = mp.get_context("spawn")

    t = time.perf_counter()
    train_cached(RunConfig.from_profile(P), progress=False)
    res.seconds["main network"] = round(time.perf_counter() - t, 1)
    print(f"main network: {res.seconds['main network']:.0f} s", flush=True)

    networks = networks_needed(names, P)
    if networks:
        t = time.perf_counter()
        with ctx.Pool(jobs, maxtasksperchild=1) as pool:
            pending = [pool.apply_async(_train, (cfg, threads)) for cfg in networks]
            for job in pending:
                job.wait(None if deadline is None else max(0.0, stop_at - time.perf_counter()))
            failed = [cfg.key for cfg, job in zip(networks, pending)
                      if not job.ready() or not job.successful()]
            pool.terminate()
        res.seconds["other networks"] = round(time.perf_counter() - t, 1)
        print(f"{len(networks)} other networks: {res.seconds['other networks']:.0f} s"
              + (f" ({len(failed)} not trained: {failed})" if failed else ""), flush=True)

    requires = {n: tuple(r for r in getattr(load(n), "REQUIRES", ()) if r in names)
                for n in names}
    waiting, running, done = _order(names), {}, set()
    with ctx.Pool(jobs, maxtasksperchild=1) as pool:
        while waiting or running:
            for name in [n for n in waiting if set(requires[n]) <= done]:
                if len(running) < jobs:
                    waiting.remove(name)
                    running[name] = pool.apply_async(_run_chapter, (name, P, threads))
            if not running:      # what is left waits for a chapter that failed
                for name in waiting:
                    res.chapter_missing(name, "not run: it needs " + ", ".join(requires[name])
                                        + ", which did not finish")
                break
            if time.perf_counter() > stop_at:
                for name in list(running) + waiting:
                    res.chapter_missing(name, f"did not finish within the run's deadline of "
                                              f"{deadline:.0f} s")
                pool.terminate()
                break
            time.sleep(0.5)
            for name, job in list(running.items()):
                if not job.ready():
                    continue
                del running[name]
                try:
                    _, records, secs = job.get()
                except Exception as exc:  # a chapter's failure is recorded, not fatal
                    print(f"chapter {name} FAILED: {type(exc).__name__}: {exc}\n"
                          f"{getattr(exc, '__cause__', '') or ''}", file=sys.stderr, flush=True)
                    res.chapter_missing(name, f"the run failed: {type(exc).__name__}: {exc}")
                    continue
                done.add(name)
                res.chapter_done(name, records, secs)
                print(f"chapter {name}: {secs:.0f} s, {len(records)} claims", flush=True)
    res.flush()
    return dict(res.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prunebounds.chapters",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["full-results"])
    parser.add_argument("--profile", default="full", help=f"one of {', '.join(PROFILES)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default: <checkout>/results/<profile>.json)")
    parser.add_argument("--jobs", type=int, default=8, help="worker processes side by side")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds after which unfinished chapters are stopped")
    parser.add_argument("--only", default=None,
                        help="comma-separated chapters (default: all, in the book's order)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other chapters of an existing results file")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")
    args = parser.parse_args(argv)
    try:
        P = resolve(args.profile, device=args.device)
        chapters = [c.strip() for c in args.only.split(",")] if args.only else None
        for name in chapters or ():
            load(name)
        if args.jobs < 1:
            raise PruneBoundsError(f"--jobs must be >= 1, got {args.jobs}")
        if args.deadline is not None and args.deadline <= 0:
            raise PruneBoundsError(f"--deadline must be > 0 seconds, got {args.deadline}")
    except PruneBoundsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or (project_root() or Path.cwd()) / "results" / f"{P.name}.json"
    seconds = full_results(P, out, jobs=args.jobs, deadline=args.deadline, chapters=chapters,
                           merge=args.merge)
    print(f"wrote {out}: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return 0

