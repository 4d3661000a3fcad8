"""Display glue for the chapters: figure style, numbered tables, numbers in the text.

Nothing here computes a result; it only shows one. ``glue`` stores a value for the
book's text (myst-nb's ``{glue:text}`` role) and falls back to printing it when the
notebook runs outside the book (Colab, plain Jupyter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl


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


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], caption: str, name: str,
          digits: int = 3):
    """A numbered, captioned table (MyST ``table`` directive) as notebook output.

    Refer to it in the text with ``{numref}`name```. Floats are shown with ``digits``
    decimals (scientific notation for very large or small values).
    """
    from IPython.display import Markdown

    lines = [f":::{{table}} {caption}", f":name: {name}", ":align: center", "",
             "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(x, digits) for x in row) + " |")
    lines.append(":::")
    return Markdown("\n".join(lines))
