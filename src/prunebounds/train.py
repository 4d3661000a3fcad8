"""Training as the authors trained: plain SGD, seeded and deterministic.

SGD on the cross-entropy loss, batches drawn by index from tensors in memory, with the
paper's learning rate, batch size and weight decay. **No momentum.** The authors' code
(``groundzero/models/model.py``, ``configure_optimizers``, in their public repository
``EtashGuha/compression_bounds_arxiv``) builds ``torch.optim.SGD`` without momentum and
then sets ``optimizer.momentum = 0.9`` as a plain Python attribute; torch's SGD reads
its momentum from ``param_groups``, so that assignment has no effect and their runs were
plain SGD (lr 0.02, batch 256, weight decay 1e-4 for MNIST). The presets ``paper-mnist``
and ``paper-cifar10`` reproduce that. ``momentum-mnist`` (momentum 0.9) is *ours*: the
setting this book used before the authors' code was read closely, kept for comparison.

Accuracies are those of :mod:`prunebounds.margins` (a tie counts as an error).
"""

from __future__ import annotations

import copy
import sys
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm import tqdm

from .data import DataBundle, augment_cifar, batches
from .devices import resolve_device
from .margins import model_accuracy, n_correct
from .validate import check_choice, check_int


@dataclass(frozen=True)
class OptimiserConfig:
    """SGD hyper-parameters; ``augment`` switches on the CIFAR-10 crop-and-flip."""

    lr: float
    batch_size: int
    weight_decay: float
    momentum: float = 0.0
    augment: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


OPTIMISERS: dict[str, OptimiserConfig] = {
    # the authors' settings: plain SGD (their momentum attribute was never read by torch)
    "paper-mnist": OptimiserConfig(lr=0.02, batch_size=256, weight_decay=1e-4),
    "paper-cifar10": OptimiserConfig(lr=0.01, batch_size=64, weight_decay=1e-4, augment=True),
    # ours: the paper's MNIST settings with momentum 0.9, for comparison only
    "momentum-mnist": OptimiserConfig(lr=0.02, batch_size=256, weight_decay=1e-4, momentum=0.9),
}


def optimiser_config(name: str) -> OptimiserConfig:
    """The named preset of :data:`OPTIMISERS`."""
    return OPTIMISERS[check_choice("optimiser", name, OPTIMISERS)]


def make_sgd(model: nn.Module, opt: OptimiserConfig) -> torch.optim.SGD:
    """The SGD optimiser of preset ``opt`` over all of the model's parameters."""
    return torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum,
                           weight_decay=opt.weight_decay)


def train_epoch(model: nn.Module, X: torch.Tensor, y: torch.Tensor, sgd: torch.optim.Optimizer,
                opt: OptimiserConfig, gen: torch.Generator) -> tuple[float, float]:
    """One pass over (X, y) in shuffled mini-batches drawn by index.

    Returns the mean loss and the *running* training accuracy: the fraction of the
    epoch's samples that the network classified correctly (positive margin) in the
    forward pass of their own batch (weights change during the epoch, so it is not the
    accuracy of the final weights; it costs no extra forward pass).

    The batch order comes from ``gen`` (a CPU generator, so a seed gives the same order
    on every device) and is moved to the data's device once per epoch. Each step only
    copies its loss and its outputs into buffers on the device; the mean loss and the
    count of correct samples are computed from the buffers once, at the end of the
    epoch. No step waits for the device, and a step launches no more kernels than the
    forward pass, the backward pass, the update and the two copies.
    """
    model.train()
    device = X.device
    perm = torch.randperm(len(y), generator=gen).to(device)
    order = perm.split(opt.batch_size)
    losses = torch.empty(len(order), dtype=torch.float32, device=device)
    outputs: torch.Tensor | None = None
    for k, idx in enumerate(order):
        xb = augment_cifar(X[idx], gen) if opt.augment else X[idx]
        out = model(xb)
        loss = nn.functional.cross_entropy(out, y[idx])
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        sgd.step()
        if outputs is None:
            outputs = torch.empty((len(y), out.shape[1]), dtype=out.dtype, device=device)
        outputs[k * opt.batch_size:k * opt.batch_size + len(idx)] = out.detach()
        losses[k] = loss.detach()
    sizes = torch.tensor([len(idx) for idx in order], dtype=torch.float64, device=device)
    total = float((losses.to(torch.float64) * sizes).sum())
    return total / len(y), float(n_correct(outputs, y[perm])) / len(y)


@dataclass(frozen=True)
class TrainingHistory:
    """What :func:`train` records.

    Attributes:
        epoch: 1, ..., epochs.
        train_loss, train_acc: per epoch, the running mean loss and running accuracy
            over the epoch's batches (see :func:`train_epoch`).
        val_acc, test_acc: per epoch, the accuracy of the weights after that epoch.
        final_train_acc: the accuracy of the final weights on the whole training set.
    """

    epoch: tuple[int, ...]
    train_loss: tuple[float, ...]
    train_acc: tuple[float, ...]
    val_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    final_train_acc: float


def train(
    model: nn.Module,
    data: DataBundle,
    opt: OptimiserConfig,
    epochs: int,
    seed: int,
    *,
    snapshot_epochs: tuple[int, ...] = (),
    progress: bool = True,
    device: str | torch.device | None = None,
) -> tuple[TrainingHistory, dict[int, dict[str, torch.Tensor]]]:
    """Train ``model`` in place for ``epochs`` epochs; return its history and snapshots.

    The model and the data are moved once to ``device`` (a name for
    :func:`prunebounds.devices.resolve_device`; ``None``: where the model's parameters
    are) and the model stays there. Returns the :class:`TrainingHistory` and ``{epoch:
    state_dict}`` for the requested ``snapshot_epochs`` (0 = initial; on the training
    device). Shuffling and augmentation use a CPU generator seeded with ``seed``, so two
    runs with the same seed, data and thread count give bit-identical weights on the
    CPU, and the same batches on every device.
    """
    epochs = check_int("epochs", epochs, minimum=0)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    param = next(model.parameters(), None)
    dev = resolve_device(device) if device is not None else (
        param.device if param is not None else torch.device("cpu"))
    model.to(dev)
    data = data.to(dev)
    sgd = make_sgd(model, opt)
    X, y = data.train.X, data.train.y
    rec: dict[str, list] = {k: [] for k in ("epoch", "train_loss", "train_acc", "val_acc",
                                            "test_acc")}
    snapshots = {0: copy.deepcopy(model.state_dict())} if 0 in snapshot_epochs else {}
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=not progress,
               file=sys.stderr, leave=False)
    for epoch in bar:
        mean_loss, running_acc = train_epoch(model, X, y, sgd, opt, gen)
        rec["epoch"].append(epoch)
        rec["train_loss"].append(mean_loss)
        rec["train_acc"].append(running_acc)
        rec["val_acc"].append(model_accuracy(model, data.val.X, data.val.y))
        rec["test_acc"].append(model_accuracy(model, data.test.X, data.test.y))
        bar.set_postfix(loss=f"{mean_loss:.4f}", test_acc=f"{rec['test_acc'][-1]:.4f}")
        if epoch in snapshot_epochs:
            snapshots[epoch] = copy.deepcopy(model.state_dict())
    history = TrainingHistory(**{k: tuple(v) for k, v in rec.items()},
                              final_train_acc=model_accuracy(model, X, y))
    return history, snapshots
