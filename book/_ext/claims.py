"""Sphinx extension: the book's verdicts, rendered from the claim records of this build.

Every chapter ends with ``prunebounds.claims.record(...)``, which leaves its claim
records in the executed notebook as an output of MIME type
``application/vnd.prunebounds.claims+json``. This extension

- reads those records from the notebooks in the Sphinx source folder (the executed
  notebooks of this build, nothing else) when a build starts, checks that claim ids are
  unique across the book and that every notebook ran with the same profile, and removes
  the record outputs from the pages (they are data, not something to show);
- provides ``{scorecard}`` (``:group: paper|reviewers|beyond``): one block per claim,
  verdict badge first, with the statement, the numbers of this build, the authors'
  value, the paper-scale value from ``results/full.json``, the criterion and the links
  to the chapter and the evidence;
- ``{scorecard-status}``: which profile this build ran and where the paper-scale
  numbers come from (and a warning when they were computed by other code);
- ``{verdict-list}``: one line per claim (the "verdicts at a glance" page);
- ``{argument-map}``: the argument of the paper as an inline SVG whose boxes are
  coloured by their claim's verdict and link to the chapter and the scorecard row;
- the role ``{claim}`\\ `id``` (the verdict badge) and ``{claim}`\\ `id:value```
  (one number, formatted as the record says).

Pages that use any of these are re-read whenever the records or results/full.json
change (compared by content), so no page shows a number of an earlier build.
"""

from __future__ import annotations

import hashlib
import json
import sys
from html import escape
from pathlib import Path

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

logger = logging.getLogger(__name__)

VERDICT_CLASS = {
    "holds": "holds",
    "holds with a caveat": "caveat",
    "holds but vacuous": "vacuous",
    "does not hold": "fails",
    "not checked": "unchecked",
}
# fill, stroke, text colours (also in static/claims.css) and a mark that does not rely on colour
VERDICT_STYLE = {
    "holds": ("#e3f2e5", "#2e7d32", "#1b5e20", "✓"),
    "holds with a caveat": ("#fff6d6", "#b8860b", "#6b4e00", "✓*"),
    "holds but vacuous": ("#ffe9d6", "#d9670b", "#7a3a00", "∅"),
    "does not hold": ("#fde4e4", "#c62828", "#8e1111", "✗"),
    "not checked": ("#eeeeee", "#757575", "#424242", "?"),
}
ABSENT_STYLE = ("#f5f5f5", "#b0b0b0", "#757575", "")

_claims_mod = None


def _claims():
    """prunebounds.claims, imported from the checkout being rendered."""
    global _claims_mod
    if _claims_mod is None:
        from prunebounds import claims as mod
        _claims_mod = mod
    return _claims_mod


# ---------------------------------------------------------------------------------------
# the registry: claim records of this build


def _toc_order(app) -> list[str]:
    path = getattr(app.config, "external_toc_path", None)
    if not path:
        return []
    path = Path(path) if Path(path).is_absolute() else Path(app.srcdir) / path
    try:
        toc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for v in node.values():
                if isinstance(v, (list, dict)):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return [str(Path(f).with_suffix("")) if Path(f).suffix else f for f in out]


def _full_results_path(app) -> Path:
    return Path(app.srcdir) / app.config.claims_full_results


def _load_registry(app, env) -> dict:
    """{"claims": {id: {claim, docname, profile, order}}, "profiles": {...}, "full": ...}."""
    claims = _claims()
    order = {d: i for i, d in enumerate(_toc_order(app))}
    notebooks = sorted((d for d in env.found_docs if str(env.doc2path(d)).endswith(".ipynb")),
                       key=lambda d: (order.get(d, len(order)), d))
    reg: dict = {"claims": {}, "profiles": {}, "notebooks": {}, "full": None, "full_error": None}
    n = 0
    for docname in notebooks:
        path = Path(env.doc2path(docname))
        try:
            rec = claims.load_from_notebook(path)
        except claims.ParameterError as exc:
            logger.warning(f"claim records of {docname}: {exc}", type="claims", subtype="record",
                           location=docname)
            continue
        if not rec.claims:
            continue
        reg["profiles"][docname] = rec.profile
        reg["notebooks"][docname] = str(path)
        for c in rec.claims:
            if c.id in reg["claims"]:
                logger.warning(f"claim id {c.id!r} is recorded by {docname} and by "
                               f"{reg['claims'][c.id]['docname']}; ids must be unique across "
                               f"the book", type="claims", subtype="duplicate", location=docname)
                continue
            reg["claims"][c.id] = {"claim": c.to_dict(), "docname": docname,
                                   "profile": rec.profile, "order": n}
            n += 1
    profiles = set(reg["profiles"].values())
    if len(profiles) > 1:
        logger.warning("the executed notebooks of this build ran with different profiles: "
                       + ", ".join(f"{d}: {p}" for d, p in sorted(reg["profiles"].items()))
                       + "; rebuild them with one profile (make book PROFILE=...)",
                       type="claims", subtype="profile")
    full_path = _full_results_path(app)
    if full_path.exists():
        try:
            full = claims.load_full_results(full_path)
            reg["full"] = {"provenance": dict(full.provenance),
                           "claims": {c.id: c.to_dict() for c in full.claims},
                           "missing": dict(full.missing),
                           "fingerprint_now": _source_fingerprint()}
        except claims.ParameterError as exc:
            logger.warning(str(exc), type="claims", subtype="full-results")
            reg["full_error"] = str(exc)
    return reg


def _source_fingerprint() -> str | None:
    """The package's source fingerprint, from whichever module provides it."""
    for name in ("prunebounds.cache", "prunebounds.experiments"):
        try:
            mod = __import__(name, fromlist=["source_fingerprint"])
        except ImportError:
            continue
        fn = getattr(mod, "source_fingerprint", None)
        if fn is not None:
            return fn()
    return None


def _digest(reg: dict) -> str:
    blob = json.dumps({k: reg[k] for k in ("claims", "profiles", "full", "full_error")},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _on_outdated(app, env, added, changed, removed):
    """Load this build's records; re-read every page that uses them if they changed."""
    reg = _load_registry(app, env)
    env.claims_registry = reg
    digest = _digest(reg)
    users = set(getattr(env, "claims_users", set()))
    if getattr(env, "claims_digest", None) == digest:
        return []
    env.claims_digest = digest
    return sorted(users - set(removed))


def _registry(env) -> dict:
    return getattr(env, "claims_registry", None) or {"claims": {}, "profiles": {},
                                                      "notebooks": {}, "full": None,
                                                      "full_error": None}


def _note_user(env, docname: str, kind: str = "user") -> None:
    if not hasattr(env, "claims_users"):
        env.claims_users = set()
    env.claims_users.add(docname)
    if kind == "scorecard":
        if not hasattr(env, "claims_scorecard_docs"):
            env.claims_scorecard_docs = set()
        env.claims_scorecard_docs.add(docname)
    reg = _registry(env)
    for path in reg["notebooks"].values():  # mtime-based re-reading as well
        env.note_dependency(path)


def _purge(app, env, docname):
    for attr in ("claims_users", "claims_scorecard_docs"):
        getattr(env, attr, set()).discard(docname)


def _merge(app, env, docnames, other):
    for attr in ("claims_users", "claims_scorecard_docs"):
        if not hasattr(env, attr):
            setattr(env, attr, set())
        getattr(env, attr).update(getattr(other, attr, set()) & set(docnames))


def _strip_records(app, docname, source):
    """Remove the record outputs from a notebook page before myst-nb renders it."""
    mime = _claims().MIME_TYPE
    if mime not in source[0] or not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    nb = json.loads(source[0])
    for cell in nb.get("cells", []):
        if cell.get("outputs"):
            cell["outputs"] = [o for o in cell["outputs"] if mime not in o.get("data", {})]
    source[0] = json.dumps(nb)


# ---------------------------------------------------------------------------------------
# nodes


class claim_link(nodes.Inline, nodes.TextElement):
    """A link to a claim's scorecard row, resolved when the page is written."""


class argument_map(nodes.General, nodes.Element):
    """The argument map; drawn by the HTML visitor."""


class claim_value(nodes.Inline, nodes.TextElement):
    """One value of a claim in the text (``{claim}`id:value```); in HTML a span that
    names its claim (``data-claim="id:value"``), so checks can find it."""


def visit_claim_value_html(self, node):
    self.body.append(self.starttag(node, "span", "", CLASS="claim-value",
                                   **{"data-claim": node["claim"]}))


def depart_claim_value_html(self, node):
    self.body.append("</span>")


def _pass(self, node):
    pass


def _badge(verdict: str, claim_id: str | None = None) -> nodes.Node:
    mark = VERDICT_STYLE.get(verdict, ABSENT_STYLE)[3]
    badge = nodes.inline("", f"{mark} {verdict}".strip(),
                         classes=["claim-badge", f"claim-{VERDICT_CLASS.get(verdict, 'absent')}"])
    if claim_id is None:
        return badge
    link = claim_link("", "", claim_id=claim_id)
    link += badge
    return link


def _xref(label: str, text: str | None = None) -> nodes.Node:
    from sphinx.addnodes import pending_xref

    numbered = label.startswith(("fig-", "tab-", "eq-"))
    reftype = "numref" if numbered else "ref"
    node = pending_xref("", refdomain="std", reftype=reftype, reftarget=label,
                        refexplicit=text is not None, refwarn=True)
    node += nodes.inline("", text or label, classes=["xref", "std", f"std-{reftype}"])
    return node


class _ClaimsDirective(SphinxDirective):
    def _inline_md(self, text: str) -> list[nodes.Node]:
        """MyST markdown of one line (a statement, a label) as inline nodes."""
        parsed = self.parse_text_to_nodes(text)
        out: list[nodes.Node] = []
        for node in parsed:
            out.extend(node.children if isinstance(node, nodes.paragraph) else [node])
        return out

    def _claim_objects(self, group: str | None = None):
        claims = _claims()
        reg = _registry(self.env)
        items = sorted(reg["claims"].values(), key=lambda e: e["order"])
        out = [(claims.Claim.from_dict(e["claim"]), e) for e in items]
        return [(c, e) for c, e in out if group is None or c.group == group]


class ScorecardDirective(_ClaimsDirective):
    option_spec = {"group": lambda a: directives.choice(a, ("paper", "reviewers", "beyond"))}

    def run(self):
        _note_user(self.env, self.env.docname, "scorecard")
        group = self.options.get("group")
        rows = self._claim_objects(group)
        reg = _registry(self.env)
        if not rows:
            para = nodes.paragraph("", "No claim of this group is recorded in this build.")
            return [para]
        full = reg["full"]
        out = []
        for claim, entry in rows:
            out.append(self._card(claim, entry, full, reg["full_error"]))
        container = nodes.container("", *out, classes=["claims-scorecard"])
        return [container]

    def _values(self, values) -> nodes.Node:
        para = nodes.inline("", "", classes=["claim-values"])
        for i, v in enumerate(values):
            if i:
                para += nodes.Text("; ")
            para.extend(self._inline_md(v.label))
            para += nodes.Text(" ")
            para += nodes.strong("", v.text(), classes=["claim-number"])
        if not values:
            para += nodes.Text("—")
        return para

    def _field(self, name: str, body: list[nodes.Node] | nodes.Node) -> nodes.field:
        body = body if isinstance(body, list) else [body]
        return nodes.field("", nodes.field_name("", name),
                           nodes.field_body("", nodes.paragraph("", "", *body)))

    def _card(self, claim, entry, full, full_error) -> nodes.Node:
        card = nodes.container("", classes=["claim-card",
                                            f"claim-card-{VERDICT_CLASS[claim.verdict]}"])
        card["ids"].append(f"claim-{claim.id}")
        head = nodes.paragraph("", "", classes=["claim-head"])
        head += _badge(claim.verdict)
        head += nodes.Text(" ")
        head.extend(self._inline_md(claim.statement))
        head += nodes.inline("", f" ({claim.origin})", classes=["claim-origin"])
        card += head
        fields = nodes.field_list("", classes=["claim-fields"])
        profile = entry.get("profile") or "?"
        fields += self._field(f"Measured here ({profile})", self._values(claim.measured))
        fields += self._field("Authors", self._inline_md(claim.authors) if claim.authors
                              else [nodes.Text("—")])
        fields += self._field(_full_header(full),
                              self._full_cell(claim, entry["docname"], full, full_error))
        j = claim.judgement
        fields += self._field("Criterion", nodes.Text(j.criterion))
        fields += self._field("Why this verdict", nodes.Text(j.reason))
        ev = [_xref(claim.chapter)]
        if claim.evidence != claim.chapter:
            ev += [nodes.Text(", "), _xref(claim.evidence)]
        ev += [nodes.Text(f" · id {claim.id}")]
        fields += self._field("Evidence", ev)
        card += fields
        return card

    def _full_cell(self, claim, docname, full, full_error) -> list[nodes.Node]:
        claims = _claims()
        if full_error:
            return [nodes.Text("results/full.json could not be read: " + full_error)]
        if full is None:
            return [nodes.Text("not run yet")]
        if claim.id in full["claims"]:
            fc = claims.Claim.from_dict(full["claims"][claim.id])
            return [_badge(fc.verdict), nodes.Text(" "), self._values(fc.measured)]
        if claim.id in full["missing"]:
            return [nodes.Text("no value: " + full["missing"][claim.id])]
        chapter = f"chapter:{Path(docname).name}"   # the whole chapter failed or timed out
        if chapter in full["missing"]:
            return [nodes.Text("no value: " + full["missing"][chapter])]
        return [nodes.Text("no value: the recorded run predates this claim")]


def _full_header(full) -> str:
    """The paper-scale field's name: the device and the date of the run, when there is one."""
    if not full:
        return "Paper scale (full profile)"
    p = full["provenance"]
    return f"Paper scale (full profile; {p['device']}, {p['date']})"


class ScorecardStatusDirective(_ClaimsDirective):
    """Which build the numbers come from, and the provenance of the paper-scale column."""

    def run(self):
        _note_user(self.env, self.env.docname, "scorecard")
        reg = _registry(self.env)
        profiles = sorted({str(p) for p in reg["profiles"].values()})
        n_nb, n_claims = len(reg["profiles"]), len(reg["claims"])
        out = []
        para = nodes.paragraph("", "", classes=["claims-status"])
        para += nodes.Text("This build ran the profile ")
        para += nodes.strong("", " / ".join(profiles) or "(none)")
        para += nodes.Text(f": {n_claims} claims recorded by {n_nb} chapters. ")
        full = reg["full"]
        if reg["full_error"]:
            para += nodes.Text("The paper-scale results could not be read: " + reg["full_error"])
        elif full is None:
            para += nodes.Text("The paper-scale numbers (full profile) are not in yet: "
                               "results/full.json has not been produced (it comes from ")
            para += nodes.literal("", "python -m prunebounds.chapters full-results")
            para += nodes.Text(" on a GPU).")
        else:
            p = full["provenance"]
            para += nodes.Text(
                f"The paper-scale column comes from results/full.json: the full profile on "
                f"{p['device']}, {p['date']}, commit {str(p['commit'])[:10]}, torch "
                f"{p['torch']}, {float(p['wall_seconds']) / 60:.1f} min.")
        out.append(para)
        if full is not None and full.get("fingerprint_now") != full["provenance"]["source_fingerprint"]:
            warn = nodes.warning("", nodes.paragraph(
                "", f"The paper-scale numbers were computed by other code than this build's "
                    f"(source fingerprint {full['provenance']['source_fingerprint']} recorded, "
                    f"{full.get('fingerprint_now') or 'unknown'} now). They are shown as "
                    f"recorded; rerun the full profile to refresh them."))
            warn["classes"].append("claims-stale")
            out.append(warn)
        return out


class VerdictListDirective(_ClaimsDirective):
    def run(self):
        _note_user(self.env, self.env.docname)
        claims = _claims()
        out = []
        for group, (title, _) in claims.GROUPS.items():
            rows = self._claim_objects(group)
            if not rows:
                continue
            out.append(nodes.rubric("", title))
            lst = nodes.bullet_list("", classes=["claims-verdicts"])
            for claim, _ in rows:
                para = nodes.paragraph("")
                para += _badge(claim.verdict, claim.id)
                para += nodes.Text(" ")
                para.extend(self._inline_md(claim.statement))
                para += nodes.Text(" — ")
                para += _xref(claim.evidence) if claim.evidence != claim.chapter else _xref(claim.chapter)
                if claim.evidence != claim.chapter:
                    para += nodes.Text(" in ")
                    para += _xref(claim.chapter)
                lst += nodes.list_item("", para)
            out.append(lst)
        if not out:
            out.append(nodes.paragraph("", "No claim is recorded in this build."))
        return out


class ClaimRole(SphinxRole):
    """``{claim}`id``` → the verdict badge; ``{claim}`id:value``` → that number.

    A trailing ``?`` (``{claim}`id:value?```) marks a claim that a chapter still to come
    will record: while it is absent the role says so instead of failing the build."""

    def run(self):
        _note_user(self.env, self.env.docname)
        claims = _claims()
        text = self.text.strip()
        optional = text.endswith("?")
        claim_id, _, value = text.rstrip("?").partition(":")
        reg = _registry(self.env)
        entry = reg["claims"].get(claim_id)
        if entry is None and optional:
            return [nodes.emphasis("", "(not computed in this build)",
                                   classes=["claim-value", "claim-absent-value"])], []
        if entry is None:
            msg = f"no claim {claim_id!r} is recorded in this build"
            logger.warning(msg, type="claims", subtype="unknown", location=self.get_location())
            return [nodes.problematic(self.rawtext, self.rawtext)], []
        claim = claims.Claim.from_dict(entry["claim"])
        if not value:
            return [_badge(claim.verdict, claim.id)], []
        try:
            v = claim.value(value)
        except claims.ParameterError as exc:
            logger.warning(str(exc), type="claims", subtype="unknown", location=self.get_location())
            return [nodes.problematic(self.rawtext, self.rawtext)], []
        node = claim_value("", v.text(), claim=f"{claim.id}:{v.name}")
        return [node], []


# ---------------------------------------------------------------------------------------
# the argument map

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 206, 76, 36, 34, 8


class ArgumentMapDirective(_ClaimsDirective):
    """One line per box or arrow::

        box KEY COL ROW | title | subtitle | docname | claim-id
        arrow FROM TO

    ``:caption:`` (MyST markdown) and ``:name:`` (a label for ``{numref}``) make it a
    numbered figure."""

    has_content = True
    option_spec = {"caption": directives.unchanged_required, "name": directives.unchanged}

    def run(self):
        _note_user(self.env, self.env.docname)
        boxes, arrows = {}, []
        for line in self.content:
            line = line.strip()
            if not line:
                continue
            kind, _, rest = line.partition(" ")
            if kind == "box":
                head, *parts = [p.strip() for p in rest.split("|")]
                words = head.split()
                if len(words) != 3 or len(parts) != 4:
                    raise self.error(f"argument-map: 'box KEY COL ROW | title | subtitle | "
                                     f"docname | claim-id' expected, got {line!r}")
                key, col, row = words[0], float(words[1]), float(words[2])
                boxes[key] = {"col": col, "row": row, "title": parts[0], "sub": parts[1],
                              "docname": parts[2], "claim": parts[3]}
            elif kind == "arrow":
                ends = rest.split()
                if len(ends) != 2:
                    raise self.error(f"argument-map: 'arrow FROM TO' expected, got {line!r}")
                arrows.append(tuple(ends))
            else:
                raise self.error(f"argument-map: lines start with 'box' or 'arrow': {line!r}")
        for a, b in arrows:
            for k in (a, b):
                if k not in boxes:
                    raise self.error(f"argument-map: arrow names an unknown box {k!r}")
        reg = _registry(self.env)
        for box in boxes.values():
            entry = reg["claims"].get(box["claim"])
            box["verdict"] = entry["claim"]["judgement"]["verdict"] if entry else None
        node = argument_map()
        node["boxes"], node["arrows"] = boxes, arrows
        figure = nodes.figure("", node, classes=["argument-map"])
        caption = self.options.get("caption")
        if not caption:
            raise self.error("argument-map needs a :caption:")
        figure += nodes.caption("", "", *self._inline_md(caption))
        self.add_name(figure)
        return [figure]


def _clip(cx, cy, tx, ty):
    """The point where the segment from a box centre (cx, cy) towards (tx, ty) leaves it."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    sx = (BOX_W / 2) / abs(dx) if dx else float("inf")
    sy = (BOX_H / 2) / abs(dy) if dy else float("inf")
    s = min(sx, sy)
    return cx + dx * s, cy + dy * s


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return lines


def visit_argument_map_html(self, node):
    env = self.builder.env
    boxes, arrows = node["boxes"], node["arrows"]
    cols = max(b["col"] for b in boxes.values()) + 1
    rows = max(b["row"] for b in boxes.values()) + 1
    width = int(2 * MARGIN + cols * BOX_W + (cols - 1) * GAP_X)
    height = int(2 * MARGIN + rows * BOX_H + (rows - 1) * GAP_Y)

    def centre(b):
        return (MARGIN + b["col"] * (BOX_W + GAP_X) + BOX_W / 2,
                MARGIN + b["row"] * (BOX_H + GAP_Y) + BOX_H / 2)

    scorecard = sorted(getattr(env, "claims_scorecard_docs", set()))
    out = [f'<div class="argument-map-drawing"><svg xmlns="http://www.w3.org/2000/svg" '
           f'role="img" viewBox="0 0 {width} {height}" width="100%" '
           f'style="max-width:{width}px" aria-label="How the argument fits together">',
           '<defs><marker id="am-head" markerWidth="10" markerHeight="8" refX="9" refY="4" '
           'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>',
           "<style>a{text-decoration:none}.am-title{font:600 15px sans-serif}"
           ".am-sub{font:13px sans-serif}"
           ".am-verdict{font:600 12.5px sans-serif}a .am-verdict{text-decoration:underline}"
           ".am-arrow{stroke:#555;stroke-width:1.6;fill:none;marker-end:url(#am-head)}"
           "a:hover rect{stroke-width:3}</style>"]
    for a, b in arrows:
        (ax, ay), (bx, by) = centre(boxes[a]), centre(boxes[b])
        x1, y1 = _clip(ax, ay, bx, by)
        x2, y2 = _clip(bx, by, ax, ay)
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="am-arrow"/>')
    for key, b in boxes.items():
        cx, cy = centre(b)
        x, y = cx - BOX_W / 2, cy - BOX_H / 2
        exists = b["docname"] in env.all_docs
        verdict = b["verdict"] if exists else None
        fill, stroke, ink, mark = VERDICT_STYLE.get(verdict, ABSENT_STYLE)
        dash = "" if verdict else ' stroke-dasharray="5 4"'
        title_lines = _wrap(b["title"], 24)[:2]
        body = [f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="8" '
                f'fill="{fill}" stroke="{stroke}" stroke-width="1.8"{dash}/>']
        ty = y + (20 if len(title_lines) == 1 else 16)
        for i, t in enumerate(title_lines):
            body.append(f'<text x="{cx:.1f}" y="{ty + 16 * i:.1f}" text-anchor="middle" '
                        f'class="am-title" fill="{ink}">{escape(t)}</text>')
        body.append(f'<text x="{cx:.1f}" y="{y + BOX_H - 24:.1f}" text-anchor="middle" '
                    f'class="am-sub" fill="{ink}">{escape(b["sub"])}</text>')
        box_svg = "".join(body)
        if exists:
            href = self.builder.get_relative_uri(self.builder.current_docname, b["docname"])
            box_svg = f'<a href="{escape(href)}"><title>{escape(b["title"])}: go to the chapter</title>{box_svg}</a>'
        out.append(box_svg)
        label = f"{mark} {verdict}" if verdict else ("chapter not in this book" if not exists
                                                     else "no claim recorded")
        vtext = (f'<text x="{cx:.1f}" y="{y + BOX_H - 8:.1f}" text-anchor="middle" '
                 f'class="am-verdict" fill="{ink}">{escape(label)}</text>')
        if verdict and scorecard:
            href = self.builder.get_relative_uri(self.builder.current_docname, scorecard[0])
            vtext = (f'<a href="{escape(href)}#claim-{escape(b["claim"])}"><title>the scorecard '
                     f'row of this claim</title>{vtext}</a>')
        out.append(vtext)
    out.append("</svg>")
    legend = "".join(
        f'<span class="claim-badge claim-{VERDICT_CLASS[v]}">{escape(s[3])} {escape(v)}</span> '
        for v, s in VERDICT_STYLE.items())
    legend += '<span class="claim-badge claim-absent">chapter or claim absent</span>'
    out.append(f'<p class="am-legend">{legend}</p></div>')
    self.body.append("".join(out))
    raise nodes.SkipNode


def _skip(self, node):
    raise nodes.SkipNode


# ---------------------------------------------------------------------------------------
# links to scorecard rows, resolved when a page is written


def _resolve_links(app, doctree, fromdocname):
    docs = sorted(getattr(app.env, "claims_scorecard_docs", set()))
    for node in list(doctree.findall(claim_link)):
        if not docs or app.builder.format != "html":
            node.replace_self(node.children)
            continue
        uri = app.builder.get_relative_uri(fromdocname, docs[0]) + f"#claim-{node['claim_id']}"
        ref = nodes.reference("", "", refuri=uri, classes=["claim-link"])
        ref.extend(node.children)
        node.replace_self(ref)


def _add_static(app):
    static = str(Path(__file__).parent / "static")
    if static not in app.config.html_static_path:
        app.config.html_static_path.append(static)


def setup(app):
    src = Path(app.srcdir) / "src"
    if (src / "prunebounds").is_dir() and str(src) not in sys.path:
        sys.path.insert(0, str(src))  # the package of the checkout being rendered
    _claims()
    app.add_config_value("claims_full_results", "results/full.json", "env")
    app.add_node(claim_link)
    app.add_node(claim_value, html=(visit_claim_value_html, depart_claim_value_html),
                 latex=(_pass, _pass), text=(_pass, _pass), man=(_pass, _pass),
                 texinfo=(_pass, _pass))
    app.add_node(argument_map, html=(visit_argument_map_html, None), latex=(_skip, None),
                 text=(_skip, None), man=(_skip, None), texinfo=(_skip, None))
    app.add_directive("scorecard", ScorecardDirective)
    app.add_directive("scorecard-status", ScorecardStatusDirective)
    app.add_directive("verdict-list", VerdictListDirective)
    app.add_directive("argument-map", ArgumentMapDirective)
    app.add_role("claim", ClaimRole())
    app.connect("env-get-outdated", _on_outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("source-read", _strip_records)
    app.connect("doctree-resolved", _resolve_links)
    app.connect("builder-inited", _add_static)
    app.add_css_file("claims.css")
    return {"version": "0.2", "parallel_read_safe": True, "parallel_write_safe": True,
            "env_version": 1}
