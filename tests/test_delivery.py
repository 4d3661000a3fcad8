"""Delivery: the roads a reader takes to the book work (Colab install cell, runner,
bad parameters), checked by running them, not by comparing strings."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------- the chapter runner
@pytest.fixture
def runner(monkeypatch):
    """tools/execute_chapters.py with papermill's execution replaced by a recorder."""
    module = _load_tool("execute_chapters")
    calls = []

    def fake_execute(notebook, out_dir, profile, parameters):
        calls.append((notebook.name, profile, parameters))
        return 0.0

    monkeypatch.setattr(module, "execute", fake_execute)
    module.calls = calls
    return module


def test_runner_reads_values_as_papermill_does(runner):
    nb = str(ROOT / "notebooks" / "setting.ipynb")
    assert runner.main([nb, "--profile", "smoke", "--out-dir", "/tmp/unused",
                        "-p", "epochs", "3", "-p", "seed", "1.5", "-p", "dataset", "mnist"]) == 0
    (_, profile, params), = runner.calls
    assert profile == "smoke"
    assert params == {"epochs": 3, "seed": 1.5, "dataset": "mnist"}
    assert type(params["epochs"]) is int
    assert [runner.parse_value(v) for v in ("True", "None", "1e6", "-2", "abc")] == \
        [True, None, 1e6, -2, "abc"]


def test_runner_takes_yaml_for_lists(runner):
    nb = str(ROOT / "notebooks" / "discretization.ipynb")
    assert runner.main([nb, "--out-dir", "/tmp/unused", "-y", "{prune_d: [1, 5.5]}"]) == 0
    assert runner.calls[0][2] == {"prune_d": [1, 5.5]}
    assert runner.main([nb, "--out-dir", "/tmp/unused", "-y", "[1, 2]"]) == 2


def test_runner_rejects_parameters_the_chapter_does_not_define(runner, capsys):
    nb = str(ROOT / "notebooks" / "setting.ipynb")
    assert runner.main([nb, "--out-dir", "/tmp/unused", "-p", "widths", "[784,0,10]"]) == 2
    err = capsys.readouterr().err
    assert "setting.ipynb has no parameter 'widths'" in err
    assert "defines: dataset, device, epochs, profile, seed" in err
    assert not runner.calls


# ----------------------------------------------------------------- the Colab install cell
stamp = _load_tool("stamp_install_cell")
URL, BRANCH = stamp.config(ROOT)
CHAPTERS = sorted((ROOT / "notebooks").glob("*.md"))


def _install_cell(path: Path) -> str:
    import jupytext

    nb = jupytext.read(path)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def test_committed_chapters_install_the_branch_colab_opens():
    """Every chapter's first cell is the tool's cell, installing _config.yml's address at
    _config.yml's branch (the branch the Colab button opens the notebook from)."""
    notebooks = [*CHAPTERS, *(md.with_suffix(".ipynb") for md in CHAPTERS)]
    assert stamp.main(["--check", *map(str, notebooks)]) == 0, "run `make sync`"
    for path in notebooks:
        assert f'PACKAGE = "prunebounds @ git+{URL}@{BRANCH}"' in _install_cell(path), path.name


def test_the_address_is_written_once(tmp_path):
    """_config.yml holds the address; pyproject.toml and the README agree with it; the
    tool writes a changed address into the chapters (and only there)."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Repository"] == URL
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme)) == {URL}
    md = tmp_path / "setting.md"
    md.write_text((ROOT / "notebooks" / "setting.md").read_text())
    new = stamp.stamp_text(md, md.read_text(), stamp.cell("https://example.org/fork/book", "dev"))
    assert 'PACKAGE = "prunebounds @ git+https://example.org/fork/book@dev"' in new
    assert new.replace(stamp.cell("https://example.org/fork/book", "dev"),
                       stamp.cell(URL, BRANCH)) == md.read_text()


def test_publication_copies_get_the_commit(tmp_path):
    """`make book` stamps `git rev-parse HEAD` into the copies it publishes; the tracked
    chapters are untouched."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    before = {p: p.read_bytes() for p in (ROOT / "notebooks").iterdir()}
    copies = []
    for suffix in (".md", ".ipynb"):
        copy = tmp_path / f"setting{suffix}"
        copy.write_bytes((ROOT / "notebooks" / f"setting{suffix}").read_bytes())
        copies.append(copy)
    assert stamp.main(["--ref", "HEAD", *map(str, copies)]) == 0
    for copy in copies:
        assert f"git+{URL}@{head}\"" in _install_cell(copy)
    assert {p: p.read_bytes() for p in (ROOT / "notebooks").iterdir()} == before


def test_stamped_copies_are_rewritten_only_when_their_content_changes(tmp_path):
    """`make book` stamps into _build/stamped/<profile>: an unchanged copy keeps its time
    (a warm build re-reads no chapter), a new commit rewrites it."""
    src = ROOT / "notebooks" / "setting.md"
    out = tmp_path / "stamped"
    assert stamp.main(["--ref", "abc123", "--out-dir", str(out), str(src)]) == 0
    copy = out / "setting.md"
    assert f"git+{URL}@abc123\"" in _install_cell(copy)
    os.utime(copy, (1_000_000, 1_000_000))
    assert stamp.main(["--ref", "abc123", "--out-dir", str(out), str(src)]) == 0
    assert copy.stat().st_mtime == 1_000_000                 # same content: untouched
    assert stamp.main(["--ref", "def456", "--out-dir", str(out), str(src)]) == 0
    assert copy.stat().st_mtime > 1_000_000 and "@def456" in _install_cell(copy)


def _run_cell(python: str, code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run a cell's code as Colab would: with the module google.colab loaded."""
    harness = ("import sys, types\n"
               "sys.modules['google'] = types.ModuleType('google')\n"
               "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
               f"exec(compile({code!r}, 'install-cell', 'exec'))\n")
    return subprocess.run([python, "-c", harness], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of the checkout's package, built offline in a scratch copy."""
    build = tmp_path_factory.mktemp("wheel")
    src = build / "project"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(build / "dist"),
               str(src)]
    # offline with this environment's setuptools; if it is too old for pyproject.toml's
    # build requirements, pip fetches them (the only download of the test)
    res = subprocess.run(command + ["--no-build-isolation"], env=_clean_env(),
                         capture_output=True, text=True)
    if res.returncode != 0:
        env = {k: v for k, v in _clean_env().items() if k != "PIP_NO_INDEX"}
        res = subprocess.run(command, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (whl,) = (build / "dist").glob("prunebounds-*.whl")
    return whl


@pytest.mark.notebooks
def test_colab_cell_installs_the_package_and_a_chapter_runs(tmp_path, wheel):
    """The install cell's own code, with only its address swapped for a wheel of this
    checkout, installs the package into a fresh virtual environment; the package
    imported there is the installed wheel, and a smoke chapter runs end to end.

    The heavy dependencies (torch, ...) and pip come from this environment's
    site-packages through a .pth line (a plain path: the editable install there stays
    inactive), so nothing is downloaded (pip runs with --no-index)."""
    venv = tmp_path / "venv"
    # without the pip/setuptools of ensurepip: Python 3.11's bundled setuptools is older
    # than torch requires, and offline it cannot be upgraded; pip comes through the .pth
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = _clean_env(PRUNEBOUNDS_CACHE=str(tmp_path / "cache"), PRUNEBOUNDS_DATA=str(tmp_path / "data"),
                     PRUNEBOUNDS_PROFILE="smoke", MPLBACKEND="Agg")
    probe = subprocess.run([python, "-c", "import prunebounds"], env=env, capture_output=True)
    assert probe.returncode != 0, "the fresh environment must not see the package before the cell"

    code = _install_cell(ROOT / "notebooks" / "setting.ipynb")
    address = f"git+{URL}@{BRANCH}"
    assert code.count(address) == 1
    res = _run_cell(python, code.replace(address, wheel.as_uri()), env, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "installed prunebounds @ file:" in res.stdout

    where = subprocess.run([python, "-c", "import prunebounds; print(prunebounds.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(Path(purelib)), f"imported {where}, not the installed wheel"

    import jupytext

    script = tmp_path / "setting.py"
    script.write_text(jupytext.writes(jupytext.read(ROOT / "notebooks" / "setting.md"), fmt="py:percent"))
    run = subprocess.run([python, str(script)], cwd=ROOT / "notebooks", env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def test_colab_cell_failure_says_what_to_do(tmp_path):
    """A broken address: the cell stops with what failed and what to do, not a bare
    CalledProcessError."""
    code = _install_cell(ROOT / "notebooks" / "setting.ipynb")
    broken = (tmp_path / "no-such-prunebounds-0.1.0-py3-none-any.whl").as_uri()
    res = _run_cell(sys.executable, code.replace(f"git+{URL}@{BRANCH}", broken), _clean_env(), tmp_path)
    assert res.returncode != 0
    assert "RuntimeError: Installing the helper package failed" in res.stderr
    assert "Runtime > Restart session" in res.stderr and f"!pip install 'prunebounds @ {broken}'" in res.stderr
    assert "CalledProcessError" not in res.stderr


# ----------------------------------------------------------------- CI and the browser
def _ci_sandbox(tmp_path: Path, *, chromium: bool, site_tests: str) -> tuple[Path, dict]:
    """A copy of .ci/run with stubs: `make test` writes a JUnit report whose site tests
    are `site_tests` (passed/skipped), apt-get fails (no registry), the lowest-versions
    check only says it ran; PATH holds only the tools the script needs."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    lowest = tmp_path / ".ci" / "lowest-versions"
    lowest.write_text("#!/bin/sh\necho lowest-versions-ran\n")
    lowest.chmod(0o755)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    tools = {t: shutil.which(t) for t in ("bash", "dirname", "mkdir", "id", "env")}
    tools["python3"] = sys.executable  # not a shim (pyenv's need a full PATH)
    for tool, path in tools.items():
        (bin_ / tool).symlink_to(os.path.realpath(path))
    skipped = '<skipped message="no Chromium"/>' if site_tests == "skipped" else ""
    report = (f'<testsuites><testsuite><testcase classname="tests.test_site" name="test_pages">'
              f'{skipped}</testcase><testcase classname="tests.test_book" name="t"/>'
              f"</testsuite></testsuites>")
    stubs = {"make": f"#!/bin/sh\necho make-$1-ran\necho '{report}' > _build/ci/junit.xml\n",
             "apt-get": "#!/bin/sh\nexit 100\n"}
    if chromium:
        stubs["chromium"] = "#!/bin/sh\nexit 0\n"
    for name, text in stubs.items():
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    return tmp_path / ".ci" / "run", {"PATH": str(bin_), "HOME": str(tmp_path)}


@pytest.mark.parametrize("chromium, site_tests, code, lowest, says", [
    (True, "passed", 0, True, "browser check: 1 site tests ran"),
    (True, "skipped", 1, False, "the browser check did not run"),
    # Chromium cannot be installed: everything else runs, then the run fails loudly
    (False, "skipped", 1, True, "NO CHROMIUM: the rendered pages were NOT checked"),
])
def test_ci_fails_unless_the_pages_were_checked_in_a_browser(tmp_path, chromium, site_tests,
                                                             code, lowest, says):
    script, env = _ci_sandbox(tmp_path, chromium=chromium, site_tests=site_tests)
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert res.returncode == code, out
    assert says in out and "make-test-ran" in out
    assert ("lowest-versions-ran" in out) == lowest


# ----------------------------------------------------------------- the built book
def _downloads(site: Path) -> list[Path]:
    return sorted(p for p in (site / "_downloads").rglob("*") if p.suffix in (".ipynb", ".md"))


def test_published_notebooks_install_the_commit_they_were_built_from(built_site):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    files = _downloads(built_site)
    assert {f"{md.stem}{s}" for md in CHAPTERS for s in (".ipynb", ".md")} <= {p.name for p in files}
    for path in files:
        cell = _install_cell(path)
        assert f'PACKAGE = "prunebounds @ git+{URL}@{head}"' in cell, \
            f"{path.name} does not install HEAD ({head}); a site built at another commit?\n{cell}"


def test_tables_are_numbered_in_the_book_and_html_in_jupyter(built_site):
    """Every table a chapter printed: its output holds HTML (what Jupyter and Colab show)
    and the MyST directive, and the book page shows it as a numbered table."""
    import json

    seen = 0
    for path in _downloads(built_site):
        if path.suffix != ".ipynb":
            continue
        page = (built_site / "notebooks" / f"{path.stem}.html").read_text()
        assert ":::{table}" not in page and ":name: tab-" not in page, path.stem
        for cell in json.loads(path.read_text())["cells"]:
            for out in cell.get("outputs", []):
                md = "".join(out.get("data", {}).get("text/markdown", ""))
                if not md.startswith(":::{table}"):
                    continue
                seen += 1
                name = re.search(r"^:name: (\S+)$", md, re.M).group(1)
                assert 'class="prunebounds-table"' in "".join(out["data"]["text/html"]), name
                table = re.search(rf'<table[^>]*id="{name}".*?</table>', page, re.S)
                assert table, f"{path.stem}: table {name} is not on the page"
                assert re.search(r'<span class="caption-number">Table \d+', table.group(0)), name
    assert seen >= 10
