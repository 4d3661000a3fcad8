"""Execute chapters with papermill: ``python tools/execute_chapters.py --profile quick
--out-dir _build/executed/quick notebooks/setting.ipynb ...``.

Each chapter runs in the ``notebooks/`` folder with ``profile`` injected as a papermill
parameter (and exported as PRUNEBOUNDS_PROFILE). The executed notebook is written to a
temporary name and renamed into place only when the whole chapter succeeded, so a
failed or interrupted run never leaves an output that ``make`` would take as current.
A failed chapter is kept as ``<name>.failed.ipynb`` for inspection.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import papermill as pm

from prunebounds.profiles import PROFILES, check_choice
from prunebounds.errors import ParameterError


def execute(notebook: Path, out_dir: Path, profile: str, parameters: dict) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook.name
    tmp = out_dir / f".{notebook.stem}.running.ipynb"
    failed = out_dir / f"{notebook.stem}.failed.ipynb"
    os.environ["PRUNEBOUNDS_PROFILE"] = profile
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook), str(tmp), parameters={"profile": profile, **parameters},
            cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
            request_save_on_cell_execute=False, execution_timeout=None,
        )
    except BaseException:
        if tmp.exists():
            os.replace(tmp, failed)
        raise
    os.replace(tmp, target)
    if failed.exists():
        failed.unlink()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="extra papermill parameter")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads of each chapter's kernel (0: torch's default); "
                             "`make book` runs chapters side by side with one share each")
    args = parser.parse_args(argv)
    if args.threads < 0:
        print("error: --threads must be >= 0", file=sys.stderr)
        return 2
    if args.threads:  # read by torch, MKL and OpenBLAS when the kernel starts
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    try:
        check_choice("profile", args.profile, PROFILES)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    extra = dict(args.parameter)
    for nb in args.notebooks:
        print(f"executing {nb} (profile {args.profile}) ...", flush=True)
        try:
            seconds = execute(nb, args.out_dir, args.profile, extra)
        except pm.PapermillExecutionError as exc:
            print(f"error: {nb} failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue}\n"
                  f"(the executed notebook is kept as "
                  f"{args.out_dir / (nb.stem + '.failed.ipynb')})", file=sys.stderr)
            return 1
        print(f"  done in {seconds:.0f} s -> {args.out_dir / nb.name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
