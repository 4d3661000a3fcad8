"""Every chapter runs end to end (smoke profile, synthetic data) and its pair is in sync."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.md"))


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_there_are_chapters():
    assert CHAPTERS, "no chapters found in notebooks/"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_pair_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run `make sync`"
    text, nb = jupytext.read(md), jupytext.read(ipynb)
    assert _cells(text) == _cells(nb), f"{md.name} and {ipynb.name} differ: run `make sync`"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    raw = json.loads(ipynb.read_text())
    assert all(not c.get("outputs") for c in raw["cells"] if c["cell_type"] == "code"), \
        f"{ipynb.name} is committed with outputs"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_structure(md):
    nb = jupytext.read(md)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert sum("parameters" in t for t in tags) == 1, "exactly one parameters cell"
    first = nb.cells[0]
    assert "remove-cell" in first.metadata.get("tags", []) and "google.colab" in first.source
    text = md.read_text()
    assert "Audience and objectives" in text and "Running this chapter" in text
    assert text.count(f"{{download}}`notebook <{md.stem}.ipynb>`") == 1, \
        "exactly one download link to the notebook"
    assert f"{{download}}`text source <{md.stem}.md>`" in text, "download link to the text source"
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "profile" in params.source


@pytest.mark.notebooks
@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_in_smoke_profile(md, tmp_path):
    out = tmp_path / md.with_suffix(".ipynb").name
    pm.execute_notebook(str(md.with_suffix(".ipynb")), str(out), parameters={"profile": "smoke"},
                        cwd=str(md.parent), kernel_name="python3", progress_bar=False)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.notebooks
@pytest.mark.parametrize("bad, message", [
    ({"profile": "huge"}, "valid values: full, quick, smoke"),
    ({"profile": "smoke", "dataset": "imagenet"}, "valid values: cifar10, mnist, synthetic"),
    ({"profile": "smoke", "seed": 1.5}, "seed must be an integer"),
    ({"profile": "smoke", "epochs": -1}, "epochs must be an integer >= 1"),
])
def test_bad_parameters_stop_with_a_clear_message(tmp_path, bad, message):
    nb = ROOT / "notebooks" / "setting.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters=bad,
                            cwd=str(nb.parent), kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ParameterError"
    assert message in err.value.evalue


@pytest.mark.notebooks
@pytest.mark.parametrize("chapter, bad, message", [
    ("sketching", {"d_prune": -1.0}, "d_prune must be >= 0.0"),
    ("sketching", {"k_fraction": 1.5}, "k_fraction must be <= 1.0"),
    ("discretization", {"prune_d": -0.5}, "prune_d must be >= 0.0"),
    ("compression", {"margin_q": 150.0}, "margin_q"),
    # beyond d = 100 small layers are emptied (nan relative errors, r = 1 levels)
    ("sketching", {"d_prune": 1e9}, "d_prune must be <= 100.0"),
    ("discretization", {"prune_d": 1e6}, "prune_d must be <= 100.0"),
    ("discretization", {"prune_d": [1.0, 101.0]}, "prune_d must be <= 100.0"),
])
def test_chapter_parameters_are_validated(tmp_path, chapter, bad, message):
    """A negative pruning parameter or an impossible fraction stops the chapter early
    with a ParameterError that names the valid range."""
    nb = ROOT / "notebooks" / f"{chapter}.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", **bad}, cwd=str(nb.parent),
                            kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ParameterError"
    assert message in err.value.evalue
