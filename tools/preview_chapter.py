"""Render one executed chapter into a small preview book (for chapter authors).

    python tools/preview_chapter.py EXECUTED.ipynb [--out /tmp/preview]

Builds a book holding the preface, notation, references, the setting chapter (executed,
from _build/executed/<profile>/ if there) and the given chapter, with the same settings
as `make book` (-W -n --keep-going). Warnings about links to chapters that are not in
the preview, and about claims those chapters record (the preface's `{claim}` values),
can be ignored; every other warning must be fixed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, default=Path("/tmp/preview"))
    args = parser.parse_args()
    stage = args.out / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", stage)
    shutil.copytree(ROOT / "book", stage / "book")
    (stage / "src").symlink_to(ROOT / "src")
    name = args.notebook.stem
    shutil.copy(args.notebook, stage / "notebooks" / f"{name}.ipynb")
    for md in (ROOT / "notebooks").glob("*.md"):  # text sources, for the download links
        shutil.copy(md, stage / "notebooks" / md.name)
    chapters = ["book/notation"]
    for profile in ("smoke", "quick"):
        setting = ROOT / "_build" / "executed" / profile / "setting.ipynb"
        if setting.exists() and name != "setting":
            shutil.copy(setting, stage / "notebooks" / "setting.ipynb")
            chapters.append("notebooks/setting")
            break
    chapters += [f"notebooks/{name}", "book/references"]
    toc = "format: jb-book\nroot: book/preface\nchapters:\n" + "".join(
        f"  - file: {c}\n" for c in chapters)
    (stage / "_toc.yml").write_text(toc)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(stage),
           "--path-output", str(args.out), "-W", "-n", "--keep-going"]
    code = subprocess.call(cmd)
    print(f"preview: {args.out / '_build' / 'html' / 'notebooks' / (name + '.html')}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
