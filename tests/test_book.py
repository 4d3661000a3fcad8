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
    url = CONFIG["repository"]["url"]
    assert PYPROJECT["project"]["urls"]["Repository"] == url
    for md in (ROOT / "notebooks").glob("*.md"):
        found = set(re.findall(r"git\+(https://[^@\"]+)@", md.read_text()))
        assert found == {url}, f"{md.name}: Colab install cell must use {url}, found {found}"


def test_colab_cells_install_the_matching_release():
    """The Colab cell installs the tag of pyproject's version, not a moving branch."""
    tag = "v" + PYPROJECT["project"]["version"]
    for md in (ROOT / "notebooks").glob("*.md"):
        refs = set(re.findall(r"git\+https://[^@\"]+@([^\"#]+)", md.read_text()))
        assert refs == {tag}, (f"{md.name}: the Colab cell installs {refs}; it must install "
                               f"the release tag {tag} (pyproject.toml's version)")


def test_only_one_twin_of_each_pair_is_a_page():
    excluded = CONFIG["exclude_patterns"]
    assert "notebooks/*.md" in excluded
    assert {"_build", "**.ipynb_checkpoints"} <= set(excluded)


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    declared = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["book"]
    norm = lambda xs: sorted(x.replace(" ", "").lower() for x in xs)  # noqa: E731
    assert norm(pip) == norm(declared)
    assert "pip install" in (ROOT / "postBuild").read_text()


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


def test_workflows_run_makefile_targets():
    targets = _make_targets()
    flows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {f.name for f in flows} == {"book.yml", "linkcheck.yml"}
    for flow in flows:
        spec = yaml.safe_load(flow.read_text())
        assert spec.get("jobs"), flow.name
        runs = [step["run"] for job in spec["jobs"].values() for step in job.get("steps", [])
                if "run" in step]
        for cmd in runs:
            words = cmd.split()
            assert words[0] == "make" and words[1] in targets, f"{flow.name}: {cmd!r} is not a make target"
    book = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    assert book[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True
    steps = [s.get("uses", "") for s in book["jobs"]["deploy"]["steps"]]
    assert any(u.startswith("actions/deploy-pages") for u in steps)
    link = yaml.safe_load((ROOT / ".github" / "workflows" / "linkcheck.yml").read_text())
    assert "schedule" in link[True]


def test_book_pages_paste_no_numbers_from_other_pages():
    """Book pages show chapter numbers only through the claim records of the same build
    (book/_ext/claims.py), never by cross-document glue, which Sphinx does not refresh
    when the other page changes; every ``{claim}`` role names a recorded claim."""
    recorded = set()
    sources = [*(ROOT / "notebooks").glob("*.md"),
               *(ROOT / "src" / "prunebounds" / "chapters").glob("*.py")]  # chapter modules
    for md in sources:
        recorded |= set(re.findall(r'Claim\(\s*id="([a-z0-9-]+)"', md.read_text()))
    for page in (ROOT / "book").glob("*.md"):
        text = page.read_text()
        assert not re.search(r"\{glue:\w+\}`/?[\w/]+\.ipynb::", text), \
            f"{page.name} pastes a value from another document"
        for ref in re.findall(r"\{claim\}`([^`]+)`", text):
            claim_id = ref.rstrip("?").split(":")[0]
            assert ref.endswith("?") or claim_id in recorded, f"{page.name}: no claim {claim_id!r}"
