"""``python -m prunebounds.chapters full-results``: every chapter's results without notebooks.

The paper-scale run of the book (issue: "the paper's scale on one GPU"). It

1. trains (or finds in the cache) the profile's main network once, in this process;
2. runs each chapter's ``compute`` and ``claims`` in a worker process of its own, up to
   ``--jobs`` at a time on the same device, a chapter starting once the chapters in its
   ``REQUIRES`` are done (the longest-known chapters first);
3. writes ``results/full.json`` (:func:`prunebounds.claims.write_full_results`): the claim
   records, a reason for every chapter that produced none, and the provenance of the
   run (profile, device, torch version, commit, the package's source fingerprint, date,
   wall time, seconds per chapter). The file is rewritten after every chapter, so a run
   stopped early keeps what it finished.

Small networks leave a GPU mostly idle, so chapters running side by side share it well;
each worker gets an equal share of the CPU threads.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from .. import __version__
from ..cache import source_fingerprint
from ..claims import Claim, write_full_results
from ..data import project_root
from ..devices import resolve_device
from ..errors import PruneBoundsError
from ..profiles import PROFILES, Profile, resolve
from ..runs import RunConfig, train_cached
from . import CHAPTERS, load

#: Chapters started first when several are ready (the slowest at full scale).
LONGEST_FIRST = ("lottery_tickets", "beyond_mlps", "certificate", "generalization_bound",
                 "pruning_error", "reviewers", "sketching", "gaussian_weights")


def _commit() -> str:
    """The checkout's commit (``git rev-parse HEAD``), or ``$PRUNEBOUNDS_COMMIT``."""
    env = os.environ.get("PRUNEBOUNDS_COMMIT", "").strip()
    if env:
        return env
    root = project_root()
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or Path.cwd(),
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _device_name(P: Profile) -> str:
    device = resolve_device(P.device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _run_chapter(name: str, P: Profile, threads: int) -> tuple[str, list[dict], float]:
    """Worker: one chapter's compute and claims, as JSON-able records."""
    torch.set_num_threads(max(1, threads))
    start = time.perf_counter()
    module = load(name)
    result = module.compute(P, progress=False)
    records = [c.to_dict() for c in module.claims(result)]
    return name, records, time.perf_counter() - start


def _order(names: list[str]) -> list[str]:
    first = [n for n in LONGEST_FIRST if n in names]
    return first + [n for n in names if n not in first]


def full_results(P: Profile, out: Path, *, jobs: int = 6,
                 chapters: list[str] | None = None) -> dict[str, float]:
    """Run the chapters of profile ``P`` and write ``out``; returns seconds per step."""
    names = list(chapters or CHAPTERS)
    start = time.perf_counter()
    seconds: dict[str, float] = {}
    claims: list[Claim] = []
    missing: dict[str, str] = {}
    provenance = {
        "profile": P.name, "device": _device_name(P), "torch": torch.__version__,
        "commit": _commit(), "source_fingerprint": source_fingerprint(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": 0.0, "prunebounds": __version__, "seconds": seconds,
    }

    def flush() -> None:
        provenance["wall_seconds"] = round(time.perf_counter() - start, 1)
        write_full_results(out, claims, missing, provenance)

    t = time.perf_counter()
    train_cached(RunConfig.from_profile(P), progress=False)
    seconds["main network"] = round(time.perf_counter() - t, 1)
    print(f"main network: {seconds['main network']:.0f} s", flush=True)

    requires = {n: tuple(r for r in getattr(load(n), "REQUIRES", ()) if r in names)
                for n in names}
    threads = max(1, (os.cpu_count() or 2) // max(1, jobs))
    done: set[str] = set()
    pending = _order(names)
    running: dict[Future, str] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        while pending or running:
            for name in [n for n in pending if set(requires[n]) <= done]:
                if len(running) >= jobs:
                    break
                pending.remove(name)
                running[pool.submit(_run_chapter, name, P, threads)] = name
            if not running:  # a requirement failed: nothing left can start
                for name in pending:
                    missing[f"chapter:{name}"] = (
                        "not run: it needs " + ", ".join(requires[name]) + ", which failed")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    text = "".join(traceback.format_exception(exc))
                    print(f"chapter {name} FAILED:\n{text}", file=sys.stderr, flush=True)
                    missing[f"chapter:{name}"] = f"the run failed: {type(exc).__name__}: {exc}"
                    continue
                done.add(name)
                _, records, secs = fut.result()
                claims.extend(Claim.from_dict(r) for r in records)
                seconds[name] = round(secs, 1)
                print(f"chapter {name}: {secs:.0f} s, {len(records)} claims", flush=True)
                flush()
    flush()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prunebounds.chapters",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["full-results"])
    parser.add_argument("--profile", default="full", help=f"one of {', '.join(PROFILES)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: <checkout>/results/<profile>.json)")
    parser.add_argument("--jobs", type=int, default=6, help="chapters run side by side")
    parser.add_argument("--only", default=None,
                        help="comma-separated chapters (default: all, in the book's order)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")
    args = parser.parse_args(argv)
    try:
        P = resolve(args.profile, device=args.device)
        chapters = args.only.split(",") if args.only else None
        for name in chapters or ():
            load(name)
        if args.jobs < 1:
            raise PruneBoundsError("--jobs must be >= 1")
    except PruneBoundsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or (project_root() or Path.cwd()) / "results" / f"{P.name}.json"
    seconds = full_results(P, out, jobs=args.jobs, chapters=chapters)
    print(f"wrote {out}: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
