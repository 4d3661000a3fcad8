"""Shared test set-up: every test runs with its own cache and data folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_folders(tmp_path_factory, monkeypatch):
    """Point the results cache at a fresh folder so tests never touch _cache/."""
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield


@pytest.fixture
def tiny_bundle():
    """A small synthetic data bundle (fast to train on)."""
    from prunebounds import data

    return data.load("synthetic", max_train=400)


def set_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))
