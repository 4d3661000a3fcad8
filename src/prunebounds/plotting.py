"""Display glue for the chapters: figure style, numbered tables, numbers in the text.

Nothing here computes a result; it only shows one. ``glue`` stores a value for the
book's text (myst-nb's ``{glue:text}`` role) and falls back to printing it when the
notebook runs outside the book (Colab, plain Jupyter). ``table`` returns a
:class:`Table`, which shows as an HTML table in Jupyter and Colab and as a numbered
MyST table in the book (one output carries both; the book prefers the Markdown).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl

from .errors import ParameterError


def style() -> None:
    """One figure style for the whole book."""
    mpl.rcParams.update({
        "figure.figsize": (7.0, 3.6),
        "figure.dpi": 110,
        "savefig.dpi": 110,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "font.size": 10,
    })


def glue(name: str, value: Any) -> Any:
    """Make ``value`` available to the text as ``{glue:text}`name```; return it."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # outside the book toolchain: just show it
        print(f"{name} = {value}")
        return value
    _glue(name, value, display=False)
    return value


def _fmt(x: Any, digits: int) -> str:
    if isinstance(x, float):
        if x != x:
            return "n/a"
        if x != 0 and (abs(x) >= 10 ** (digits + 2) or abs(x) < 10 ** (-digits)):
            return f"{x:.{digits}e}"
        return f"{x:,.{digits}f}"
    return str(x)


# MyST roles in captions ({eq}`x`, {numref}`x`, {cite:p}`x`, ...): shown as their
# target outside the book, where no Sphinx resolves them.
_ROLE = re.compile(r"\{[\w:-]+\}`([^`]*)`")


@dataclass(frozen=True)
class Table:
    """A captioned table as notebook output, readable wherever the notebook is opened.

    Its display bundle (IPython's ``_repr_mimebundle_``) holds the same table three
    ways: ``text/html`` (Jupyter, JupyterLab and Colab show it: a table with the caption
    and the label above), ``text/markdown`` with the MyST ``table`` directive (the
    book renders this one, numbered and with the label ``name`` that
    ``{numref}`name``` refers to; _config.yml ranks Markdown above HTML) and
    ``text/plain`` (terminals). Cells are already formatted strings.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str
    name: str

    def myst(self) -> str:
        lines = [f":::{{table}} {self.caption}", f":name: {self.name}", ":align: center", "",
                 "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines.append(":::")
        return "\n".join(lines)

    def html(self) -> str:
        def cells(tag: str, values) -> str:
            return "".join(f"<{tag}>{html.escape(v)}</{tag}>" for v in values)

        caption = html.escape(_ROLE.sub(r"\1", self.caption))
        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        return (f'<table class="prunebounds-table" id="{html.escape(self.name)}">'
                f'<caption style="caption-side: top; text-align: left">'
                f"<b>Table</b> <code>{html.escape(self.name)}</code>: {caption}</caption>"
                f"<thead><tr>{cells('th', self.headers)}</tr></thead><tbody>{body}</tbody></table>")

    def text(self) -> str:
        table = [self.headers, *self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.headers))]
        lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        caption = _ROLE.sub(r"\1", self.caption)
        return f"Table {self.name}: {caption}\n" + "\n".join(lines)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"text/html": self.html(), "text/markdown": self.myst(), "text/plain": self.text()}

    def __repr__(self) -> str:
        return self.text()


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], caption: str, name: str,
          digits: int = 3) -> Table:
    """A numbered, captioned table as notebook output (see :class:`Table`).

    Refer to it in the text with ``{numref}`name```. Floats are shown with ``digits``
    decimals (scientific notation for very large or small values).
    """
    headers = tuple(str(h) for h in headers)
    body = tuple(tuple(_fmt(x, digits) for x in row) for row in rows)
    for i, row in enumerate(body):
        if len(row) != len(headers):
            raise ParameterError(f"table {name!r}: row {i} has {len(row)} cells for "
                             f"{len(headers)} headers")
    return Table(headers, body, caption, name)
