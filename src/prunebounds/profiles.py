"""Run sizes ("profiles"): every size knob of the book, and the chapters' overrides.

A chapter's ``parameters`` cell names a profile (``smoke``, ``quick`` or ``full``) and
may override single fields; :func:`resolve` merges the two and checks every value, so a
bad parameter stops the chapter at once with a message that names the valid values.
The profile can also come from the environment variable ``PRUNEBOUNDS_PROFILE``
(:func:`from_environment`), which is how ``make book PROFILE=...`` reaches the chapters.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from .data import DATASETS
from .devices import AUTO, resolve_device
from .errors import ParameterError
from .models import ARCHITECTURES
from .train import OPTIMISERS
from .validate import check_choice, check_epochs, check_int, check_real, names

ENV_VAR = "PRUNEBOUNDS_PROFILE"
DEFAULT_PROFILE = "quick"


@dataclass(frozen=True)
class Profile:
    """Every size knob of the book in one place.

    Attributes:
        name: ``smoke`` (seconds, synthetic data, for tests), ``quick`` (real MNIST,
            minutes on two CPU cores), or ``full`` (the paper's scale, for a GPU).
        dataset: ``mnist``, ``cifar10`` or ``synthetic``.
        arch: an architecture preset of :data:`prunebounds.models.ARCHITECTURES`.
        optimiser: a preset of :data:`prunebounds.train.OPTIMISERS`. ``quick`` and
            ``full`` train as the authors did (``paper-mnist``, plain SGD); ``smoke``
            uses ``momentum-mnist`` (ours): its networks train for one or two epochs on
            synthetic data, and with plain SGD they would not learn enough (their
            median training margin stays negative) for every chapter's code to run.
        epochs: training epochs of the main network.
        max_train: cap on the number of training samples (``None``: the paper's 80%).
        seed: seed of initialisation, shuffling and every random draw.
        n_d: number of values of the pruning parameter ``d`` in sweeps over [0, 10].
        mc_trials: Monte Carlo repetitions for checks of expectations.
        margin_q: the percentile of the training margins used as the robust margin
            gamma beside the minimum (which is negative as soon as one training sample
            is misclassified).
        snapshots: epochs after which the main network's weights are kept besides the
            initial and final ones (the chapter on Gaussian weights follows them along
            training); epochs at or beyond ``epochs`` are ignored.
        device: where the chapter computes: ``"auto"`` (CUDA when available, else the
            CPU; ``PRUNEBOUNDS_DEVICE`` overrides it), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"`` (:func:`prunebounds.devices.resolve_device`).
    """

    name: str
    dataset: str
    arch: str
    optimiser: str
    epochs: int
    max_train: int | None
    seed: int
    n_d: int
    mc_trials: int
    margin_q: float = 5.0
    snapshots: tuple[int, ...] = ()
    device: str = AUTO

    def replace(self, **changes: Any) -> "Profile":
        """A copy with some fields changed (validated by :func:`resolve`)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", dataset="synthetic", arch="smoke", optimiser="momentum-mnist",
        epochs=2, max_train=None, seed=0, n_d=5, mc_trials=20, snapshots=(1,),
    ),
    "quick": Profile(
        name="quick", dataset="mnist", arch="paper-mnist", optimiser="paper-mnist",
        epochs=45, max_train=None, seed=0, n_d=21, mc_trials=200, snapshots=(1, 5, 15, 30),
    ),
    "full": Profile(
        name="full", dataset="mnist", arch="paper-mnist", optimiser="paper-mnist",
        epochs=100, max_train=None, seed=0, n_d=101, mc_trials=2000,
        snapshots=(1, 2, 5, 10, 20, 50),
    ),
}


def from_environment(default: str = DEFAULT_PROFILE) -> str:
    """The profile named by ``PRUNEBOUNDS_PROFILE``, or ``default``."""
    return os.environ.get(ENV_VAR, "").strip() or default


def resolve(profile: str | None = None, **overrides: Any) -> Profile:
    """The named profile with the non-``None`` overrides applied, all values checked.

    Raises:
        ParameterError: unknown profile, data set, architecture or optimiser; a size
            that is not a positive integer; a seed that is not an integer; a device
            that is unknown or not available here (the message names the available
            ones).
    """
    name = from_environment() if profile is None else profile
    base = PROFILES[check_choice("profile", name, PROFILES)]
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Profile)} - {"name"}
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {names(unknown)}; valid: "
            f"{names(f.name for f in dataclasses.fields(Profile) if f.name != 'name')}"
        )
    chosen = {k: v for k, v in overrides.items() if v is not None and k != "name"}
    p = base.replace(**chosen)
    check_choice("dataset", p.dataset, DATASETS)
    check_choice("architecture", p.arch, ARCHITECTURES)
    check_choice("optimiser", p.optimiser, OPTIMISERS)
    return p.replace(
        epochs=check_int("epochs", p.epochs, minimum=1),
        max_train=None if p.max_train is None else check_int("max_train", p.max_train, minimum=1),
        seed=check_int("seed", p.seed, minimum=0),
        n_d=check_int("n_d", p.n_d, minimum=2),
        mc_trials=check_int("mc_trials", p.mc_trials, minimum=1),
        margin_q=check_real("margin_q", p.margin_q, minimum=0.0, maximum=100.0),
        snapshots=check_epochs("snapshots", p.snapshots),
        device=_check_device(p.device),
    )


def _check_device(name: Any) -> str:
    """``name`` if it names a device usable here (``"auto"`` always is), else raise."""
    resolve_device(name)
    return str(name).strip()

