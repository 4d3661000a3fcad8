"""Sphinx extension: the preface's diagram of the paper's argument, drawn at build time.

``{argument-map}`` takes one box per content line, ``Title | subtitle | docname``, and
renders an inline SVG chain of boxes joined by arrows (four per row, snaking), each box
a link to its chapter. No network, no external program: the SVG is written here.
A box whose chapter is not in the book is drawn without a link, in grey.
"""

from __future__ import annotations

from html import escape

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

BOX_W, BOX_H, GAP_X, GAP_Y, PER_ROW, MARGIN = 190, 74, 46, 52, 4, 10


class argument_map(nodes.General, nodes.Element):
    """Holds the boxes; written out by the HTML visitor."""


class ArgumentMapDirective(SphinxDirective):
    has_content = True

    def run(self):
        boxes = []
        for line in self.content:
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) != 3:
                raise self.error(f"argument-map line needs 'title | subtitle | docname': {line!r}")
            boxes.append(tuple(parts))
        node = argument_map()
        node["boxes"] = boxes
        return [node]


def _position(i: int) -> tuple[int, int]:
    row, col = divmod(i, PER_ROW)
    if row % 2 == 1:  # snake: odd rows run right to left
        col = PER_ROW - 1 - col
    return MARGIN + col * (BOX_W + GAP_X), MARGIN + row * (BOX_H + GAP_Y)


def _arrow(a: tuple[int, int], b: tuple[int, int]) -> str:
    (ax, ay), (bx, by) = a, b
    if ay == by:  # same row
        if bx > ax:
            x1, x2 = ax + BOX_W, bx
        else:
            x1, x2 = ax, bx + BOX_W
        y = ay + BOX_H / 2
        return f'<line x1="{x1}" y1="{y}" x2="{x2 - (6 if bx > ax else -6)}" y2="{y}" class="am-arrow"/>'
    x = ax + BOX_W / 2
    return f'<line x1="{x}" y1="{ay + BOX_H}" x2="{x}" y2="{by - 6}" class="am-arrow"/>'


def visit_html(self, node):
    boxes = node["boxes"]
    env = self.builder.env
    rows = (len(boxes) + PER_ROW - 1) // PER_ROW
    width = 2 * MARGIN + PER_ROW * BOX_W + (PER_ROW - 1) * GAP_X
    height = 2 * MARGIN + rows * BOX_H + (rows - 1) * GAP_Y
    out = [
        f'<figure class="argument-map"><svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-label="How the argument fits together">',
        "<defs><marker id=\"am-head\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" "
        "orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#555\"/></marker></defs>",
        "<style>.am-box{fill:#eef4fb;stroke:#2a6db0;stroke-width:1.5}"
        ".am-missing{fill:#f2f2f2;stroke:#999}.am-title{font:600 14px sans-serif;fill:#123}"
        ".am-sub{font:12px sans-serif;fill:#345}.am-arrow{stroke:#555;stroke-width:1.6;"
        "marker-end:url(#am-head)}a:hover .am-box{fill:#d7e7f8}</style>",
    ]
    positions = [_position(i) for i in range(len(boxes))]
    for a, b in zip(positions[:-1], positions[1:]):
        out.append(_arrow(a, b))
    for (title, sub, docname), (x, y) in zip(boxes, positions):
        exists = docname in env.all_docs
        box = (
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" '
            f'class="am-box{"" if exists else " am-missing"}"/>'
            f'<text x="{x + BOX_W / 2}" y="{y + 30}" text-anchor="middle" class="am-title">{escape(title)}</text>'
            f'<text x="{x + BOX_W / 2}" y="{y + 52}" text-anchor="middle" class="am-sub">{escape(sub)}</text>'
        )
        if exists:
            href = self.builder.get_relative_uri(self.builder.current_docname, docname)
            box = f'<a href="{escape(href)}">{box}</a>'
        out.append(box)
    out.append("</svg>")
    out.append('<figcaption>How the argument fits together: each box is a step of the '
               'paper\'s proof and links to the chapter that states and tests it.</figcaption></figure>')
    self.body.append("".join(out))
    raise nodes.SkipNode


def skip(self, node):
    raise nodes.SkipNode


def setup(app):
    app.add_node(argument_map, html=(visit_html, None), latex=(skip, None), text=(skip, None),
                 man=(skip, None), texinfo=(skip, None))
    app.add_directive("argument-map", ArgumentMapDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
