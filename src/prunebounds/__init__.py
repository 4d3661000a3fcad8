"""Helper package of the executable book on magnitude-based pruning bounds.

Modules are named after the ideas of Guha, Dubey & Huo (arXiv 2305.18789):
``data``, ``models``, ``margins``, ``train``, ``experiments`` (the results cache),
``profiles`` (run sizes), and, chapter by chapter, the pruning, random-matrix,
sketching and bound modules.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("prunebounds")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from .errors import DataUnavailableError, ParameterError, PruneBoundsError

__all__ = ["__version__", "DataUnavailableError", "ParameterError", "PruneBoundsError"]
