"""What the published site shows comes from the build that produced it.

Two checks:

- ``test_pages_follow_the_claim_records`` (default suite, about a minute): a tiny book
  rendered with the book's own extension (book/_ext/claims.py) by jupyter-book, twice,
  with the executed notebook's claim record edited in between (keeping its file time,
  so only the content changed). The scorecard, the verdicts list and the ``{claim}``
  role must show the new numbers; a third build with nothing changed re-reads nothing;
  a claim id recorded twice fails the build.
- ``test_quick_site_after_a_smoke_build`` (marker ``publish``; ``make check-publish``,
  about 15 minutes on 2 cores): in a scratch copy of the checkout (git clone of HEAD
  plus the working tree), ``make book PROFILE=smoke`` then ``make book PROFILE=quick``.
  In the quick site every number rendered from a claim record (scorecard, verdicts
  page, the preface's ``{claim}`` values) equals the value recorded by that chapter's
  executed quick notebook, and no such element shows a smoke-only value.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from prunebounds import claims as cl
from prunebounds.claims import Claim, Value, criteria

ROOT = Path(__file__).resolve().parents[1]
JB = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")


# ---------------------------------------------------------------------------------------
# reading the rendered pages


class _Elements(HTMLParser):
    """Every element's attributes and its text (with the text of its children)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, dict, list[str]]] = []
        self.found: list[tuple[dict, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs), []))

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][2].append(data)

    def handle_endtag(self, tag):
        if not any(t == tag for t, _, _ in self.stack):
            return
        while self.stack:
            t, attrs, parts = self.stack.pop()
            text = "".join(parts)
            self.found.append((attrs, text))
            if self.stack:
                self.stack[-1][2].append(text)
            if t == tag:
                break


def elements(html: str) -> list[tuple[dict, str]]:
    p = _Elements()
    p.feed(html)
    return p.found


def card_text(html: str, claim_id: str) -> str:
    for attrs, text in elements(html):
        if attrs.get("id") == f"claim-{claim_id}":
            return " ".join(text.split())
    raise AssertionError(f"no scorecard row for {claim_id}")


def role_values(html: str) -> dict[str, str]:
    return {attrs["data-claim"]: text.strip() for attrs, text in elements(html)
            if "claim-value" in (attrs.get("class") or "") and attrs.get("data-claim")}


def class_text(html: str, cls: str) -> str:
    """The text of the elements with class ``cls``, whitespace collapsed."""
    return " ".join(" ".join(text.split()) for attrs, text in elements(html)
                    if cls in (attrs.get("class") or "").split())


def badge_verdicts(html: str) -> list[str]:
    marks = {"✓", "✓*", "∅", "✗", "?"}
    out = []
    for attrs, text in elements(html):
        if "claim-badge" in (attrs.get("class") or "").split():
            words = text.split()
            out.append(" ".join(words[1:] if words and words[0] in marks else words))
    return out


# ---------------------------------------------------------------------------------------
# the fast check: a tiny book, built twice


def _record_notebook(path: Path, value: float, claim_id: str = "demo-bound", profile="smoke"):
    label = f"chap-{path.stem}"
    claim = Claim(claim_id, "A demo bound on the demo error", "reconstructed", label,
                  label, (Value("bound", "the bound", value, ".4f"),
                                Value("error", "the error", 0.05, ".2%")),
                  criteria.bound_vs_error(value, 0.05))
    nb = {"nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "cells": [
              {"cell_type": "markdown", "id": "a", "metadata": {},
               "source": f"({label})=\n# Demo chapter {path.stem}\n\nSome text."},
              {"cell_type": "code", "id": "b", "metadata": {"tags": ["remove-input"]},
               "execution_count": 1, "source": "record(...)",
               "outputs": [{"output_type": "display_data", "metadata": {},
                            "data": {cl.MIME_TYPE: cl.payload([claim], profile),
                                     "text/plain": "Claims recorded"}}]}]}
    path.write_text(json.dumps(nb))


@pytest.fixture
def tiny_book(tmp_path):
    book = tmp_path / "book"
    (book / "book").mkdir(parents=True)
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (book / "src").symlink_to(ROOT / "src")
    (book / "_config.yml").write_text(
        "title: demo\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
        "exclude_patterns: [_build, src]\n"
        "sphinx:\n  local_extensions:\n    claims: book/_ext\n")
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: index\nchapters:\n  - file: verdicts\n  - file: demo\n"
        "  - file: scorecard\n")
    (book / "index.md").write_text(
        "# Preface\n\nThe demo bound is {claim}`demo-bound:bound` "
        "({claim}`demo-bound`); later {claim}`future-claim:value?`.\n")
    (book / "verdicts.md").write_text("# Verdicts\n\n```{verdict-list}\n```\n")
    (book / "scorecard.md").write_text(
        "(chap-scorecard)=\n# Scorecard\n\n```{scorecard-status}\n```\n\n"
        "```{scorecard}\n:group: paper\n```\n")
    _record_notebook(book / "demo.ipynb", 1.2345)
    return book


def _build(book: Path, expect_ok: bool = True) -> str:
    res = subprocess.run([JB, "build", str(book), "--path-output", str(book.parent / "out"), "-W", "-n",
                          "--keep-going"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}"
                              + os.environ.get("PYTHONPATH", "")})
    log = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)
    if expect_ok:
        assert res.returncode == 0, log[-4000:]
    else:
        assert res.returncode != 0, "the build should have failed:\n" + log[-2000:]
    return log


def _page(book: Path, name: str) -> str:
    return (book.parent / "out" / "_build" / "html" / f"{name}.html").read_text()


@pytest.mark.skipif(JB is None, reason="needs jupyter-book")
def test_pages_follow_the_claim_records(tiny_book):
    book = tiny_book
    _build(book)
    assert "the bound 1.2345" in card_text(_page(book, "scorecard"), "demo-bound")
    assert badge_verdicts(_page(book, "scorecard")) == ["holds but vacuous"]
    assert role_values(_page(book, "index")) == {"demo-bound:bound": "1.2345"}
    assert "not computed in this build" in _page(book, "index")
    assert badge_verdicts(_page(book, "verdicts")) == ["holds but vacuous"]
    assert badge_verdicts(_page(book, "index")) == ["holds but vacuous"]
    assert cl.MIME_TYPE not in _page(book, "demo") and "Claims recorded" not in _page(book, "demo")

    # the executed notebook changes, its file time does not: the pages still follow
    nb = book / "demo.ipynb"
    stat = nb.stat()
    _record_notebook(nb, 0.25)
    os.utime(nb, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    log = _build(book)
    assert "reading sources" in log
    card = card_text(_page(book, "scorecard"), "demo-bound")
    assert "the bound 0.2500" in card and "1.2345" not in card
    assert badge_verdicts(_page(book, "scorecard")) == ["holds"]
    assert role_values(_page(book, "index")) == {"demo-bound:bound": "0.2500"}
    assert badge_verdicts(_page(book, "index")) == ["holds"]
    assert badge_verdicts(_page(book, "verdicts")) == ["holds"]

    # nothing changed: nothing is re-read
    log = _build(book)
    assert "0 added, 0 changed, 0 removed" in log

    # the same claim id recorded by a second notebook fails the build
    (book / "_toc.yml").write_text((book / "_toc.yml").read_text() + "  - file: demo2\n")
    _record_notebook(book / "demo2.ipynb", 0.5)
    log = _build(book, expect_ok=False)
    assert "claim id 'demo-bound' is recorded by" in log


@pytest.mark.skipif(JB is None, reason="needs jupyter-book")
def test_mixed_profiles_fail_the_build(tiny_book):
    (tiny_book / "_toc.yml").write_text((tiny_book / "_toc.yml").read_text() + "  - file: other\n")
    _record_notebook(tiny_book / "other.ipynb", 0.5, claim_id="other-bound", profile="quick")
    log = _build(tiny_book, expect_ok=False)
    assert "different profiles" in log


# ---------------------------------------------------------------------------------------
# the slow check: smoke, then quick, in a scratch copy of the checkout


def _scratch_copy(dest: Path) -> Path:
    """git clone of HEAD, then the working tree (tracked and untracked, not ignored)."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest)], check=True)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src, dst = ROOT / rel, dest / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif dst.exists():
            dst.unlink()  # deleted in the working tree
    return dest


def _venv_shim(shim: Path, venv: Path, pyproject: Path) -> Path:
    """A virtual environment made of wrappers around ``venv``'s programs, with its own
    install stamps, so that `make` in the scratch copy neither reinstalls nor re-points
    the real environment (its pyproject.toml may differ from the one installed)."""
    (shim / "bin").mkdir(parents=True)
    for prog in ("python", "jupyter-book", "jupytext"):
        w = shim / "bin" / prog
        w.write_text(f'#!/bin/sh\nexec "{venv / "bin" / prog}" "$@"\n')
        w.chmod(0o755)
    digest = subprocess.run(["sha256sum"], input=pyproject.read_bytes(), check=True,
                            capture_output=True).stdout
    (shim / ".pyproject.sha256").write_bytes(digest)
    time.sleep(0.05)
    (shim / ".prunebounds-installed").touch()
    return shim


def _make(checkout: Path, profile: str, env: dict) -> float:
    start = time.perf_counter()
    res = subprocess.run(["nice", "-n", "10", "make", "--no-print-directory", "book",
                          f"PROFILE={profile}"], cwd=checkout, env=env, capture_output=True,
                         text=True)
    assert res.returncode == 0, f"make book PROFILE={profile} failed:\n" + (res.stdout + res.stderr)[-6000:]
    return time.perf_counter() - start


@pytest.mark.publish
def test_quick_site_after_a_smoke_build(tmp_path):
    from prunebounds import data

    checkout = _scratch_copy(tmp_path / "checkout")
    env = {k: v for k, v in os.environ.items() if k not in ("PRUNEBOUNDS_PROFILE",)}
    venv = Path(os.environ.get("VIRTUAL_ENV") or sys.prefix)
    env.update(VIRTUAL_ENV=str(_venv_shim(tmp_path / "venv", venv, checkout / "pyproject.toml")),
               PYTHONPATH=f"{checkout / 'src'}{os.pathsep}" + os.environ.get("PYTHONPATH", ""),
               PRUNEBOUNDS_CACHE=str(tmp_path / "cache"))
    shared = data.shared_root()
    if shared is not None:
        env["PRUNEBOUNDS_SHARED_DATA"] = str(shared)
    times = {p: _make(checkout, p, env) for p in ("smoke", "quick")}
    print(f"make book: smoke {times['smoke']:.0f} s, then quick {times['quick']:.0f} s")

    site = checkout / "_build" / "html"
    assert site.resolve() == (checkout / "_build" / "site" / "quick" / "_build" / "html").resolve()
    quick = executed_records(checkout / "_build" / "executed" / "quick", "quick")
    smoke = executed_records(checkout / "_build" / "executed" / "smoke", "smoke")
    assert len(quick) >= 30 and set(quick) == set(smoke)
    problems = check_site(site, "quick", quick, other=smoke)
    assert not problems, "\n".join(problems)


def executed_records(folder: Path, profile: str) -> dict[str, Claim]:
    out = {}
    for nb in sorted(folder.glob("*.ipynb")):
        rec = cl.load_from_notebook(nb)
        assert rec.profile in (profile, None), f"{nb.name} recorded profile {rec.profile}"
        out.update({c.id: c for c in rec.claims})
    return out


def _shown_verdict(text: str) -> str:
    words = text.split()
    rest = " ".join(words[1:] if words and words[0] in {"✓", "✓*", "∅", "✗", "?"} else words)
    return max((v for v in cl.VERDICTS if rest == v or rest.startswith(v + " ")), key=len, default="")


def check_site(site: Path, profile: str, records: dict[str, Claim],
               other: dict[str, Claim] | None = None) -> list[str]:
    """Problems with the numbers a site shows from claim records: each must equal the
    record of ``profile``'s executed notebook, and none may be a value that only the
    ``other`` build recorded."""
    problems, cards, roles, lists = [], set(), 0, 0
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        if rel.startswith(("_static", "_sources", "_images")):
            continue
        html = page.read_text()
        if "claim-" not in html:
            continue
        if "claims-status" in html and f"ran the profile {profile}:" not in class_text(html, "claims-status"):
            problems.append(f"{rel}: the status line does not name the profile {profile}")
        for cid, claim in records.items():
            if f'id="claim-{cid}"' not in html:
                continue
            cards.add(cid)
            card = card_text(html, cid)
            head = f"Measured here ({profile}):"
            measured = card.split(head, 1)[-1].split("Authors:", 1)[0]
            if head not in card:
                problems.append(f"{rel} {cid}: the row does not say it was measured in {profile}")
            if _shown_verdict(card) != claim.verdict:
                problems.append(f"{rel} {cid}: shows {_shown_verdict(card)!r}, recorded {claim.verdict!r}")
            for v in claim.measured:
                if v.text() not in measured:
                    problems.append(f"{rel} {cid}:{v.name}: {profile} value {v.text()!r} not shown")
                if other and cid in other:
                    o = other[cid].value(v.name).text()
                    if o != v.text() and not any(o in w.text() for w in claim.measured) and \
                            re.search(rf"(?<![\d.]){re.escape(o)}(?![\d])", measured):
                        problems.append(f"{rel} {cid}:{v.name}: the other build's value {o!r} shown")
        for key, shown in role_values(html).items():
            roles += 1
            cid, name = key.split(":")
            want = records[cid].value(name).text() if cid in records else None
            if shown != want:
                problems.append(f"{rel} {{claim}}`{key}`: shows {shown!r}, the record says {want!r}")
        if "claims-verdicts" in html:
            lists += 1
            if sorted(badge_verdicts(html)) != sorted(c.verdict for c in records.values()):
                problems.append(f"{rel}: the verdicts listed differ from the records")
    if cards != set(records):
        problems.append(f"claims without a scorecard row: {sorted(set(records) - cards)}")
    if not roles or not lists:
        problems.append(f"found {roles} claim values in the text and {lists} verdict lists")
    return problems


def test_site_numbers_equal_the_executed_notebooks(built_site):
    """The book built for the tests (smoke, or $PRUNEBOUNDS_SITE): every number it shows
    from a claim record is the record of the executed notebook of its own profile."""
    site = Path(built_site).resolve()
    profile = site.parent.parent.name  # _build/site/<profile>/_build/html
    executed = ROOT / "_build" / "executed" / profile
    if not executed.is_dir():
        pytest.skip(f"no executed notebooks for the profile {profile!r} of {site}")
    problems = check_site(site, profile, executed_records(executed, profile))
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(JB is None, reason="needs jupyter-book")
def test_paper_scale_column_from_results_full_json(tiny_book):
    """Absent file: 'not run yet'. Present: the device and date in the heading, the
    full-profile numbers or the reason for their absence in every row, and a warning
    above the rows when the recorded source fingerprint is not the current one."""
    _record_notebook(tiny_book / "demo2.ipynb", 0.5, claim_id="other-bound")
    (tiny_book / "_toc.yml").write_text((tiny_book / "_toc.yml").read_text() + "  - file: demo2\n")
    _build(tiny_book)
    page = _page(tiny_book, "scorecard")
    assert "Paper scale (full profile): not run yet" in card_text(page, "demo-bound")
    assert "has not been produced" in class_text(page, "claims-status")

    full_claim = Claim("demo-bound", "A demo bound on the demo error", "reconstructed", "chap-demo",
                       "chap-demo", (Value("bound", "the bound", 0.0421, ".4f"),
                                     Value("error", "the error", 0.016, ".2%")),
                       criteria.bound_vs_error(0.0421, 0.016))
    prov = {"profile": "full", "device": "NVIDIA H200", "torch": "2.5.1", "commit": "abc1234def",
            "source_fingerprint": "not-the-current-one", "date": "2026-12-04", "wall_seconds": 700.0}
    cl.write_full_results(tiny_book / "results" / "full.json", [full_claim],
                          {"other-bound": "no CIFAR-10 data on the GPU machine"}, prov)
    _build(tiny_book)
    page = _page(tiny_book, "scorecard")
    card = card_text(page, "demo-bound")
    assert "Paper scale (full profile; NVIDIA H200, 2026-12-04): ✓ holds the bound 0.0421" in card
    assert "Measured here (smoke): the bound 1.2345" in card          # this build's column stays
    assert "no value: no CIFAR-10 data on the GPU machine" in card_text(page, "other-bound")
    stale = class_text(page, "claims-stale")
    assert "computed by other code than this build" in stale and "not-the-current-one" in stale
    assert page.index("claims-stale") < page.index('id="claim-demo-bound"')  # above the rows
    assert "NVIDIA H200, 2026-12-04, commit abc1234def" in class_text(page, "claims-status")

    from prunebounds.cache import source_fingerprint
    prov["source_fingerprint"] = source_fingerprint()
    cl.write_full_results(tiny_book / "results" / "full.json", [full_claim],   # a whole chapter
                          {"chapter:demo2": "did not finish within the deadline of 420 s"}, prov)
    _build(tiny_book)
    page = _page(tiny_book, "scorecard")
    assert "claims-stale" not in page and "NVIDIA H200" in class_text(page, "claims-status")
    assert "no value: did not finish within the deadline of 420 s" in card_text(page, "other-bound")
