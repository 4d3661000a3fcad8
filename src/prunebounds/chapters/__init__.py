"""The book's chapters as code: what each chapter measures, and the claims it checks.

One module per chapter, named after the chapter's notebook (``notebooks/<name>.md``).
Each module provides

* ``LABEL``: the chapter's label in the book (e.g. ``"chap-setting"``);
* ``REQUIRES``: the chapters whose cached results its ``compute`` reads (run first);
* ``compute(P: Profile, *, progress: bool = True) -> <Name>Result``: everything the
  chapter measures for profile ``P``, as a small frozen dataclass with named fields,
  cached by :func:`prunebounds.cache.cached_result` (a rebuild recomputes nothing) and
  run on the profile's device;
* ``claims(R) -> list[Claim]``: the chapter's claim records
  (:mod:`prunebounds.claims`), each judged by an explicit criterion.

The notebook of a chapter calls ``compute`` once and narrates its result; it ends with
``record(chapter.claims(R))``. ``python -m prunebounds.chapters full-results`` runs
every chapter's ``compute`` and ``claims`` without notebooks (the paper-scale run on a
GPU that writes ``results/full.json``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..validate import check_choice

#: The chapters in the order of the book.
CHAPTERS = (
    "setting",
    "compression",
    "gaussian_weights",
    "pruning_error",
    "discretization",
    "sparsity_pattern",
    "sketching",
    "generalization_bound",
    "lottery_tickets",
    "beyond_mlps",
    "reviewers",
    "certificate",
)


def load(name: str) -> ModuleType:
    """The module of chapter ``name`` (one of :data:`CHAPTERS`)."""
    return importlib.import_module(f"{__name__}.{check_choice('chapter', name, CHAPTERS)}")
