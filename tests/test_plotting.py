"""prunebounds.plotting: tables that read in Jupyter/Colab (HTML) and in the book (MyST)."""

from __future__ import annotations

from html.parser import HTMLParser

import nbformat
import pytest
from IPython.core.formatters import format_display_data
from nbconvert import HTMLExporter

from prunebounds.errors import ParameterError
from prunebounds.plotting import Table, table

CAPTION = "Bounds at {eq}`eq-bound` for d < 2 & more, see {cite:p}`guha2023pruning`."


@pytest.fixture
def tab() -> Table:
    return table([[1, 0.25, float("nan")], ["<b>", 2.5e9, 3]], ["layer", "$\\chi(d)$", "r"],
                 caption=CAPTION, name="tab-demo", digits=2)


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.caption, self._where = [], "", None

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th", "caption"):
            self._where = tag
            if tag != "caption":
                self.cells.append("")

    def handle_endtag(self, tag):
        self._where = None if tag == self._where else self._where

    def handle_data(self, data):
        if self._where == "caption":
            self.caption += data
        elif self._where in ("td", "th"):
            self.cells[-1] += data


def test_one_output_carries_html_myst_and_text(tab):
    bundle, _ = format_display_data(tab)  # what IPython stores as the cell's output
    assert set(bundle) == {"text/html", "text/markdown", "text/plain"}
    assert bundle["text/markdown"].splitlines() == [
        f":::{{table}} {CAPTION}", ":name: tab-demo", ":align: center", "",
        "| layer | $\\chi(d)$ | r |", "|---|---|---|",
        "| 1 | 0.25 | n/a |", "| <b> | 2.50e+09 | 3 |", ":::"]
    cells = _Cells()
    cells.feed(bundle["text/html"])
    assert cells.cells == ["layer", "$\\chi(d)$", "r", "1", "0.25", "n/a", "<b>", "2.50e+09", "3"]
    # roles have no Sphinx outside the book: their targets are shown instead
    assert cells.caption == "Table tab-demo: Bounds at eq-bound for d < 2 & more, see guha2023pruning."
    text = bundle["text/plain"].splitlines()
    assert text[0].startswith("Table tab-demo: Bounds at eq-bound") and "2.50e+09" in text[-1]


def test_rows_must_match_the_headers():
    with pytest.raises(ParameterError, match="row 1 has 2 cells for 3 headers"):
        table([[1, 2, 3], [1, 2]], ["a", "b", "c"], caption="c", name="tab-bad")


def test_jupyter_shows_a_table_not_myst_markup(tab):
    """nbconvert's HTML export (Jupyter's choice of output: HTML before Markdown) of a
    notebook holding the table shows an HTML table and no raw directive."""
    bundle, metadata = format_display_data(tab)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("table(...)")
    cell.outputs = [nbformat.v4.new_output("execute_result", data=bundle, metadata=metadata,
                                           execution_count=1)]
    nb.cells = [cell]
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert 'class="prunebounds-table"' in page
    assert ":::{table}" not in page and ":name: tab-demo" not in page
