"""The book's configuration agrees with itself: toc, repository URL, dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for v in node.values():
            out += _toc_files(v)
    elif isinstance(node, list):
        for v in node:
            out += _toc_files(v)
    return out


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    files = [TOC["root"], *_toc_files(TOC)]
    for f in files:
        assert (ROOT / f"{f}.md").exists() or (ROOT / f"{f}.ipynb").exists(), f
    chapters = {f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("*.md")}
    assert chapters <= set(files), f"chapters missing from _toc.yml: {chapters - set(files)}"


def test_repository_url_is_set_in_one_place():
    """_config.yml's address is the one pyproject.toml names and every Colab cell
    installs from (tests/test_delivery.py runs the cell itself)."""
    url = CONFIG["repository"]["url"]
    assert PYPROJECT["project"]["urls"]["Repository"] == url
    for md in (ROOT / "notebooks").glob("*.md"):
        found = set(re.findall(r"git\+(https://[^@\"]+)@", md.read_text()))
        assert found == {url}, f"{md.name}: Colab install cell must use {url}, found {found}"


def test_only_one_twin_of_each_pair_is_a_page():
    excluded = CONFIG["exclude_patterns"]
    assert "notebooks/*.md" in excluded
    assert {"_build", "**.ipynb_checkpoints"} <= set(excluded)


CPU_TORCH_OPTIONS = {"--extra-index-url https://download.pytorch.org/whl/cpu",
                     "--index-url https://download.pytorch.org/whl/cpu"}


def test_environment_yml_matches_pyproject():
    """Same packages and floors as pyproject.toml, plus one pip option line that makes
    Binder install the CPU build of torch (PyPI's brings ~3 GB of CUDA libraries)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    options = [x for x in pip if x.startswith("-")]
    packages = [x for x in pip if not x.startswith("-")]
    assert len(options) == 1 and " ".join(options[0].split()) in CPU_TORCH_OPTIONS, options
    declared = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["book"]
    norm = lambda xs: sorted(x.replace(" ", "").lower() for x in xs)  # noqa: E731
    assert norm(packages) == norm(declared)
    assert "pip install" in (ROOT / "postBuild").read_text()
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    floor = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, floor.split(".")))


def test_floors_cover_what_the_code_calls():
    """Floors the code needs: tomllib (the tests) needs Python 3.11; SciPy's
    anderson(method=...) arrived in 1.17; ipykernel < 6.3.1 cannot start a kernel with
    today's jupyter_client and nbconvert 7.0 cannot be imported (both found by
    .ci/lowest-versions, which checks every floor)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    floors = {}
    for spec in PYPROJECT["project"]["dependencies"] + [
            d for ds in PYPROJECT["project"]["optional-dependencies"].values() for d in ds]:
        req = Requirement(spec)
        lows = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert lows, f"{spec}: no floor"
        floors[req.name] = lows[0]
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert floors["scipy"] >= Version("1.17") and floors["ipykernel"] >= Version("6.3.1")
    assert floors["numpy"] >= Version("1.26.4")  # SciPy 1.17's own floor
    assert floors["nbconvert"] >= Version("7.1")  # 7.0 fails to import with today's lxml
    assert "constriction" in floors


def test_jupyter_book_is_pinned_below_2():
    book = PYPROJECT["project"]["optional-dependencies"]["book"]
    assert any(re.fullmatch(r"jupyter-book>=1\.0\.4\.post1,<2", d) for d in book)


def test_ci_runs_make_test():
    lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in lines


def test_bibliography_on_one_page_only():
    pages = [p for p in list((ROOT / "book").glob("*.md")) + list((ROOT / "notebooks").glob("*.md"))
             if "{bibliography}" in p.read_text()]
    assert [p.name for p in pages] == ["references.md"]


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, flags=re.M))


def _workflows() -> dict[str, dict]:
    return {f.name: yaml.safe_load(f.read_text())
            for f in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}


def test_workflows_run_makefile_targets():
    targets = _make_targets()
    flows = _workflows()
    assert set(flows) == {"book.yml", "linkcheck.yml", "test.yml"}
    for name, spec in flows.items():
        assert spec.get("jobs"), name
        runs = [step["run"] for job in spec["jobs"].values() for step in job.get("steps", [])
                if "run" in step]
        for cmd in runs:
            words = cmd.split()
            assert words[0] == "make" and words[1] in targets, f"{name}: {cmd!r} is not a make target"
    book = flows["book.yml"]
    assert book[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True
    steps = [s.get("uses", "") for s in book["jobs"]["deploy"]["steps"]]
    assert any(u.startswith("actions/deploy-pages") for u in steps)
    assert "schedule" in flows["linkcheck.yml"][True]


# The current major of every action the workflows use (checked 2026-07 in the actions'
# repositories: all run on Node 24; Node 20 was retired from GitHub's runners in 2026).
# A new action must be added here, with its current major.
CURRENT_ACTIONS = {
    "actions/checkout": "v7",
    "actions/setup-python": "v7",
    "actions/cache": "v5",
    "actions/upload-pages-artifact": "v5",
    "actions/deploy-pages": "v5",
}


def test_workflows_use_current_actions_pip_cache_and_cpu_torch():
    for name, spec in _workflows().items():
        for job_name, job in spec["jobs"].items():
            for step in job.get("steps", []):
                if "uses" not in step:
                    continue
                action, _, ref = step["uses"].partition("@")
                assert action in CURRENT_ACTIONS, f"{name}: {action} is not in CURRENT_ACTIONS"
                assert ref == CURRENT_ACTIONS[action], \
                    f"{name}: {action}@{ref}, the current major is {CURRENT_ACTIONS[action]}"
                if action == "actions/setup-python":
                    assert step["with"].get("cache") == "pip", f"{name}: no pip cache"
            installs = any("make" in s.get("run", "") for s in job.get("steps", []))
            if installs:  # every job that installs takes torch from the CPU index
                env = {**spec.get("env", {}), **job.get("env", {})}
                assert env.get("PIP_EXTRA_INDEX_URL") == "https://download.pytorch.org/whl/cpu", \
                    f"{name}/{job_name}: torch would come from PyPI (CUDA build)"


def test_pull_requests_run_make_test():
    flows = _workflows()
    on_pr = [name for name, spec in flows.items() if "pull_request" in spec[True]]
    assert on_pr == ["test.yml"]
    runs = [s.get("run") for job in flows["test.yml"]["jobs"].values() for s in job["steps"]]
    assert "make test" in runs


def test_book_pages_paste_no_numbers_from_other_pages():
    """Book pages show chapter numbers only through the claim records of the same build
    (book/_ext/claims.py), never by cross-document glue, which Sphinx does not refresh
    when the other page changes; every ``{claim}`` role names a recorded claim."""
    recorded = set()
    sources = [*(ROOT / "notebooks").glob("*.md"),
               *(ROOT / "src" / "prunebounds" / "chapters").glob("*.py")]  # chapter modules
    for path in sources:
        recorded |= set(re.findall(r'Claim\(\s*(?:id=)?"([a-z0-9-]+)"', path.read_text()))
    for page in (ROOT / "book").glob("*.md"):
        text = page.read_text()
        assert not re.search(r"\{glue:\w+\}`/?[\w/]+\.ipynb::", text), \
            f"{page.name} pastes a value from another document"
        for ref in re.findall(r"\{claim\}`([^`]+)`", text):
            claim_id = ref.rstrip("?").split(":")[0]
            assert ref.endswith("?") or claim_id in recorded, f"{page.name}: no claim {claim_id!r}"


def test_every_chapter_takes_a_device_and_says_which_it_runs_on():
    """Issue 13 §5: a reader with a GPU (Colab) gets it by default; the set-up prints it."""
    for md in sorted((ROOT / "notebooks").glob("*.md")):
        text = md.read_text()
        assert re.search(r"^device = None\s+# None: the profile's", text, re.M), \
            f"{md.name}: no `device = None` parameter"
        assert re.search(r"resolve\(profile[^)]*device=device", text), \
            f"{md.name}: the device parameter does not reach profiles.resolve"
        assert re.search(r"print\(.{0,120}?(runs on|computed on|device \{)", text, re.S), \
            f"{md.name}: the set-up does not print the device"
