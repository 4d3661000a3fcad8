"""`make` re-executes a chapter when the content of its inputs changes, and only then.

The Makefile is run for real in a scratch copy of the project's skeleton, with the
papermill runner replaced by a stub that records each call and writes the output
notebook; nothing is installed or executed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

STUB = """#!/bin/sh
# stands in for `python tools/execute_chapters.py --profile P --out-dir DIR NB`
echo "$6" >> "$(dirname "$0")/calls.log"
mkdir -p "$5" && cp "$6" "$5/$(basename "$6")"
"""


@pytest.fixture
def project(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    for stem in ("alpha", "beta"):
        (tmp_path / "notebooks" / f"{stem}.md").write_text(f"# {stem}\n")
        (tmp_path / "notebooks" / f"{stem}.ipynb").write_text("{}\n")
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "mod.py").write_text("X = 1\n")
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    stub = venv / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    import hashlib
    digest = hashlib.sha256((tmp_path / "pyproject.toml").read_bytes()).hexdigest()
    (tmp_path / "venv" / ".pyproject.sha256").write_text(f"{digest}  -\n")
    time.sleep(0.01)
    (tmp_path / "venv" / ".prunebounds-installed").touch()   # "installed"
    (tmp_path / "book").mkdir()
    return tmp_path


def run_make(project: Path) -> list[str]:
    log = project / "venv" / "bin" / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "VIRTUAL_ENV": str(project / "venv")}
    res = subprocess.run(["make", "--no-print-directory", "execute", "PROFILE=smoke"],
                         cwd=project, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pip install" not in res.stdout, "reinstalled although pyproject.toml is unchanged"
    return sorted(Path(p).stem for p in log.read_text().split()) if log.exists() else []


def bump_mtime(path: Path) -> None:
    t = time.time() + 5
    os.utime(path, (t, t))


def test_make_reexecutes_on_content_changes_only(project):
    assert run_make(project) == ["alpha", "beta"]        # first build: everything
    assert run_make(project) == []                       # nothing changed
    for p in (project / "notebooks" / "alpha.md", project / "src" / "pkg" / "mod.py",
              project / "pyproject.toml"):
        bump_mtime(p)                                    # a checkout: new times, same bytes
    assert run_make(project) == []
    (project / "notebooks" / "alpha.md").write_text("# alpha, edited\n")
    assert run_make(project) == ["alpha"]                # only the edited chapter
    (project / "src" / "pkg" / "mod.py").write_text("X = 2\n")
    assert run_make(project) == ["alpha", "beta"]        # the package feeds every chapter
    assert run_make(project) == []


def test_book_trains_the_main_network_once_then_runs_chapters_side_by_side(project):
    """`make book` calls `execute` with -j$(JOBS); every chapter waits for the main
    network (quick and full profiles) and gets cores/JOBS threads; the longest first."""
    (project / "notebooks" / "lottery_tickets.md").write_text("# long\n")
    (project / "notebooks" / "lottery_tickets.ipynb").write_text("{}\n")
    for name in ("_config.yml", "_toc.yml"):
        (project / name).write_text("\n")
    env = {**os.environ, "VIRTUAL_ENV": str(project / "venv")}

    def dry(*args):
        res = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=project,
                             env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout.splitlines()

    assert any("-j3 execute" in line for line in dry("book", "PROFILE=quick", "JOBS=3"))
    lines = dry("execute", "PROFILE=quick", "JOBS=2", "NPROC=4")
    runs = [line for line in lines if "execute_chapters.py" in line]
    main = [i for i, line in enumerate(lines) if "prunebounds.runs main-network" in line]
    assert len(main) == 1 and main[0] < lines.index(runs[0])
    assert all(line.endswith("--threads 2") for line in runs)
    assert "lottery_tickets" in runs[0]                       # the longest chapter first
    smoke = dry("execute", "PROFILE=smoke", "JOBS=1", "NPROC=1")
    assert not any("main-network" in line for line in smoke)  # seconds: not worth a step
    assert all(line.endswith("--threads 1") for line in smoke if "execute_chapters" in line)


def test_each_profile_has_its_own_stage_and_sphinx_output(project):
    """Sphinx keeps a page whose source did not change; two profiles rendered into one
    folder would mix their numbers. `make book` stages and renders each profile in its
    own folders and points _build/html at the profile just built."""
    for name in ("_config.yml", "_toc.yml"):
        (project / name).write_text("\n")
    env = {**os.environ, "VIRTUAL_ENV": str(project / "venv")}

    def dry(profile):
        res = subprocess.run(["make", "-n", "--no-print-directory", "book", f"PROFILE={profile}"],
                             cwd=project, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    smoke, quick = dry("smoke"), dry("quick")
    for profile, out in (("smoke", smoke), ("quick", quick)):
        other = "quick" if profile == "smoke" else "smoke"
        assert f"jupyter-book build _build/stage/{profile} --path-output _build/site/{profile}" in out
        assert "-W -n --keep-going" in out
        assert f"ln -s site/{profile}/_build/html _build/html" in out
        assert f"rm -rf _build/stage/{profile} " in out
        assert f"_build/site/{other}" not in out and f"_build/stage/{other}" not in out
