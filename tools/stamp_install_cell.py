"""Write the Colab install cell (the first code cell of every chapter) from _config.yml.

    python tools/stamp_install_cell.py notebooks/*.md            # committed chapters: @main
    python tools/stamp_install_cell.py --ref SHA _build/stage/notebooks/*   # published copies
    python tools/stamp_install_cell.py --check notebooks/*.md notebooks/*.ipynb

A kernel cannot read the metadata of its own notebook, so the cell carries the address
it installs from in its text: ``prunebounds @ git+<repository.url>@<ref>``. The
repository address is written in one place, ``_config.yml`` (``repository.url``). The
ref is the branch of ``_config.yml`` (``repository.branch``) in the committed
notebooks, which Colab opens from that branch; ``make book`` stamps the exact commit
(``git rev-parse HEAD``) into the copies it publishes for download, so a downloaded
notebook installs the package of the same commit. Files are rewritten only when their
cell changes. ``--check`` changes nothing and exits 1 if a file's cell is not the one
this tool writes (``make sync`` fixes the chapters).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

TEMPLATE = '''\
# Colab only (hidden in the book): install the helper package from the commit this
# notebook comes from. Written by tools/stamp_install_cell.py from _config.yml.
import subprocess, sys
PACKAGE = "prunebounds @ {source}"
if "google.colab" in sys.modules:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(
            f"Installing the helper package failed: pip could not install {{PACKAGE!r}}.\\n"
            f"{{pip.stderr.strip()[-1500:]}}\\n\\nWhat to do: check that the runtime is "
            "online, then Runtime > Restart session and run this cell again. To install "
            f"by hand, run in a cell:  !pip install '{{PACKAGE}}'")
    print("installed", PACKAGE, "- if an import fails below: Runtime > Restart session")'''

# The first code cell of a MyST chapter (jupytext's text format).
MD_CELL = re.compile(r"(```\{code-cell\} ipython3\n:tags: \[remove-cell\]\n\n)(.*?)(\n```)", re.S)


def config(root: Path = ROOT) -> tuple[str, str]:
    """The repository address and branch of ``_config.yml``."""
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    return repo["url"].rstrip("/"), repo["branch"]


def source(url: str, ref: str) -> str:
    """pip's address of the package at ``ref`` of the repository ``url``."""
    return f"git+{url}@{ref}"


def cell(url: str, ref: str) -> str:
    return TEMPLATE.format(source=source(url, ref))


def head_commit(root: Path = ROOT) -> str | None:
    """The commit of the checkout (``git rev-parse HEAD``); None outside a git checkout.

    Warns when the package's files differ from that commit: the published notebooks
    would install the commit, without the uncommitted changes.
    """
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "pyproject.toml"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    if dirty.strip():
        print("warning: src/ or pyproject.toml has uncommitted changes; the notebooks "
              "install the committed package", file=sys.stderr)
    return out.stdout.strip()


def stamp_text(path: Path, text: str, new_cell: str) -> str:
    """``text`` of notebook ``path`` (.md or .ipynb) with its install cell replaced."""
    if path.suffix == ".md":
        match = MD_CELL.search(text)
        if match is None or "google.colab" not in match.group(2):
            raise ValueError(f"{path}: no Colab install cell (a remove-cell code cell "
                             "mentioning google.colab) found")
        return text[:match.start(2)] + new_cell + text[match.end(2):]
    if path.suffix == ".ipynb":
        nb = json.loads(text)
        first = next((c for c in nb["cells"] if c["cell_type"] == "code"), None)
        if first is None or "google.colab" not in "".join(first["source"]):
            raise ValueError(f"{path}: its first code cell is not the Colab install cell")
        first["source"] = new_cell.splitlines(keepends=True)
        return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    raise ValueError(f"{path}: not a .md or .ipynb notebook")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--ref", default=None,
                        help="git ref to install (default: _config.yml's branch; "
                             "HEAD: the checkout's commit)")
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="write the stamped copies here instead of in place; a copy "
                             "whose content is unchanged is not rewritten, so it keeps its "
                             "time and Sphinx does not read it again")
    args = parser.parse_args(argv)
    url, branch = config()
    ref = args.ref or branch
    if ref == "HEAD":
        ref = head_commit()
        if ref is None:
            print(f"warning: not a git checkout; the notebooks install the branch {branch}",
                  file=sys.stderr)
            ref = branch
    new_cell = cell(url, ref)
    stale = []
    for path in args.notebooks:
        text = path.read_text()
        try:
            stamped = stamp_text(path, text, new_cell)
        except (ValueError, json.JSONDecodeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.out_dir is not None:
            target = args.out_dir / path.name
            if not target.exists() or target.read_text() != stamped:
                args.out_dir.mkdir(parents=True, exist_ok=True)
                target.write_text(stamped)
                stale.append(target)
            continue
        if path.suffix == ".ipynb" and json.loads(stamped) == json.loads(text):
            continue  # same content: keep the file's own JSON layout
        if stamped != text:
            stale.append(path)
            if not args.check:
                path.write_text(stamped)
    if args.check and stale:
        print("the Colab install cell is not the one tools/stamp_install_cell.py writes "
              f"(installing {source(url, ref)}) in: {', '.join(map(str, stale))}; "
              "run `make sync`", file=sys.stderr)
        return 1
    if stale:
        print(f"install cell -> {source(url, ref)}: {len(stale)} file(s) updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
