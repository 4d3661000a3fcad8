"""Gradual magnitude pruning of weights and hidden units, with masked training.

The certificate chapter compresses networks much further than one pruning step can:
from a lottery ticket (a few percent of LeNet-300-100's weights) down to a few tenths
of a percent. It does so the way practitioners do (Zhu & Gupta 2017, "To prune, or not
to prune"; Han, Pool, Tran & Dally 2015): in several levels, each one pruning a little
more and then training the survivors for a few epochs with the pruned weights held at
zero. Two kinds of pruning are combined at each :class:`Level`:

* **hidden units** (:func:`prune_units`): in each hidden layer l, the units with the
  smallest score s_i = ||W^l[i, :]||_2 ||W^(l+1)[:, i]||_2 (the norm of the unit's
  incoming weights times the norm of its outgoing weights, the first-order size of what
  the unit passes on) lose all their incoming and outgoing weights, until
  ``Level.hidden[l]`` units are left;
* **weights** (:func:`prune_global`): one magnitude threshold over all layers keeps the
  ``round(keep * n)`` largest surviving weights (n = the weights of the original
  network).

After each level, :func:`compact` removes the hidden units with no outgoing weight
(they reach nothing, so the network computes the same function), and the network
trains on its smaller shape: an epoch of a LeNet reduced to 30 and 20 hidden units
costs about a tenth of one of LeNet-300-100. :func:`masked_train` trains with the
package's SGD loop (:func:`prunebounds.train.train_epoch`) under
``torch.nn.utils.prune`` masks, so pruned weights stay exactly zero.

None of this is the paper's rule: it is ours, a means to a short code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune
from tqdm import tqdm

from .devices import resolve_device
from .errors import ParameterError
from .models import MLP, linear_layers
from .train import make_sgd, optimiser_config, train_epoch
from .validate import check_int, check_real

__all__ = [
    "Level",
    "masks_of",
    "unit_scores",
    "prune_units",
    "prune_global",
    "apply_masks",
    "compact",
    "masked_train",
    "PrunedLevel",
    "gradual_prune",
]


@dataclass(frozen=True)
class Level:
    """One level of gradual pruning.

    Attributes:
        keep: the fraction of the *original* network's weights (all layers together)
            left after this level.
        hidden: the number of units left in each hidden layer (``None``: units are not
            pruned at this level).
    """

    keep: float
    hidden: tuple[int, ...] | None = None

    def __post_init__(self):
        k = check_real("keep", self.keep, minimum=0.0, maximum=1.0)
        if k <= 0.0:
            raise ParameterError(f"keep must be > 0 (a fraction of the weights), got {k}; "
                                 "a network with no weights left computes a constant")
        if self.hidden is not None:
            object.__setattr__(self, "hidden", tuple(
                check_int("hidden units", h, minimum=1) for h in self.hidden))


def _blank(widths: tuple[int, ...], bias: bool) -> MLP:
    """An MLP of these widths whose weights are overwritten next (torch's global
    generator is left untouched)."""
    with torch.random.fork_rng():
        return MLP(widths, bias=bias)


def masks_of(model: nn.Module) -> list[torch.Tensor]:
    """The non-zero pattern of every linear layer's weight (bool, out x in)."""
    return [layer.weight.detach() != 0 for layer in linear_layers(model)]


def unit_scores(model: nn.Module, masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per hidden layer, s_i = ||W^l[i, :]||_2 ||W^(l+1)[:, i]||_2 over the kept weights."""
    W = [layer.weight.detach() * m for layer, m in zip(linear_layers(model), masks)]
    return [a.norm(dim=1) * b.norm(dim=0) for a, b in zip(W[:-1], W[1:])]


def prune_units(model: nn.Module, masks: Sequence[torch.Tensor],
                hidden: Sequence[int]) -> list[torch.Tensor]:
    """New masks in which each hidden layer keeps its ``hidden[l]`` best-scoring units.

    The other units lose every incoming and outgoing weight. Units already without
    weights have score 0 and go first; a layer with fewer units than asked keeps them.
    """
    layers = linear_layers(model)
    if len(hidden) != len(layers) - 1:
        raise ParameterError(f"hidden lists {len(hidden)} widths but the network has "
                             f"{len(layers) - 1} hidden layers")
    out = [m.clone() for m in masks]
    for l, (score, h) in enumerate(zip(unit_scores(model, masks), hidden)):
        h = check_int("hidden units", h, minimum=1)
        if h >= len(score):
            continue
        drop = torch.argsort(score, stable=True)[: len(score) - h]
        out[l][drop, :] = False
        out[l + 1][:, drop] = False
    return out


def prune_global(model: nn.Module, masks: Sequence[torch.Tensor],
                 n_keep: int) -> list[torch.Tensor]:
    """New masks keeping the ``n_keep`` largest |w| among the kept weights of all layers.

    One threshold for every layer (global magnitude pruning). When fewer than
    ``n_keep`` weights are kept already, the masks are returned unchanged.
    """
    n_keep = check_int("n_keep", n_keep, minimum=1)
    layers = linear_layers(model)
    scores = torch.cat([(layer.weight.detach().abs() * m).flatten()
                        for layer, m in zip(layers, masks)])
    alive = torch.cat([m.flatten() for m in masks])
    if int(alive.sum()) <= n_keep:
        return [m.clone() for m in masks]
    scores = torch.where(alive, scores, torch.full_like(scores, -1.0))
    keep = torch.zeros_like(alive)
    keep[torch.topk(scores, n_keep).indices] = True
    out, start = [], 0
    for m in masks:
        out.append(keep[start:start + m.numel()].view_as(m) & m)
        start += m.numel()
    return out


def apply_masks(model: nn.Module, masks: Sequence[torch.Tensor]) -> nn.Module:
    """Zero the pruned weights of ``model`` in place (and return it)."""
    with torch.no_grad():
        for layer, m in zip(linear_layers(model), masks):
            layer.weight.mul_(m.to(layer.weight.device, layer.weight.dtype))
    return model


def compact(model: nn.Module, masks: Sequence[torch.Tensor]) -> tuple[MLP, list[torch.Tensor]]:
    """The same function on fewer hidden units: drop the units with no outgoing weight.

    A hidden unit whose outgoing weights are all pruned reaches nothing, so removing it
    (with its incoming weights and its bias) changes no output. Returns a new
    :class:`prunebounds.models.MLP` (pruned weights zero) and its masks, both on the
    device of ``model``. Every hidden layer keeps at least one unit.
    """
    layers = linear_layers(model)
    keep = [torch.arange(layers[0].in_features)]
    for m in masks[1:]:
        alive = torch.nonzero(m.any(dim=0)).flatten().cpu()
        keep.append(alive if len(alive) else torch.tensor([0]))
    keep.append(torch.arange(layers[-1].out_features))
    new = _blank(tuple(len(k) for k in keep), layers[0].bias is not None)
    new_masks = []
    with torch.no_grad():
        for layer, target, m, rows, cols in zip(layers, linear_layers(new), masks, keep[1:],
                                                keep[:-1]):
            w = (layer.weight.detach() * m).cpu()
            target.weight.copy_(w[rows][:, cols])
            if layer.bias is not None:
                target.bias.copy_(layer.bias.detach().cpu()[rows])
            new_masks.append(m.cpu()[rows][:, cols].clone())
    device = layers[0].weight.device
    return new.to(device), [m.to(device) for m in new_masks]


def masked_train(model: nn.Module, masks: Sequence[torch.Tensor], X: torch.Tensor,
                 y: torch.Tensor, epochs: int, optimiser: str = "momentum-mnist",
                 seed: int = 0) -> float:
    """Train ``model`` in place for ``epochs`` epochs with its pruned weights held at zero.

    The masks are attached with ``torch.nn.utils.prune.custom_from_mask`` (weight =
    weight_orig * mask, so a pruned weight gets no gradient and stays zero), the epochs
    run :func:`prunebounds.train.train_epoch` with the SGD preset ``optimiser`` and a
    batch order seeded with ``seed``, and the masks are made permanent at the end.
    Returns the last epoch's mean training loss (NaN for zero epochs).
    """
    epochs = check_int("epochs", epochs, minimum=0)
    layers = linear_layers(model)
    if len(masks) != len(layers):
        raise ParameterError(f"got {len(masks)} masks for {len(layers)} linear layers")
    for layer, m in zip(layers, masks):
        prune.custom_from_mask(layer, "weight", m.to(layer.weight.device))
    opt = optimiser_config(optimiser)
    sgd = make_sgd(model, opt)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    loss = float("nan")
    try:
        for _ in range(epochs):
            loss, _ = train_epoch(model, X, y, sgd, opt, gen)
    finally:
        for layer in layers:
            prune.remove(layer, "weight")
    return loss


@dataclass
class PrunedLevel:
    """The network after one level of :func:`gradual_prune`.

    Attributes:
        level: the :class:`Level`.
        model: the compacted network (pruned weights zero), trained.
        n_kept: its kept weights.
        fraction: n_kept over the weights of the original network.
        widths: its layer widths after compaction.
        seconds: time spent on this level (pruning and training).
    """

    level: Level
    model: nn.Module
    n_kept: int
    fraction: float
    widths: tuple[int, ...]
    seconds: float


def gradual_prune(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                  levels: Sequence[Level], epochs: int | Sequence[int], *,
                  optimiser: str = "momentum-mnist", seed: int = 0,
                  device: str | torch.device | None = None,
                  progress: bool = True) -> list[PrunedLevel]:
    """Prune ``model`` level by level (units, then weights), training after each level.

    At each level: :func:`prune_units` (when the level names hidden widths), then
    :func:`prune_global` down to ``round(keep * n)`` weights (n: the weights of
    ``model``), :func:`compact`, and :func:`masked_train` for ``epochs`` epochs (one
    number for every level, or one per level) on (X, y). ``model`` is not changed; it
    may already be pruned (its zeros are kept pruned). Training runs on ``device``
    (default ``"auto"``); the returned networks are on the CPU.

    Raises:
        ParameterError: keep fractions that do not decrease, a level that would leave a
            layer without weights, or an epochs list of the wrong length.
    """
    levels = list(levels)
    if not levels:
        raise ParameterError("levels must name at least one Level")
    if any(not isinstance(lv, Level) for lv in levels):
        raise ParameterError("levels must be prunebounds.gradual.Level objects")
    if any(b.keep >= a.keep for a, b in zip(levels, levels[1:])):
        raise ParameterError("the keep fractions of the levels must decrease, got "
                             f"{[lv.keep for lv in levels]}")
    per_level = [epochs] * len(levels) if isinstance(epochs, int) else list(epochs)
    if len(per_level) != len(levels):
        raise ParameterError(f"epochs lists {len(per_level)} values for {len(levels)} levels")
    dev = resolve_device(device)
    X, y = X.to(dev), y.to(dev)
    n_total = sum(layer.weight.numel() for layer in linear_layers(model))
    first = linear_layers(model)[0]
    net = _blank(tuple([first.in_features] + [layer.out_features
                                              for layer in linear_layers(model)]),
                 first.bias is not None)
    net.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    net.to(dev)
    masks = [m.to(dev) for m in masks_of(net)]
    out = []
    bar = tqdm(list(zip(levels, per_level)), desc="gradual pruning", unit="level",
               disable=not progress, file=sys.stderr, leave=False)
    for lv, ep in bar:
        start = time.perf_counter()
        if lv.hidden is not None:
            masks = prune_units(net, masks, lv.hidden)
        masks = prune_global(net, masks, max(1, round(lv.keep * n_total)))
        for i, m in enumerate(masks, start=1):
            if not bool(m.any()):
                raise ParameterError(f"level keep={lv.keep} leaves layer {i} without weights: "
                                     "keep more weights or more hidden units")
        net, masks = compact(apply_masks(net, masks), masks)
        masked_train(net, masks, X, y, check_int("epochs", ep, minimum=0), optimiser, seed)
        n_kept = int(sum(int(m.sum()) for m in masks))
        snapshot = _blank(tuple(net.widths), linear_layers(net)[0].bias is not None)
        snapshot.load_state_dict({k: v.detach().cpu() for k, v in net.state_dict().items()})
        out.append(PrunedLevel(lv, snapshot, n_kept, n_kept / n_total, tuple(net.widths),
                               time.perf_counter() - start))
        bar.set_postfix(kept=f"{n_kept / n_total:.4f}")
    return out
