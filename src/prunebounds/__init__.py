"""Helper package of the executable book on magnitude-based pruning bounds.

Modules are named after the ideas of Guha, Dubey & Huo (arXiv 2305.18789), from the
bottom up (README.md, "Layout", has the full table):

* plumbing: ``errors``, ``validate`` (every argument check), ``cache`` (the results
  cache), ``profiles`` (run sizes);
* the setting: ``data``, ``models`` (the MLPs), ``zoo`` (ResNet, ViT), ``train``
  (plain SGD, as the authors trained), ``runs`` (trained networks, cached),
  ``margins`` (margins and THE error rate), ``norms`` (THE spectral norm);
* the argument: ``pruning``, ``random_matrices``, ``perturbation``, ``sparsity``,
  ``sketching``, ``counting``, ``discretization``, ``bounds``, ``baselines``,
  ``sweeps``, ``statistics``;
* the reviewers' questions: ``gaussianity``, ``lottery``, ``scaling``, ``beyond``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("prunebounds")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from .errors import DataUnavailableError, ParameterError, PruneBoundsError

__all__ = ["__version__", "DataUnavailableError", "ParameterError", "PruneBoundsError"]
