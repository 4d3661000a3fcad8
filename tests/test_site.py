"""The rendered book as a reader meets it: every page in headless Chromium, offline.

Runs when Chromium and Playwright are available (`make check-site` installs both).
The book is taken from $PRUNEBOUNDS_SITE when set (`make check-site` builds the quick
profile and points here); otherwise this module builds the smoke profile with
`make book PROFILE=smoke`, which also proves that the book renders without warnings.

Every request that does not go to the local test server is blocked. A page fails on:
a JavaScript error, an image that does not load, a figure (or an output image) without
a caption, math that MathJax did not typeset or raw `$...$` left in the text, an
unresolved cross-reference (theorem, figure, equation), a broken internal link or
anchor, or an attempt to reach the network. A screenshot of each page is saved under
_build/screenshots/ for people to look at.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (make check-site)")

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(built_site) -> Path:
    return built_site


def _pages(site: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images"}
    return sorted(p for p in site.rglob("*.html")
                  if not skip & set(p.relative_to(site).parts) and p.name not in ("genindex.html", "search.html"))


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.hrefs.append((a.get("content") or "").split("url=", 1)[-1].split("URL=", 1)[-1])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(errors="replace"))
    return p


def test_internal_links_and_anchors_resolve(site):
    broken = []
    for page in _pages(site):
        for href in _parse(page).hrefs:
            url = urlparse(href)
            if url.scheme or href.startswith("mailto:") or href.startswith("//"):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {href} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)} -> {href} (no such anchor)")
    assert not broken, "\n".join(broken)


CHECK_PAGE = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    if (MathJax.typesetPromise) await MathJax.typesetPromise();
  }
  const problems = [];
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) problems.push('image did not load: ' + img.src);
  }
  for (const fig of document.querySelectorAll('figure')) {
    const cap = fig.querySelector('figcaption');
    if (!cap || !cap.textContent.trim()) problems.push('figure without caption: ' + (fig.id || fig.outerHTML.slice(0, 80)));
  }
  for (const img of document.querySelectorAll('.cell_output img')) {
    if (!img.closest('figure')) problems.push('output image outside a captioned figure: ' + img.src.slice(-60));
  }
  const maths = document.querySelectorAll('.math');
  for (const m of maths) {
    if (!m.querySelector('mjx-container') && !m.closest('mjx-container')) problems.push('math not typeset: ' + m.textContent.slice(0, 60));
  }
  const article = document.querySelector('article') || document.body;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode;
    if (n.parentElement.closest('pre, code, .highlight, mjx-container, script, style')) continue;
    if (/\$[^$\s][^$]*\$/.test(n.textContent)) problems.push('raw $...$ in text: ' + n.textContent.trim().slice(0, 80));
  }
  for (const x of document.querySelectorAll('.xref')) {
    if (!x.closest('a')) problems.push('unresolved reference: ' + x.textContent.slice(0, 60));
  }
  return {problems, nmath: maths.length, typeset: document.querySelectorAll('mjx-container').length};
}
"""


def test_every_page_renders_offline(site, server):
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    failures: dict[str, list[str]] = {}
    typeset_total = 0
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        external: list[str] = []

        def route(r):
            if r.request.url.startswith(server):
                r.continue_()
            else:
                external.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        for page_path in _pages(site):
            rel = page_path.relative_to(site).as_posix()
            if 'http-equiv="Refresh"' in page_path.read_text()[:2000]:
                continue  # index.html: a redirect to the preface, checked by the link test
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(f"JS error: {exc}"))
            page.on("console", lambda msg, errors=errors: errors.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error" else None)
            external.clear()
            page.goto(urljoin(server, rel), wait_until="load")
            result = page.evaluate(CHECK_PAGE)
            typeset_total += result["typeset"]
            page.screenshot(path=str(shots / (rel.replace("/", "__") + ".png")), full_page=True)
            problems = errors + result["problems"] + [f"network request blocked: {u}" for u in external]
            if problems:
                failures[rel] = problems
            page.close()
        browser.close()
    assert typeset_total > 0, "no math was typeset anywhere"
    assert not failures, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in failures.items())


CHECK_FIT = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    if (MathJax.typesetPromise) await MathJax.typesetPromise();
  }
  const vw = window.innerWidth;
  const problems = [];
  const roots = document.querySelectorAll('.claims-scorecard, ul.claims-verdicts');
  const article = document.querySelector('article') || document.body;
  const limit = Math.min(vw, article.getBoundingClientRect().right) + 1;
  for (const root of roots) {
    for (const el of [root, ...root.querySelectorAll('*')]) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.right > limit || r.left < -1) {
        problems.push(`overflows (${Math.round(r.left)}..${Math.round(r.right)} px, limit ${Math.round(limit)}): `
                      + el.tagName + '.' + el.className + ' ' + (el.textContent || '').trim().slice(0, 50));
      }
      const cs = getComputedStyle(el);
      if (['auto', 'scroll'].includes(cs.overflowX) && el.scrollWidth > el.clientWidth + 1
          && !el.closest('mjx-container')) {
        problems.push('scrolls sideways: ' + el.tagName + '.' + el.className);
      }
    }
  }
  const badges = [...document.querySelectorAll('.claims-scorecard .claim-badge, ul.claims-verdicts .claim-badge')];
  for (const b of badges) {
    const r = b.getBoundingClientRect();
    if (r.left < 0 || r.right > vw) problems.push('verdict badge outside the viewport: ' + b.textContent);
  }
  if (document.documentElement.scrollWidth > vw) problems.push('the page scrolls sideways');
  return {problems, roots: roots.length, badges: badges.length};
}
"""


def test_verdicts_fit_a_1280_pixel_screen(site, server):
    """Issue: the verdict was the fifth column of an overflowing table. At 1280 x 800 no
    element of the scorecard or of the verdicts page may overflow sideways, and every
    verdict badge lies inside the viewport."""
    pages = [p for p in _pages(site)
             if "claims-scorecard" in p.read_text() or "claims-verdicts" in p.read_text()]
    assert len(pages) >= 2, "no scorecard or verdicts page found"
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    failures = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(server) else r.abort())
        for page_path in pages:
            rel = page_path.relative_to(site).as_posix()
            page = context.new_page()
            page.goto(urljoin(server, rel), wait_until="load")
            result = page.evaluate(CHECK_FIT)
            page.screenshot(path=str(shots / ("1280x800__" + rel.replace("/", "__") + ".png")))
            assert result["badges"] > 0, f"{rel}: no verdict badge"
            if result["problems"]:
                failures[rel] = result["problems"][:20]
            page.close()
        browser.close()
    assert not failures, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in failures.items())
