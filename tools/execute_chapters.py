"""Execute chapters with papermill: ``python tools/execute_chapters.py --profile quick
--out-dir _build/executed/quick notebooks/setting.ipynb ...``.

Each chapter runs in the ``notebooks/`` folder with ``profile`` injected as a papermill
parameter (and exported as PRUNEBOUNDS_PROFILE). The executed notebook is written to a
temporary name and renamed into place only when the whole chapter succeeded, so a
failed or interrupted run never leaves an output that ``make`` would take as current.
A failed chapter is kept as ``<name>.failed.ipynb`` for inspection.

Extra parameters are given as papermill's command line gives them: ``-p NAME VALUE``
reads VALUE as papermill's ``-p`` does (``3`` is an int, ``1e6`` a float, ``True``,
``False`` and ``None`` are themselves, anything else is a string), and
``-y 'YAML'`` takes a YAML mapping for lists and the like
(``-y '{prune_d: [1, 5]}'``). A name that the chapter's ``parameters`` cell does not
define is rejected before anything runs, with the names it does define (papermill
itself would only print a notice and run the chapter with its defaults).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import papermill as pm
import yaml

from prunebounds.profiles import PROFILES, check_choice
from prunebounds.errors import ParameterError

try:  # papermill's own reading of `-p NAME VALUE` (a private helper of its CLI)
    from papermill.cli import _resolve_type as _papermill_value
except ImportError:  # pragma: no cover - older or newer papermill
    _papermill_value = None


def parse_value(text: str):
    """A ``-p`` value as papermill's command line reads it: bool, None, int, float or str."""
    if _papermill_value is not None:
        return _papermill_value(text)
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_yaml(text: str) -> dict:
    """``-y`` parameters: a YAML mapping of names to values."""
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParameterError(f"-y {text!r} is not valid YAML ({exc})") from None
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ParameterError(f"-y needs a YAML mapping of names to values, e.g. "
                             f"-y '{{prune_d: [1, 5]}}'; got {text!r}")
    return values


def check_names(notebook: Path, parameters: dict) -> None:
    """Reject parameters that ``notebook``'s ``parameters`` cell does not define."""
    if not notebook.is_file():
        raise ParameterError(f"no notebook {notebook}")
    valid = pm.inspect_notebook(str(notebook))
    unknown = sorted(set(parameters) - set(valid))
    if unknown:
        raise ParameterError(
            f"{notebook.name} has no parameter {', '.join(map(repr, unknown))}; its "
            f"parameters cell defines: {', '.join(sorted(valid)) or 'nothing'}")


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
                        metavar=("NAME", "VALUE"),
                        help="extra parameter, VALUE read as papermill's -p reads it")
    parser.add_argument("-y", "--yaml", action="append", default=[], metavar="YAML",
                        help="extra parameters as a YAML mapping, e.g. '{prune_d: [1, 5]}'")
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
        extra = {name: parse_value(value) for name, value in args.parameter}
        for text in args.yaml:
            extra.update(parse_yaml(text))
        for nb in args.notebooks:
            check_names(nb, {"profile": args.profile, **extra})
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
