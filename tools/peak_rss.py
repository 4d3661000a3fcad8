"""Peak memory of a command and every process it starts (e.g. a papermill kernel).

    python tools/peak_rss.py [--interval 0.1] -- papermill notebooks/setting.ipynb out.ipynb -p profile quick

Samples the resident set size (RSS) of the command's process tree with psutil every
``interval`` seconds and prints the peak of the largest single process (for a chapter:
its kernel, which is what Binder's memory limit has to hold) and the peak of the sum
over the tree. Sampling can miss a spike shorter than the interval.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import psutil


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak_single = peak_total = 0
    peak_name = ""
    start = time.perf_counter()
    while child.poll() is None:
        total = 0
        for p in _tree(root):
            try:
                rss = p.memory_info().rss
                name = " ".join(p.cmdline()[:3])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            if rss > peak_single:
                peak_single, peak_name = rss, name
        peak_total = max(peak_total, total)
        time.sleep(args.interval)
    seconds = time.perf_counter() - start
    print(f"peak RSS: largest process {peak_single / 2**20:.0f} MiB ({peak_name}); "
          f"whole tree {peak_total / 2**20:.0f} MiB; {seconds:.0f} s; exit {child.returncode}",
          file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    raise SystemExit(main())
