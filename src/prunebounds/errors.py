"""Errors raised by :mod:`prunebounds`.

Every error that a reader can cause (a bad parameter, missing data) is one of these,
with a message that names the valid values or the command that fixes the problem.
"""

from __future__ import annotations


class PruneBoundsError(Exception):
    """Base class of the package's own errors."""


class ParameterError(PruneBoundsError, ValueError):
    """A parameter has an invalid value; the message names the valid ones."""


class DataUnavailableError(PruneBoundsError, RuntimeError):
    """A data set is neither on disk nor downloadable; the message names the fix."""
