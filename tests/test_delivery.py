"""Delivery: the roads a reader takes to the book work (Colab install cell, runner,
bad parameters), checked by running them, not by comparing strings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------- the chapter runner
@pytest.fixture
def runner(monkeypatch):
    """tools/execute_chapters.py with papermill's execution replaced by a recorder."""
    module = _load_tool("execute_chapters")
    calls = []

    def fake_execute(notebook, out_dir, profile, parameters):
        calls.append((notebook.name, profile, parameters))
        return 0.0

    monkeypatch.setattr(module, "execute", fake_execute)
    module.calls = calls
    return module


def test_runner_reads_values_as_papermill_does(runner):
    nb = str(ROOT / "notebooks" / "setting.ipynb")
    assert runner.main([nb, "--profile", "smoke", "--out-dir", "/tmp/unused",
                        "-p", "epochs", "3", "-p", "seed", "1.5", "-p", "dataset", "mnist"]) == 0
    (_, profile, params), = runner.calls
    assert profile == "smoke"
    assert params == {"epochs": 3, "seed": 1.5, "dataset": "mnist"}
    assert type(params["epochs"]) is int
    assert [runner.parse_value(v) for v in ("True", "None", "1e6", "-2", "abc")] == \
        [True, None, 1e6, -2, "abc"]


def test_runner_takes_yaml_for_lists(runner):
    nb = str(ROOT / "notebooks" / "discretization.ipynb")
    assert runner.main([nb, "--out-dir", "/tmp/unused", "-y", "{prune_d: [1, 5.5]}"]) == 0
    assert runner.calls[0][2] == {"prune_d": [1, 5.5]}
    assert runner.main([nb, "--out-dir", "/tmp/unused", "-y", "[1, 2]"]) == 2


def test_runner_rejects_parameters_the_chapter_does_not_define(runner, capsys):
    nb = str(ROOT / "notebooks" / "setting.ipynb")
    assert runner.main([nb, "--out-dir", "/tmp/unused", "-p", "widths", "[784,0,10]"]) == 2
    err = capsys.readouterr().err
    assert "setting.ipynb has no parameter 'widths'" in err
    assert "defines: dataset, epochs, profile, seed" in err
    assert not runner.calls


@pytest.mark.notebooks
@pytest.mark.parametrize("chapter, bad", [
    ("sketching", {"d_prune": 1e9}),
    ("discretization", {"prune_d": 1e6}),
    ("discretization", {"prune_d": [1.0, 101.0]}),
])
def test_pruning_parameter_has_an_upper_bound(tmp_path, chapter, bad):
    """d beyond 100 empties small layers (nan relative errors, r = 1 levels): the
    parameter check stops the chapter first and names the bound."""
    nb = ROOT / "notebooks" / f"{chapter}.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", **bad}, cwd=str(nb.parent),
                            kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ParameterError"
    assert "must be <= 100.0" in err.value.evalue
    assert err.value.cell_index <= 6, "the check must come before any computation"
