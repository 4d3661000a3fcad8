"""Training with the paper's optimiser settings, seeded and deterministic.

SGD on the cross-entropy loss, batches drawn by index from tensors in memory. The
paper gives learning rate, batch size and weight decay. Its momentum is not stated;
the authors' configuration files do not set one, so their training framework's
default of 0.9 applied, and the presets use 0.9 (our reading, stated in the book).
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm import tqdm

from .data import DataBundle, augment_cifar, batches
from .margins import logits
from .profiles import check_choice, check_int


@dataclass(frozen=True)
class OptimiserConfig:
    """SGD hyper-parameters; ``augment`` switches on the CIFAR-10 crop-and-flip."""

    lr: float
    batch_size: int
    weight_decay: float
    momentum: float = 0.9
    augment: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


OPTIMISERS: dict[str, OptimiserConfig] = {
    "paper-mnist": OptimiserConfig(lr=0.02, batch_size=256, weight_decay=1e-4),
    "paper-cifar10": OptimiserConfig(lr=0.01, batch_size=64, weight_decay=1e-4, augment=True),
}


def optimiser_config(name: str) -> OptimiserConfig:
    """The named preset (``paper-mnist`` or ``paper-cifar10``)."""
    return OPTIMISERS[check_choice("optimiser", name, OPTIMISERS)]


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of samples whose largest logit is the label."""
    if len(y) == 0:
        return math.nan
    return float((logits(model, X).argmax(1) == y).to(torch.float64).mean())


def make_sgd(model: nn.Module, opt: OptimiserConfig) -> torch.optim.SGD:
    """The SGD optimiser of preset ``opt`` over all of the model's parameters."""
    return torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum,
                           weight_decay=opt.weight_decay)


def train_epoch(model: nn.Module, X: torch.Tensor, y: torch.Tensor, sgd: torch.optim.Optimizer,
                opt: OptimiserConfig, gen: torch.Generator) -> tuple[float, float]:
    """One pass over (X, y) in shuffled mini-batches drawn by index.

    Returns the mean loss and the *running* training accuracy: the fraction of the
    epoch's samples that the network classified correctly in the forward pass of their
    own batch (weights change during the epoch, so it is not the accuracy of the final
    weights; it costs no extra forward pass).
    """
    model.train()
    total, count = 0.0, 0
    correct = torch.zeros((), dtype=torch.int64)
    for idx in batches(len(y), opt.batch_size, gen):
        xb = augment_cifar(X[idx], gen) if opt.augment else X[idx]
        out = model(xb)
        loss = nn.functional.cross_entropy(out, y[idx])
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        sgd.step()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
        correct += (out.detach().argmax(1) == y[idx]).sum()
    return total / count, float(correct) / count


def train(
    model: nn.Module,
    data: DataBundle,
    opt: OptimiserConfig,
    epochs: int,
    seed: int,
    *,
    snapshot_epochs: tuple[int, ...] = (),
    progress: bool = True,
) -> dict:
    """Train ``model`` in place for ``epochs`` epochs; return its history.

    The history holds per-epoch ``train_loss`` and ``train_acc`` (running mean and
    running accuracy over the epoch's batches, see :func:`train_epoch`), ``val_acc`` and
    ``test_acc`` (of the weights after each epoch); ``final_train_acc``, the accuracy of
    the final weights on the whole training set (one extra pass, not one per epoch); and
    ``snapshots``: ``{epoch: state_dict}`` for the requested epochs (0 = initial).
    Shuffling and augmentation use a generator seeded with ``seed``, so two runs with
    the same seed, data and thread count give bit-identical weights.
    """
    epochs = check_int("epochs", epochs, minimum=0)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    sgd = make_sgd(model, opt)
    X, y = data.train.X, data.train.y
    history: dict = {k: [] for k in ("epoch", "train_loss", "train_acc", "val_acc", "test_acc")}
    snapshots = {0: copy.deepcopy(model.state_dict())} if 0 in snapshot_epochs else {}
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=not progress,
               file=sys.stderr, leave=False)
    for epoch in bar:
        mean_loss, running_acc = train_epoch(model, X, y, sgd, opt, gen)
        history["epoch"].append(epoch)
        history["train_loss"].append(mean_loss)
        history["train_acc"].append(running_acc)
        history["val_acc"].append(accuracy(model, data.val.X, data.val.y))
        history["test_acc"].append(accuracy(model, data.test.X, data.test.y))
        bar.set_postfix(loss=f"{mean_loss:.4f}", test_acc=f"{history['test_acc'][-1]:.4f}")
        if epoch in snapshot_epochs:
            snapshots[epoch] = copy.deepcopy(model.state_dict())
    history["final_train_acc"] = accuracy(model, X, y)
    history["snapshots"] = snapshots
    return history
