"""Shared test set-up: every test runs with its own cache and data folders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped on a machine without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_folders(tmp_path_factory, monkeypatch, request):
    """Point the results cache at a fresh folder so tests never touch _cache/; run every
    test on the CPU (``PRUNEBOUNDS_DEVICE=cpu``) except those marked ``cuda``, so that the
    suite checks the same thing, bit for bit, on a machine with a GPU."""
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(tmp_path_factory.mktemp("cache")))
    if request.node.get_closest_marker("cuda") is None:
        monkeypatch.setenv("PRUNEBOUNDS_DEVICE", "cpu")
    else:
        monkeypatch.delenv("PRUNEBOUNDS_DEVICE", raising=False)
    yield


@pytest.fixture
def tiny_bundle():
    """A small synthetic data bundle (fast to train on)."""
    from prunebounds import data

    return data.load("synthetic", max_train=400)


def set_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def built_site() -> Path:
    """The rendered book: $PRUNEBOUNDS_SITE if set, else `make book PROFILE=smoke` here
    (which also proves that the book renders with no warnings)."""
    env_site = os.environ.get("PRUNEBOUNDS_SITE")
    if env_site:
        path = Path(env_site)
        assert (path / "index.html").exists(), f"no built book in {path}: run `make book` first"
        return path
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBOUNDS_CACHE"}
    result = subprocess.run(["make", "book", "PROFILE=smoke"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, ("make book PROFILE=smoke failed:\n"
                                    + result.stdout[-4000:] + result.stderr[-4000:])
    return ROOT / "_build" / "html"
