"""Where the computations run: one device setting for the whole package.

A device is named by a string: ``"auto"`` (the default), ``"cpu"``, ``"cuda"`` or
``"cuda:N"``. :func:`resolve_device` turns it into a ``torch.device``:

1. an explicit ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` is used as given;
2. ``None`` or ``"auto"`` (a profile's default) defers to the environment variable
   ``PRUNEBOUNDS_DEVICE`` when it is set, which thus overrides every profile;
3. otherwise ``"auto"`` means the first CUDA device when one is available, else the CPU.

Asking for CUDA on a machine without it, or for a device the package does not know,
raises a :class:`prunebounds.errors.ParameterError` that names the devices available
here. Random draws never depend on the device: every generator of the package is a
CPU generator, and what it draws is moved to the device (see :mod:`prunebounds.pruning`
and :mod:`prunebounds.train`), so a seed gives the same masks and batch orders on every
device.
"""

from __future__ import annotations

import os
import re

import torch

from .errors import ParameterError

__all__ = ["ENV_VAR", "AUTO", "available_devices", "resolve_device"]

ENV_VAR = "PRUNEBOUNDS_DEVICE"
AUTO = "auto"
_NAME = re.compile(r"^(cpu|cuda(:\d+)?)$")


def available_devices() -> list[str]:
    """The device names that work on this machine: ``cpu`` and, with CUDA, ``cuda`` and
    ``cuda:0``, ``cuda:1``, ..."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return names


def _unavailable(name: str, why: str) -> ParameterError:
    return ParameterError(
        f"device {name!r} {why}; available devices here: {', '.join(available_devices())} "
        f"(or '{AUTO}': CUDA when available, else the CPU; the environment variable "
        f"{ENV_VAR} sets the default)")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The ``torch.device`` that ``name`` stands for (see the module's docstring).

    Raises:
        ParameterError: an unknown name, or a CUDA device this machine does not have;
            the message lists the available devices.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == AUTO:
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != AUTO:
            return resolve_device(env)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise _unavailable(str(name), "is not a device name this package knows")
    name = name.strip()
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise _unavailable(name, "was requested but CUDA is not available on this machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise _unavailable(name, f"does not exist ({torch.cuda.device_count()} CUDA "
                                     "device(s) here)")
    return torch.device(name)
