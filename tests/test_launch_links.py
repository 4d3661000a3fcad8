"""Launch and download links of every chapter page point at files that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_every_chapter_page_has_working_launch_links(built_site):
    tracked = _tracked()
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))
    assert chapters
    for name in chapters:
        html = (built_site / "notebooks" / f"{name}.html").read_text()
        colab = re.findall(r'href="https://colab\.research\.google\.com/github/([^"]+)"', html)
        binder = re.findall(r'href="https://mybinder\.org/v2/gh/([^"]+)"', html)
        assert colab and binder, f"{name}: missing Colab or Binder button"
        for link in colab:
            prefix = f"{repo}/blob/{branch}/"
            assert link.startswith(prefix), link
            assert link.removeprefix(prefix) in tracked, f"Colab opens {link}: not in git ls-files"
        for link in binder:
            assert link.startswith(f"{repo}/{branch}?urlpath="), link
            path = link.split("urlpath=", 1)[1].removeprefix("tree/")
            assert path in tracked, f"Binder opens {path}: not in git ls-files"
        downloads = re.findall(r'href="(\.\./_downloads/[^"]+)"', html)
        names = {Path(d).name for d in downloads}
        assert {f"{name}.ipynb", f"{name}.md"} <= names, f"{name}: download links {names}"
        for d in downloads:
            assert (built_site / "notebooks" / d).resolve().exists(), d
