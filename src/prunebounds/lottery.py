"""Iterative magnitude pruning with rewinding: lottery tickets (Frankle & Carbin 2019).

The procedure of Frankle & Carbin ("The lottery ticket hypothesis", ICLR 2019), built
on :mod:`torch.nn.utils.prune`:

1. initialise the network, theta_0, and keep a copy;
2. train it with its current mask m (all ones at first) for a fixed number of epochs;
3. prune a fraction p of the weights that are still unpruned, smallest magnitude of the
   *trained* weights first, giving a new mask m' <= m;
4. rewind the surviving weights to their values in theta_0 and go back to 2 with m'.

Each linear layer keeps PyTorch's pruning parametrization throughout
(``weight = weight_orig * weight_mask``, set up with ``prune.identity``), so a pruned
weight stays exactly zero while the network retrains, and each new pruning step is
combined with the old mask by ``prune``'s ``PruningContainer``. A float ``amount``
is therefore a fraction of the weights *still unpruned*: after k rounds at rate p a
layer of n weights keeps n_k weights with n_0 = n, n_{k+1} = n_k - round(p n_k)
(:func:`kept_counts`), which is n (1 - p)^k up to rounding (:func:`fraction_left`).
Rewinding copies theta_0 into ``weight_orig`` (and the biases); biases are never pruned.

Two pruning schedules (:data:`PRESETS`):

* ``"frankle-carbin"``: every layer on its own (``prune.l1_unstructured``), 20% per
  round, the output layer at half that rate (10%), Frankle & Carbin's schedule for
  LeNet-300-100;
* ``"global-20"``: one magnitude threshold over all hidden layers together
  (``prune.global_unstructured``), 20% of their remaining weights per round; the
  output layer stays dense.

:func:`imp` runs the rounds and returns every round's mask and trained weights;
:func:`random_reinit_control` retrains a round's mask from a fresh random
initialisation (Frankle & Carbin's control). :func:`analyse_round` measures what the
book asks of each round (accuracy, Gaussianity of the surviving weights, row and column
sparsity, the Gaussian rule on the survivors, the pruning error of the next step, and
the counting bounds for the sparse network), and :func:`imp_cached` runs and measures a
whole experiment once and caches the numbers as JSON.

:func:`imp_stacked` runs the same procedure for several schedules at once, organised by
round: the tickets of every schedule and the round's controls are trained side by side
as one :class:`MaskedStack` (weights stacked along a first axis, batched products), by
:func:`train_stack`, with the sums kept on the device and read once per round; it also
rewinds to given weights (late rewinding, Frankle et al. 2020) and trains with Frankle &
Carbin's Adam (:data:`IMP_OPTIMISERS`). Its rounds are :class:`IMPResult` objects, so
:func:`analyse_round` applies to them.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import optimize, stats
from torch import nn
from torch.nn.utils import prune
from tqdm import tqdm

from .bounds import Bound, counting_bound, paper_bound, sparse_count_bound
from .cache import cached_result
from .data import DataBundle, batches, load
from .devices import resolve_device
from .discretization import discretize_model
from .errors import ParameterError
from .gaussianity import excess_kurtosis, rule_expectations_empirical
from .margins import error_rate, logits, margin_percentile, margins, model_accuracy, n_correct
from .models import build, linear_layers, resolve_widths
from .perturbation import needed_margin, output_change
from .pruning import d_for_keep
from .runs import RunConfig, new_model
from .sketching import SketchSize, sketch_sizes
from .sparsity import LayerSparsity, disconnected_neurons, nonzeros_per_col, sparsity_summary
from .train import OPTIMISERS, OptimiserConfig, make_sgd, optimiser_config, train_epoch
from .validate import check_choice, check_int, check_real

__all__ = [
    "Preset",
    "PRESETS",
    "layer_rates",
    "fraction_left",
    "kept_counts",
    "prune_step",
    "MaskedHistory",
    "IMPRound",
    "IMPResult",
    "imp",
    "ControlRun",
    "random_reinit_control",
    "SurvivorStats",
    "survivor_stats",
    "RuleOnSurvivors",
    "rule_on_survivors",
    "control_seed",
    "SparseNetworkBounds",
    "sparse_network_bounds",
    "StepAnalysis",
    "step_analysis",
    "AccuracySummary",
    "RoundAnalysis",
    "ControlSummary",
    "analyse_round",
    "IMPExperiment",
    "run_experiment",
    "imp_cached",
    "AdamConfig",
    "IMP_OPTIMISERS",
    "imp_optimiser",
    "MaskedStack",
    "train_stack",
    "next_masks",
    "StackedIMP",
    "imp_stacked",
]

#: Bins of the standardized histograms of surviving weights (z = (w - mean) / sd).
HIST_EDGES = np.linspace(-5.0, 5.0, 81)
#: Half-width (in standard deviations) of the centre window of :func:`survivor_stats`.
CENTRE = 0.25


# --------------------------------------------------------------------------- schedules
@dataclass(frozen=True)
class Preset:
    """A pruning schedule: which weights compete and what fraction goes per round.

    Attributes:
        name: the key in :data:`PRESETS`.
        scope: ``"layer"`` (each layer pruned on its own) or ``"global"`` (one
            threshold over the hidden layers together).
        rate: fraction of the remaining weights pruned per round (hidden layers).
        output_rate: the same for the output layer (``"layer"`` scope only; a
            ``"global"`` preset leaves the output layer dense).
    """

    name: str
    scope: str
    rate: float
    output_rate: float

    def __post_init__(self):
        check_choice("scope", self.scope, ("layer", "global"))
        check_real("rate", self.rate, minimum=0.0, maximum=1.0)
        check_real("output_rate", self.output_rate, minimum=0.0, maximum=1.0)
        if self.scope == "global" and self.output_rate != 0.0:
            raise ParameterError("a global preset leaves the output layer dense: output_rate=0")

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    # Frankle & Carbin (2019), LeNet-300-100: 20% per round per layer, output at half rate.
    "frankle-carbin": Preset("frankle-carbin", "layer", 0.2, 0.1),
    # One global magnitude threshold over the hidden layers, output layer dense.
    "global-20": Preset("global-20", "global", 0.2, 0.0),
}


def _preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    return PRESETS[check_choice("preset", preset, PRESETS)]


def layer_rates(preset: str | Preset, n_layers: int) -> list[float]:
    """Per linear layer, the fraction of its remaining weights pruned per round.

    For a ``"global"`` preset the hidden layers share one threshold, so their own
    per-round rates are whatever that threshold gives; the list then holds the global
    rate for every hidden layer and 0 for the output layer.
    """
    p = _preset(preset)
    n = check_int("n_layers", n_layers, minimum=1)
    return [p.rate] * (n - 1) + [p.output_rate]


def fraction_left(rate: float, rounds: int) -> float:
    """(1 - rate)^rounds: the fraction of a layer's weights left after ``rounds`` rounds.

    Because ``torch.nn.utils.prune`` reads a float ``amount`` as a fraction of the
    weights still unpruned, the per-round rates compound. Exact up to the rounding of
    each round's count (:func:`kept_counts`).
    """
    r = check_real("rate", rate, minimum=0.0, maximum=1.0)
    k = check_int("rounds", rounds, minimum=0)
    return (1.0 - r) ** k


def kept_counts(n: int, rate: float, rounds: int) -> list[int]:
    """Exact numbers of weights left after 0, 1, ..., ``rounds`` rounds of pruning.

    ``prune.l1_unstructured(..., amount=rate)`` on a tensor with n_k unpruned entries
    prunes round(rate * n_k) of them (``torch.nn.utils.prune._compute_nparams_toprune``,
    Python's round-half-to-even), so n_{k+1} = n_k - round(rate n_k). For a global
    preset, n is the number of weights of the hidden layers together.
    """
    n = check_int("n", n, minimum=0)
    r = check_real("rate", rate, minimum=0.0, maximum=1.0)
    k = check_int("rounds", rounds, minimum=0)
    out = [n]
    for _ in range(k):
        out.append(out[-1] - round(r * out[-1]))
    return out


# --------------------------------------------------------------------------- masks in place
def _layers(model: nn.Module) -> list[nn.Linear]:
    layers = linear_layers(model)
    if not layers:
        raise ParameterError("the model has no nn.Linear layers to prune")
    own = {id(p) for layer in layers for p in layer.parameters(recurse=False)}
    own |= {id(getattr(layer, "weight_orig")) for layer in layers if hasattr(layer, "weight_orig")}
    if any(id(p) not in own for p in model.parameters()):
        raise ParameterError("iterative pruning here handles networks made of nn.Linear "
                             "layers (MLPs) only: the model has other parameters")
    return layers


def _parametrize(model: nn.Module) -> list[nn.Linear]:
    """Give every linear layer the ``weight_orig * weight_mask`` parametrization (mask 1)."""
    layers = _layers(model)
    for layer in layers:
        if not hasattr(layer, "weight_mask"):
            prune.identity(layer, "weight")
    return layers


def _masks(layers: Sequence[nn.Linear]) -> list[torch.Tensor]:
    """The current masks, as bool tensors on the CPU (where the rounds are kept)."""
    return [layer.weight_mask.detach().bool().cpu() for layer in layers]


def prune_step(model: nn.Module, preset: str | Preset) -> None:
    """One round of magnitude pruning of ``model`` in place, combined with its masks.

    The importance of a weight is its current (trained, masked) magnitude. A layer
    preset calls ``prune.l1_unstructured(layer, "weight", amount=rate_l)`` on every
    layer with a positive rate; a global preset calls ``prune.global_unstructured``
    over the hidden layers. Either way the amount is a fraction of the weights still
    unpruned, and already pruned weights stay pruned.
    """
    p = _preset(preset)
    layers = _parametrize(model)
    if p.scope == "layer":
        for layer, rate in zip(layers, layer_rates(p, len(layers))):
            if rate > 0:
                prune.l1_unstructured(layer, "weight", amount=rate)
    elif len(layers) > 1 and p.rate > 0:
        prune.global_unstructured([(layer, "weight") for layer in layers[:-1]],
                                  pruning_method=prune.L1Unstructured, amount=p.rate)


def _apply_masks(model: nn.Module, masks: Sequence[torch.Tensor]) -> list[nn.Linear]:
    layers = _layers(model)
    if len(masks) != len(layers):
        raise ParameterError(f"got {len(masks)} masks for {len(layers)} linear layers")
    for i, (layer, mask) in enumerate(zip(layers, masks), start=1):
        if tuple(mask.shape) != tuple(layer.weight.shape):
            raise ParameterError(f"mask {i} has shape {tuple(mask.shape)}, the layer's weight "
                                 f"{tuple(layer.weight.shape)}")
        prune.custom_from_mask(layer, "weight",
                               mask.to(device=layer.weight.device, dtype=layer.weight.dtype))
    return layers


def _rewind(layers: Sequence[nn.Linear],
            initial: Sequence[tuple[torch.Tensor, torch.Tensor | None]]) -> None:
    """Copy the initial weights into ``weight_orig`` and the biases (the rewinding)."""
    with torch.no_grad():
        for layer, (w0, b0) in zip(layers, initial):
            layer.weight_orig.copy_(w0)
            if b0 is not None:
                layer.bias.copy_(b0)


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state of ``model`` with the masks made permanent (plain ``weight`` keys), on
    the CPU."""
    plain = copy.deepcopy(model)
    for layer in linear_layers(plain):
        if hasattr(layer, "weight_mask"):
            prune.remove(layer, "weight")
    return {k: v.detach().cpu().clone() for k, v in plain.state_dict().items()}


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class MaskedHistory:
    """Per epoch of one round: the running training loss, validation and test accuracy;
    and the training accuracy of the final weights."""

    train_loss: tuple[float, ...]
    val_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    train_acc: float


def _train_masked(model: nn.Module, data: DataBundle, opt: OptimiserConfig, epochs: int,
                  seed: int) -> MaskedHistory:
    """Train ``model`` (masks in place) for ``epochs`` epochs; per-epoch accuracies.

    A fresh SGD optimiser (the book's preset), and a batch order from a generator seeded
    with ``seed``, so every round sees the same sequence of batches. Accuracies are
    :func:`prunebounds.margins.model_accuracy` (ties are errors). The data are moved to
    the model's device (once: a no-op when they are there already).
    """
    data = data.to(next(model.parameters()).device)
    sgd = make_sgd(model, opt)
    gen = torch.Generator().manual_seed(seed)
    X, y = data.train.X, data.train.y
    hist: dict[str, list[float]] = {"train_loss": [], "val_acc": [], "test_acc": []}
    for _ in range(epochs):
        hist["train_loss"].append(train_epoch(model, X, y, sgd, opt, gen)[0])
        hist["val_acc"].append(model_accuracy(model, data.val.X, data.val.y))
        hist["test_acc"].append(model_accuracy(model, data.test.X, data.test.y))
    return MaskedHistory(**{k: tuple(v) for k, v in hist.items()},
                         train_acc=model_accuracy(model, X, y))


@dataclass
class IMPRound:
    """One round of iterative pruning.

    Attributes:
        index: k = 0 (dense), 1, 2, ...
        masks: the mask m_k the network was trained with (bool, out x in, per layer).
        state: the trained network (plain state dict, pruned weights are zero).
        next_masks: the mask m_{k+1} that magnitude pruning of these trained weights
            chooses (the ticket of the next round).
        history: the round's :class:`MaskedHistory`.
        seconds: training time of the round.
    """

    index: int
    masks: list[torch.Tensor]
    state: dict[str, torch.Tensor]
    next_masks: list[torch.Tensor]
    history: MaskedHistory
    seconds: float = 0.0

    @property
    def fraction_left(self) -> float:
        """Fraction of all weights (every linear layer) left in this round."""
        return float(sum(int(m.sum()) for m in self.masks) / sum(m.numel() for m in self.masks))

    @property
    def layer_fractions(self) -> list[float]:
        return [float(m.sum()) / m.numel() for m in self.masks]


@dataclass
class IMPResult:
    """Every round of one run of :func:`imp`, and what is needed to rebuild a network."""

    preset: Preset
    template: nn.Module
    initial: dict[str, torch.Tensor]
    optimiser: OptimiserConfig
    epochs_per_round: int
    seed: int
    rounds: list[IMPRound] = field(default_factory=list)

    def model_at(self, k: int) -> nn.Module:
        """The trained network of round ``k`` as a plain module (no pruning hooks)."""
        net = copy.deepcopy(self.template)
        net.load_state_dict(self.rounds[k].state)
        return net

    def pruned_next(self, k: int) -> nn.Module:
        """Round ``k``'s trained network with the next mask applied (pruned, not retrained)."""
        net = self.model_at(k)
        with torch.no_grad():
            for layer, mask in zip(linear_layers(net), self.rounds[k].next_masks):
                layer.weight.mul_(mask.to(layer.weight.dtype))
        return net


def _initial_model(cfg_or_model: Any, seed: int) -> tuple[nn.Module, str | None]:
    """A freshly initialised plain model and, for a RunConfig, its optimiser name."""
    if isinstance(cfg_or_model, RunConfig):
        return new_model(cfg_or_model, seed), cfg_or_model.optimiser
    if isinstance(cfg_or_model, nn.Module):
        if any(hasattr(layer, "weight_mask") for layer in linear_layers(cfg_or_model)):
            raise ParameterError("pass an unpruned model (it is the initialisation theta_0)")
        return copy.deepcopy(cfg_or_model), None
    return build(resolve_widths(cfg_or_model), seed), None


def imp(cfg_or_model: Any, data: DataBundle, preset: str | Preset, rounds: int,
        epochs_per_round: int, seed: int, progress: bool = True,
        optimiser: str | None = None, device: str | torch.device | None = None) -> IMPResult:
    """Iterative magnitude pruning with rewinding to the initial weights (Frankle & Carbin).

    Args:
        cfg_or_model: the network: a :class:`prunebounds.runs.RunConfig` (its
            widths, initialised with ``seed``, and its optimiser), an initialised
            ``nn.Module`` made of linear layers (copied; it is theta_0), or an
            architecture name / width list of :mod:`prunebounds.models`.
        data: the data set (trained on ``data.train``).
        preset: a name in :data:`PRESETS` or a :class:`Preset`.
        rounds: number of pruning rounds R; R + 1 networks are trained (round 0 dense).
        epochs_per_round: training epochs of each round.
        seed: initialisation (unless a module is given) and batch order of every round.
        progress: show a progress bar on stderr.
        optimiser: a preset of :data:`prunebounds.train.OPTIMISERS` (default: the
            RunConfig's, else ``"paper-mnist"``).
        device: where to train (:func:`prunebounds.devices.resolve_device`; default
            ``"auto"``). The data are moved there once; masks and trained states are
            kept on the CPU.

    Returns:
        :class:`IMPResult` with rounds 0..R. Round k's network was trained from theta_0
        under mask m_k; its ``next_masks`` is m_{k+1} (computed for k = R too).
    """
    p = _preset(preset)
    rounds = check_int("rounds", rounds, minimum=0)
    epochs = check_int("epochs_per_round", epochs_per_round, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    model, cfg_opt = _initial_model(cfg_or_model, seed)
    opt_name = optimiser if optimiser is not None else (cfg_opt or "paper-mnist")
    opt = optimiser_config(check_choice("optimiser", opt_name, OPTIMISERS))
    template = copy.deepcopy(model)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    dev = resolve_device(device)
    model.to(dev)
    data = data.to(dev)
    layers = _parametrize(model)
    theta0 = [(layer.weight_orig.detach().clone(),
               None if layer.bias is None else layer.bias.detach().clone()) for layer in layers]
    result = IMPResult(p, template, initial, opt, epochs, seed)
    bar = tqdm(range(rounds + 1), desc=f"IMP {p.name}", unit="round", disable=not progress,
               file=sys.stderr, leave=False)
    for k in bar:
        masks = _masks(layers)
        start = time.perf_counter()
        hist = _train_masked(model, data, opt, epochs, seed)
        seconds = time.perf_counter() - start
        state = _plain_state(model)
        prune_step(model, p)
        result.rounds.append(IMPRound(k, masks, state, _masks(layers), hist, seconds))
        bar.set_postfix(left=f"{result.rounds[-1].fraction_left:.3f}",
                        test_acc=f"{hist.test_acc[-1]:.4f}")
        _rewind(layers, theta0)
    return result


def control_seed(seed: int, k: int) -> int:
    """Seed of the fresh initialisation of the random re-initialization control of round k."""
    return 1_000_003 * (check_int("seed", seed, minimum=0) + 1) + check_int("round", k, minimum=0)


@dataclass
class ControlRun:
    """A random re-initialization control: its history, density and trained weights."""

    history: MaskedHistory
    fraction_left: float
    state: dict[str, torch.Tensor]


def random_reinit_control(cfg_or_model: Any, data: DataBundle, masks: Sequence[torch.Tensor],
                          epochs: int, seed: int, init_seed: int | None = None,
                          optimiser: str | None = None,
                          device: str | torch.device | None = None) -> ControlRun:
    """Frankle & Carbin's control: the same mask, a fresh random initialisation, retrained.

    The architecture of ``cfg_or_model`` (as in :func:`imp`; of a module only the
    architecture is used: its linear layers are re-initialised by ``reset_parameters``)
    is initialised with ``init_seed`` (default :func:`control_seed` (seed, 0)), the
    ``masks`` are applied with ``prune.custom_from_mask`` and the network is trained for
    ``epochs`` epochs with the batch order of ``seed``, like the ticket it controls. So
    a ticket and its control differ only in their initial weights. The initial weights
    are drawn on the CPU; training runs on ``device`` (default ``"auto"``).

    Returns:
        a :class:`ControlRun`: the history, ``fraction_left`` and the plain ``state`` of
        the trained control.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    init_seed = control_seed(seed, 0) if init_seed is None else check_int("init_seed", init_seed,
                                                                          minimum=0)
    if isinstance(cfg_or_model, nn.Module):
        model = copy.deepcopy(cfg_or_model)
        rng = torch.random.get_rng_state()
        try:
            torch.manual_seed(init_seed)
            for layer in _layers(model):
                layer.reset_parameters()
        finally:
            torch.random.set_rng_state(rng)
        cfg_opt = None
    else:
        model, cfg_opt = _initial_model(cfg_or_model, init_seed)
    opt_name = optimiser if optimiser is not None else (cfg_opt or "paper-mnist")
    opt = optimiser_config(check_choice("optimiser", opt_name, OPTIMISERS))
    model.to(resolve_device(device))
    _apply_masks(model, masks)
    hist = _train_masked(model, data, opt, epochs, seed)
    left = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    return ControlRun(hist, float(left), _plain_state(model))


# --------------------------------------------------------------------------- measurements
def _as_numpy(W: Any) -> np.ndarray:
    if isinstance(W, torch.Tensor):
        return W.detach().cpu().to(torch.float64).numpy()
    return np.asarray(W, dtype=np.float64)


@dataclass(frozen=True)
class SurvivorStats:
    """Shape of the law of the surviving weights of one matrix (see :func:`survivor_stats`)."""

    n: int
    mean: float
    sd: float
    excess_kurtosis: float
    ks_D: float
    centre_ratio: float
    hist: tuple[int, ...]


def survivor_stats(W: Any) -> SurvivorStats:
    """Shape of the law of the surviving (non-zero) entries of a pruned weight matrix.

    * ``excess_kurtosis``: 0 for a normal law (:func:`prunebounds.gaussianity.excess_kurtosis`);
      a law with a hole at zero (magnitude pruning removes the small weights) has a
      *negative* one, -2 for two point masses at +-a.
    * ``ks_D``: Kolmogorov distance sup |F_n - Phi| of the standardized survivors from
      N(0, 1), an effect size (the p-value is zero at these sample sizes).
    * ``centre_ratio``: the fraction of survivors within ``CENTRE`` = 0.25 standard
      deviations of their mean, over the normal value 2 Phi(0.25) - 1 = 0.197: 1 for a
      normal law, near 0 for a law with a hole at zero (bimodal).
    * ``hist``: counts of the standardized survivors in the bins :data:`HIST_EDGES`
      (values beyond +-5 counted in the end bins).

    Fewer than 8 survivors give NaNs and an empty histogram.
    """
    a = _as_numpy(W)
    w = a[a != 0].ravel()
    nan = float("nan")
    if w.size < 8 or w.std() == 0:
        return SurvivorStats(int(w.size), nan, nan, nan, nan, nan, ())
    z = (w - w.mean()) / w.std()
    ks = stats.kstest(z, "norm")
    centre = float(np.mean(np.abs(z) < CENTRE) / (2.0 * stats.norm.cdf(CENTRE) - 1.0))
    hist, _ = np.histogram(np.clip(z, HIST_EDGES[0], HIST_EDGES[-1]), bins=HIST_EDGES)
    return SurvivorStats(n=int(w.size), mean=float(w.mean()), sd=float(w.std()),
                         excess_kurtosis=excess_kurtosis(w), ks_D=float(ks.statistic),
                         centre_ratio=centre, hist=tuple(int(c) for c in hist))


@dataclass(frozen=True)
class RuleOnSurvivors:
    """The paper's rule tuned to keep ``keep``, on the survivors (see :func:`rule_on_survivors`)."""

    keep: float
    d: float
    rule_keep: float
    d_match: float


def rule_on_survivors(W: Any, keep: float) -> RuleOnSurvivors:
    """The paper's rule, tuned to keep ``keep`` of Gaussian weights, on the survivors of W.

    d = :func:`prunebounds.pruning.d_for_keep` (keep) is the parameter at which the rule (R) keeps a
    fraction chi(d) = ``keep`` of i.i.d. Gaussian weights. Applied to the non-zero
    entries w of W with Psi = their variance (as
    :class:`prunebounds.pruning.GaussianMagnitudePruning` does on an already pruned
    tensor), it keeps in expectation ``rule_keep`` = mean of 1 - exp(-w^2/(d Psi)) (an
    exact average over the rule's coin flips,
    :func:`prunebounds.gaussianity.rule_expectations_empirical`). ``rule_keep`` =
    ``keep`` if the survivors are Gaussian; larger when they have few small entries.
    ``d_match`` is the d at which the rule keeps ``keep`` of *these* survivors in
    expectation (the expected kept fraction decreases in d; found by Brent's method on
    log d): equal to ``d`` for Gaussian survivors.
    """
    c = check_real("keep", keep, minimum=0.0, maximum=1.0)
    a = _as_numpy(W)
    w = a[a != 0].ravel()
    d = d_for_keep(c) if c > 0 else float("inf")
    nan = float("nan")
    if d == 0.0:
        return RuleOnSurvivors(c, 0.0, 1.0, 0.0)
    if w.size < 8 or w.var() == 0 or not math.isfinite(d):
        return RuleOnSurvivors(c, float(d), nan, nan)
    rule = rule_expectations_empirical(w, d).keep
    x = (w * w) / w.var()

    def excess(log_d: float) -> float:
        return float(np.mean(-np.expm1(-x / math.exp(log_d)))) - c

    lo, hi = math.log(d) - 1.0, math.log(d) + 1.0
    while excess(lo) < 0:
        lo -= 2.0
    while excess(hi) > 0:
        hi += 2.0
    d_match = math.exp(optimize.brentq(excess, lo, hi, xtol=1e-10, rtol=1e-10))
    return RuleOnSurvivors(c, float(d), float(rule), float(d_match))


def _weights_of(net: nn.Module) -> list[torch.Tensor]:
    return [layer.weight.detach() for layer in linear_layers(net)]


@dataclass(frozen=True)
class AccuracySummary:
    """Accuracies of one trained network of an IMP run (a round or a control).

    ``val_acc``, ``test_acc``: after the last epoch; ``test_acc_at_best_val``: at the
    epoch of best validation accuracy (``best_epoch``, from 1); ``history``: per epoch.
    """

    train_acc: float
    val_acc: float
    test_acc: float
    test_acc_at_best_val: float
    best_epoch: int
    history: MaskedHistory


def _accuracy_summary(hist: MaskedHistory) -> dict:
    best = int(np.argmax(hist.val_acc))
    return {"train_acc": float(hist.train_acc), "val_acc": float(hist.val_acc[-1]),
            "test_acc": float(hist.test_acc[-1]),
            "test_acc_at_best_val": float(hist.test_acc[best]), "best_epoch": best + 1,
            "history": hist}


@dataclass(frozen=True)
class SparseNetworkBounds:
    """Counting bounds for a trained sparse network (see :func:`sparse_network_bounds`)."""

    bounds: dict[str, Bound]   # "sketch", "sparse_count", "dense_count"
    train_err: float
    test_err: float
    nnz: tuple[int, ...]
    r: int
    sketch: tuple[SketchSize, ...]


def sparse_network_bounds(net: nn.Module, data: DataBundle, bits: int,
                          delta: float) -> SparseNetworkBounds:
    """Counting bounds for a trained sparse network g itself (no pruning error).

    g is stored on a grid of 2^bits - 1 values per layer, biases included
    (:func:`prunebounds.discretization.discretize_model`); that stored network g_r is
    the classifier, so Arora et al.'s theorem needs no margin: with r = 2^bits and
    probability >= 1 - delta, L_0(g_r) <= R^_0(g_r) + sqrt((q_nats + ln(1/delta)) / (2m))
    (:func:`prunebounds.bounds.counting_bound`), with description lengths

    * ``sketch``: sum_l k_out^l k_in^l sketch entries (:func:`prunebounds.sketching.sketch_sizes`,
      constant 1, capped at the layer) times ln r: the paper's Theorem 5.2 without its
      pruning half;
    * ``sparse_count``: the paper's Lemma D.1, ln C(d1 d2, alpha) + alpha ln r per layer;
    * ``dense_count``: every weight times ln r;

    each plus (number of biases) ln r. Returns the three bounds, the training and test
    errors of g_r (:func:`prunebounds.margins.error_rate`) and the sketch sizes.
    """
    bits = check_int("bits", bits, minimum=2)
    g = discretize_model(net, bits, biases=True)
    W = _weights_of(g)
    shapes = [tuple(w.shape) for w in W]
    n_bias = sum(layer.bias.numel() for layer in linear_layers(g) if layer.bias is not None)
    r = 2 ** bits
    log_r = math.log(r)
    m = len(data.train.y)
    loss = error_rate(logits(g, data.train.X), data.train.y)
    test_err = error_rate(logits(g, data.test.X), data.test.y)
    nnz = [int(torch.count_nonzero(w)) for w in W]
    sizes = sketch_sizes(W)
    q_sketch = sum(s.n_params for s in sizes)
    sparse_nats = sparse_count_bound(loss, nnz, shapes, r, m).details["q_nats"]
    out = {
        "sketch": counting_bound("sketch", loss, (q_sketch + n_bias) * log_r, m, delta,
                                 {"q": q_sketch, "n_capped": sum(s.capped for s in sizes)}),
        "sparse_count": counting_bound("sparse_count", loss, sparse_nats + n_bias * log_r,
                                       m, delta),
        "dense_count": counting_bound("dense_count", loss,
                                      (sum(w.numel() for w in W) + n_bias) * log_r, m, delta),
    }
    return SparseNetworkBounds(bounds=out, train_err=loss, test_err=test_err,
                               nnz=tuple(nnz), r=r, sketch=tuple(sizes))


@dataclass(frozen=True)
class StepAnalysis:
    """The paper's argument on one IMP pruning step (see :func:`step_analysis`)."""

    gamma: float
    min_margin: float
    needed_margin: float
    perturbation_bound: float
    product_of_gammas: float
    condition_holds: bool
    true_max_logit_change: float
    true_max_l2_change: float
    paper_bound: Bound


def step_analysis(net: nn.Module, pruned: nn.Module, data: DataBundle, margin_q: float,
                  bits: int, delta: float) -> StepAnalysis:
    """The paper's argument applied to one pruning step of IMP (before retraining).

    f = ``net`` (a round's trained network), g = ``pruned`` (f with the next round's
    mask). Returns the margin gamma (the ``margin_q``-th percentile of f's training
    margins) and the minimum margin, the authors' needed margin eps (perturbation bound
    times prod Gamma_l, :func:`prunebounds.perturbation.needed_margin`) and the plain
    perturbation bound, the true change of the outputs on the training set, and the
    paper's bound (Theorem 5.2, reconstructed, :func:`prunebounds.bounds.paper_bound`)
    for g with r = 2^bits.
    """
    X, y = data.train.X, data.train.y
    out_f = logits(net, X)
    m_tr = margins(out_f, y)
    W, Wp = _weights_of(net), _weights_of(pruned)
    B = data.max_input_norm()
    nm = needed_margin(W, Wp, B, len(y), with_gamma=True, gamma_method="closed")
    true = output_change(None, pruned, X, y, reference_logits=out_f)
    paper = paper_bound(m_tr, nm.value, Wp, r=2 ** check_int("bits", bits, minimum=2),
                        delta=delta)
    return StepAnalysis(
        gamma=margin_percentile(m_tr, margin_q), min_margin=float(m_tr.min()),
        needed_margin=nm.value,
        perturbation_bound=(nm.value / nm.product_of_gammas if nm.product_of_gammas
                            else nm.value),
        product_of_gammas=nm.product_of_gammas, condition_holds=bool(nm.condition_holds),
        true_max_logit_change=true.max_correct_logit_change,
        true_max_l2_change=true.max_l2_change, paper_bound=paper)


@dataclass(frozen=True)
class RoundAnalysis(AccuracySummary):
    """Every measurement of one round of an IMP run (see :func:`analyse_round`)."""

    round: int = 0
    fraction_left: float = 1.0
    layer_fractions: tuple[float, ...] = ()
    nnz: tuple[int, ...] = ()
    sizes: tuple[int, ...] = ()
    seconds: float = 0.0
    survivors: tuple[SurvivorStats, ...] = ()
    survivors_next: tuple[SurvivorStats, ...] = ()
    sparsity: tuple[LayerSparsity, ...] = ()
    disconnected: tuple[int, ...] = ()
    input_nnz: tuple[int, ...] = ()
    rule: tuple[RuleOnSurvivors, ...] = ()
    step: StepAnalysis | None = None
    sparse: SparseNetworkBounds | None = None


@dataclass(frozen=True)
class ControlSummary(AccuracySummary):
    """A random re-initialization control of round ``round``."""

    round: int = 0
    fraction_left: float = 1.0


def analyse_round(result: IMPResult, k: int, data: DataBundle, margin_q: float = 5.0,
                  bits: int = 8, delta: float = 0.05,
                  device: str | torch.device | None = None) -> RoundAnalysis:
    """Every measurement of round ``k`` of an IMP run.

    ``fraction_left``, ``layer_fractions`` and ``nnz``; accuracies (final epoch and at
    the epoch of best validation accuracy) with the per-epoch history; ``survivors``:
    :func:`survivor_stats` per layer; ``sparsity``: per layer the maximum, mean and
    number of all-zero rows and columns beside the expected maximum of i.i.d. binomial
    lines at the layer's density (:func:`prunebounds.sparsity.sparsity_summary`), the
    disconnected hidden
    neurons, and the non-zeros of every input (column of the first layer);
    ``survivors_next``: the same after the next pruning step (before retraining); ``rule``:
    :func:`rule_on_survivors` per layer at the per-round density of the next step;
    ``step``: :func:`step_analysis`; ``sparse``: :func:`sparse_network_bounds`. The
    networks and the data are moved to ``device`` (default ``"auto"``) for the forward
    passes and the spectral norms.
    """
    check_real("margin_q", margin_q, minimum=0.0, maximum=100.0)
    check_real("delta", delta, minimum=0.0, maximum=1.0)
    rd = result.rounds[check_int("round", k, minimum=0)]
    dev = resolve_device(device)
    net, pruned = result.model_at(k).to(dev), result.pruned_next(k).to(dev)
    data = data.to(dev)
    W = _weights_of(net)
    rule = []
    for w, cur, nxt in zip(W, rd.masks, rd.next_masks):
        n_cur = int(cur.sum())
        rule.append(rule_on_survivors(w, int(nxt.sum()) / n_cur if n_cur else 1.0))
    return RoundAnalysis(
        round=rd.index,
        fraction_left=rd.fraction_left,
        layer_fractions=tuple(rd.layer_fractions),
        nnz=tuple(int(m.sum()) for m in rd.masks),
        sizes=tuple(int(m.numel()) for m in rd.masks),
        seconds=rd.seconds,
        **_accuracy_summary(rd.history),
        survivors=tuple(survivor_stats(w) for w in W),
        survivors_next=tuple(survivor_stats(w) for w in _weights_of(pruned)),
        sparsity=tuple(sparsity_summary(W)),
        disconnected=tuple(disconnected_neurons(W)) if len(W) > 1 else (),
        input_nnz=tuple(int(c) for c in nonzeros_per_col(W[0])),
        rule=tuple(rule),
        step=step_analysis(net, pruned, data, margin_q, bits, delta),
        sparse=sparse_network_bounds(net, data, bits, delta),
    )


# --------------------------------------------------------------------------- whole experiments
@dataclass(frozen=True)
class IMPExperiment:
    """One whole IMP experiment: every round analysed, the controls, the wall time."""

    preset: Preset
    rounds: tuple[RoundAnalysis, ...]
    controls: tuple[ControlSummary, ...]
    seconds: float


def run_experiment(cfg_or_model: Any, data: DataBundle, preset: str | Preset, rounds: int,
                   epochs_per_round: int, seed: int, *, control_rounds: Sequence[int] = (),
                   margin_q: float = 5.0, bits: int = 8, delta: float = 0.05,
                   optimiser: str | None = None, progress: bool = True,
                   device: str | torch.device | None = None) -> IMPExperiment:
    """:func:`imp`, the random re-initialization controls and :func:`analyse_round` of every round.

    ``control_rounds`` lists the rounds k whose mask m_k is also trained from a fresh
    initialisation (:func:`random_reinit_control`, init seed :func:`control_seed` (seed, k)).
    Returns an :class:`IMPExperiment`: ``preset``, ``rounds`` (one :func:`analyse_round`
    per round), ``controls`` (round, fraction left, accuracies) and ``seconds``.
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    data = data.to(dev)
    res = imp(cfg_or_model, data, preset, rounds, epochs_per_round, seed, progress=progress,
              optimiser=optimiser, device=dev)
    ks = sorted({check_int("control round", k, minimum=0) for k in control_rounds})
    if ks and ks[-1] > rounds:
        raise ParameterError(f"control rounds must lie in 0..{rounds}, got {ks[-1]}")
    opt_name = next(n for n, o in OPTIMISERS.items() if o == res.optimiser)
    controls = []
    for k in tqdm(ks, desc="random re-init controls", disable=not progress, file=sys.stderr,
                  leave=False):
        c = random_reinit_control(res.template, data, res.rounds[k].masks, epochs_per_round,
                                  seed, init_seed=control_seed(seed, k), optimiser=opt_name,
                                  device=dev)
        controls.append(ControlSummary(round=k, fraction_left=c.fraction_left,
                                       **_accuracy_summary(c.history)))
    analysed = tuple(analyse_round(res, k, data, margin_q, bits, delta, device=dev)
                     for k in range(rounds + 1))
    return IMPExperiment(res.preset, analysed, tuple(controls), time.perf_counter() - start)


def imp_cached(arch: Any, dataset: str, preset: str, rounds: int, epochs_per_round: int,
               seed: int, *, max_train: int | None = None, optimiser: str = "paper-mnist",
               control_rounds: Sequence[int] = (), margin_q: float = 5.0, bits: int = 8,
               delta: float = 0.05, progress: bool = True, use_cache: bool = True,
               device: str | torch.device | None = None) -> IMPExperiment:
    """:func:`run_experiment` for a width list on a data set, cached by its full configuration.

    The cache entry (:func:`prunebounds.cache.cached_result`, kind ``"lottery-imp"``)
    holds only numbers (no weights); its key covers the widths, data set and sample cap,
    the preset's rates, rounds, epochs, seed, optimiser settings, control rounds, margin
    percentile, bits and delta, and the package version.
    """
    widths = resolve_widths(arch)
    p = _preset(preset)
    rounds = check_int("rounds", rounds, minimum=0)
    epochs_per_round = check_int("epochs_per_round", epochs_per_round, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    ks = sorted({check_int("control round", k, minimum=0) for k in control_rounds})
    config = {"widths": list(widths), "dataset": dataset, "max_train": max_train,
              "train_fraction": 0.8, "preset": p.as_dict(), "rounds": rounds,
              "epochs_per_round": epochs_per_round, "seed": seed,
              "optimiser": optimiser_config(optimiser).as_dict(), "control_rounds": ks,
              "margin_q": check_real("margin_q", margin_q, minimum=0.0, maximum=100.0),
              "bits": check_int("bits", bits, minimum=2),
              "delta": check_real("delta", delta, minimum=0.0, maximum=1.0),
              "device": resolve_device(device).type}

    def compute() -> IMPExperiment:
        data = load(dataset, max_train=max_train)
        return run_experiment(widths, data, p, rounds, epochs_per_round, seed,
                              control_rounds=ks, margin_q=margin_q, bits=bits, delta=delta,
                              optimiser=optimiser, progress=progress, device=device)

    return cached_result("lottery-imp", config, compute, IMPExperiment, use_cache=use_cache)


# --------------------------------------------------------------------------- many networks at once
@dataclass(frozen=True)
class AdamConfig:
    """Adam (Kingma & Ba 2015) with a constant learning rate.

    ``frankle-carbin-adam`` in :data:`IMP_OPTIMISERS` is Frankle & Carbin's training of
    LeNet-300-100 (learning rate 1.2e-3, batches of 60; *theirs*).
    """

    lr: float
    batch_size: int
    weight_decay: float = 0.0

    def __post_init__(self):
        check_real("lr", self.lr, minimum=0.0)
        check_int("batch_size", self.batch_size, minimum=1)
        check_real("weight_decay", self.weight_decay, minimum=0.0)

    def as_dict(self) -> dict:
        return {"algorithm": "adam", **asdict(self)}


#: The optimisers of :func:`imp_stacked`: the book's SGD presets and Frankle & Carbin's Adam.
IMP_OPTIMISERS: dict[str, OptimiserConfig | AdamConfig] = {
    **OPTIMISERS, "frankle-carbin-adam": AdamConfig(lr=1.2e-3, batch_size=60)}


def imp_optimiser(name: str) -> OptimiserConfig | AdamConfig:
    """The named optimiser of :data:`IMP_OPTIMISERS`."""
    return IMP_OPTIMISERS[check_choice("optimiser", name, IMP_OPTIMISERS)]


class MaskedStack(nn.Module):
    """S masked ReLU MLPs of the same widths, evaluated together by batched products.

    Network s has weights ``weights[l][s]`` (out x in), biases ``biases[l][s]`` and masks
    ``masks[l][s]``; it computes A^L phi(... phi((M^1 * W^1) x + b^1)), the network of
    :class:`prunebounds.models.MLP` under ``torch.nn.utils.prune``'s parametrization
    weight = weight_orig * weight_mask. The parameters are (S, out, in) tensors, so an
    optimiser that acts entry by entry (SGD with weight decay, Adam) is S independent
    optimisers, and the loss of :func:`train_stack`, the sum of the S mean losses, gives
    each network the gradient of its own loss: the S networks train independently, on
    the same batches, in one pass.

    Args:
        states: S state dicts of :class:`prunebounds.models.MLP` networks of ``widths``.
        masks: S lists of one bool mask (out x in) per linear layer.
        widths: the common widths.
    """

    def __init__(self, states: Sequence[dict[str, torch.Tensor]],
                 masks: Sequence[Sequence[torch.Tensor]], widths: Sequence[int]):
        super().__init__()
        self.widths = resolve_widths(widths)
        if not states or len(states) != len(masks):
            raise ParameterError(f"need as many masks as states (at least one), got "
                                 f"{len(masks)} and {len(states)}")
        names = [n for n, m in build(self.widths, 0).named_modules() if isinstance(m, nn.Linear)]
        self.names = names
        w, b, mk = [], [], []
        for l, name in enumerate(names):
            w.append(nn.Parameter(torch.stack([s[f"{name}.weight"].detach().float()
                                               for s in states]).clone()))
            b.append(nn.Parameter(torch.stack([s[f"{name}.bias"].detach().float()
                                               for s in states]).clone()))
            shapes = {tuple(m[l].shape) for m in masks}
            if shapes != {tuple(w[-1].shape[1:])}:
                raise ParameterError(f"masks of layer {l + 1} have shapes {sorted(shapes)}, "
                                     f"the layer's weight {tuple(w[-1].shape[1:])}")
            mk.append(torch.stack([m[l].bool() for m in masks]))
        self.weights, self.biases = nn.ParameterList(w), nn.ParameterList(b)
        for l, m in enumerate(mk):
            self.register_buffer(f"mask{l}", m)

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask{l}") for l in range(len(self.names))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of the S networks on the same inputs x (n x in): S x n x classes."""
        n, last = len(x), len(self.names) - 1
        h = x
        for l, (W, b, M) in enumerate(zip(self.weights, self.biases, self.masks())):
            Wm = W * M
            if l == 0:  # the inputs are shared: one product for the S networks together
                S, out, _ = Wm.shape
                h = nn.functional.linear(x, Wm.reshape(S * out, -1), b.reshape(-1))
                h = h.view(n, S, out).transpose(0, 1)
            else:
                h = torch.baddbmm(b[:, None, :], h, Wm.transpose(1, 2))
            if l < last:
                h = torch.relu(h)
        return h

    def states(self) -> list[dict[str, torch.Tensor]]:
        """The S trained networks as plain MLP state dicts on the CPU (pruned weights 0)."""
        out = []
        for s in range(len(self.weights[0])):
            st = {}
            for name, W, b, M in zip(self.names, self.weights, self.biases, self.masks()):
                st[f"{name}.weight"] = (W[s] * M[s]).detach().cpu().clone()
                st[f"{name}.bias"] = b[s].detach().cpu().clone()
            out.append(st)
        return out


def _stack_optimiser(stack: MaskedStack, opt: OptimiserConfig | AdamConfig):
    if isinstance(opt, AdamConfig):
        return torch.optim.Adam(stack.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.SGD(stack.parameters(), lr=opt.lr, momentum=opt.momentum,
                           weight_decay=opt.weight_decay)


@torch.no_grad()
def _stack_correct(stack: MaskedStack, X: torch.Tensor, y: torch.Tensor,
                   batch_size: int = 8192) -> torch.Tensor:
    """Per network, the number of samples with a positive margin (on the device)."""
    total = torch.zeros(len(stack.weights[0]), dtype=torch.int64, device=X.device)
    for i in range(0, len(y), batch_size):
        out = stack(X[i:i + batch_size])
        total += torch.stack([n_correct(o, y[i:i + batch_size]) for o in out])
    return total


def train_stack(stack: MaskedStack, data: DataBundle, opt: OptimiserConfig | AdamConfig,
                epochs: int, seed: int, *, train_accuracy: bool = True) -> list[MaskedHistory]:
    """Train the S networks of ``stack`` together, in place; one history per network.

    The batch order comes from a CPU generator seeded with ``seed`` (the order of
    :func:`_train_masked`, so every network and every round sees the same batches) and is
    moved to the stack's device once per epoch. The loss is the sum over networks of
    their mean cross-entropy on the batch. Running losses and the per-epoch validation
    and test counts stay on the device and are read once, at the end: no step waits for
    the device. Accuracies count a sample as correct when its margin is positive
    (:func:`prunebounds.margins.n_correct`; ties are errors). ``train_accuracy=False``
    skips the pass over the training set that measures the final training accuracy
    (``train_acc`` is then NaN).
    """
    epochs = check_int("epochs", epochs, minimum=1)
    if getattr(opt, "augment", False):
        raise ParameterError("train_stack does not augment: use an MNIST optimiser preset")
    dev = stack.weights[0].device
    X, y = data.train.X.to(dev), data.train.y.to(dev)
    Xv, yv = data.val.X.to(dev), data.val.y.to(dev)
    Xt, yt = data.test.X.to(dev), data.test.y.to(dev)
    S = len(stack.weights[0])
    optimiser = _stack_optimiser(stack, opt)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    losses, val, test = [], [], []
    for _ in range(epochs):
        stack.train()
        order = torch.cat(batches(len(y), opt.batch_size, gen)).to(dev).split(opt.batch_size)
        total = torch.zeros(S, dtype=torch.float64, device=dev)
        for idx in order:
            out = stack(X[idx])
            per_net = torch.stack([nn.functional.cross_entropy(o, y[idx]) for o in out])
            optimiser.zero_grad(set_to_none=True)
            per_net.sum().backward()
            optimiser.step()
            total += per_net.detach().to(torch.float64) * len(idx)
        losses.append(total / len(y))
        stack.eval()
        val.append(_stack_correct(stack, Xv, yv))
        test.append(_stack_correct(stack, Xt, yt))
    train_correct = _stack_correct(stack, X, y) if train_accuracy else None
    L, V, T = (torch.stack(v).cpu() for v in (losses, val, test))  # the one read-back
    tr = train_correct.cpu() if train_accuracy else torch.full((S,), float("nan"))
    return [MaskedHistory(train_loss=tuple(float(v) for v in L[:, s]),
                          val_acc=tuple(float(v) / max(len(yv), 1) for v in V[:, s]),
                          test_acc=tuple(float(v) / max(len(yt), 1) for v in T[:, s]),
                          train_acc=float(tr[s]) / len(y)) for s in range(S)]


def next_masks(widths: Sequence[int], state: dict[str, torch.Tensor],
               masks: Sequence[torch.Tensor], preset: str | Preset) -> list[torch.Tensor]:
    """The mask of the next round: :func:`prune_step` on a trained network.

    The network of ``widths`` with the trained ``state`` and its current ``masks`` (as
    ``torch.nn.utils.prune`` masks) is pruned once by ``preset``; returns the new masks
    (bool, CPU). This is the same pruning as in :func:`imp`.
    """
    model = build(widths, 0)
    model.load_state_dict({k: v.cpu() for k, v in state.items()})
    layers = _apply_masks(model, [m.cpu() for m in masks])
    prune_step(model, preset)
    return _masks(layers)


@dataclass
class StackedIMP:
    """The result of :func:`imp_stacked`: per preset the tickets' :class:`IMPResult` and
    the controls (round -> :class:`ControlRun`)."""

    results: dict[str, IMPResult]
    controls: dict[str, dict[int, ControlRun]]
    seconds: float


def imp_stacked(widths: Sequence[int], data: DataBundle, presets: Sequence[str],
                rounds: int, epochs_per_round: int, seed: int, *,
                optimiser: str = "paper-mnist", initial: dict[str, torch.Tensor] | None = None,
                control_rounds: Sequence[int] = (), device: str | torch.device | None = None,
                train_accuracy: bool = True, progress: bool = True) -> StackedIMP:
    """Iterative magnitude pruning for several schedules, tickets and controls trained together.

    The same procedure as :func:`imp` and :func:`random_reinit_control`, organised by
    round: in round k the ticket of every preset (theta_0 under its mask m_k) and, when
    k is in ``control_rounds``, its random re-initialization control (a fresh
    initialisation, seed :func:`control_seed` (seed, k), under the same m_k) are trained
    side by side by :func:`train_stack` on ``device``, with the batch order of ``seed``;
    then :func:`next_masks` prunes each ticket once more.

    Args:
        widths: the MLP's widths.
        presets: names in :data:`PRESETS`.
        rounds: R; rounds 0 (dense), 1, ..., R are trained.
        epochs_per_round: training epochs of every round.
        seed: initialisation (unless ``initial`` is given) and batch order.
        optimiser: a name of :data:`IMP_OPTIMISERS`.
        initial: the weights to rewind to (a state dict of the MLP): theta_0 by default
            (the network of ``widths`` initialised with ``seed``); the weights after some
            training for *late rewinding* (Frankle et al. 2020).
        control_rounds: rounds whose masks also get a control.
        device: where to train (:func:`prunebounds.devices.resolve_device`; default
            ``"auto"``); results are kept on the CPU.
        train_accuracy: measure each network's final training accuracy (one more pass
            over the training set per round; NaN when False).

    Returns:
        :class:`StackedIMP`; ``results[p]`` is an :class:`IMPResult` as :func:`imp`
        returns it (so :func:`analyse_round` applies), ``controls[p][k]`` a
        :class:`ControlRun`.
    """
    widths = resolve_widths(widths)
    ps = [_preset(p) for p in presets]
    if not ps or len({p.name for p in ps}) != len(ps):
        raise ParameterError("presets must name at least one schedule, each once")
    rounds = check_int("rounds", rounds, minimum=0)
    epochs = check_int("epochs_per_round", epochs_per_round, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    opt = imp_optimiser(optimiser)
    ks = sorted({check_int("control round", k, minimum=0) for k in control_rounds})
    if ks and ks[-1] > rounds:
        raise ParameterError(f"control rounds must lie in 0..{rounds}, got {ks[-1]}")
    dev = resolve_device(device)
    template = build(widths, seed)
    if initial is not None:
        template.load_state_dict(initial)
    theta0 = {k: v.detach().clone() for k, v in template.state_dict().items()}
    full = [torch.ones_like(layer.weight, dtype=torch.bool) for layer in linear_layers(template)]
    masks = {p.name: full for p in ps}
    results = {p.name: IMPResult(p, copy.deepcopy(template), theta0, opt, epochs, seed)
               for p in ps}
    controls: dict[str, dict[int, ControlRun]] = {p.name: {} for p in ps}
    start = time.perf_counter()
    bar = tqdm(range(rounds + 1), desc=f"IMP {'-'.join(map(str, widths))}", unit="round",
               disable=not progress, file=sys.stderr, leave=False)
    for k in bar:
        jobs = [(p.name, False) for p in ps] + [(p.name, True) for p in ps if k in ks]
        states = [build(widths, control_seed(seed, k)).state_dict() if ctrl else theta0
                  for _, ctrl in jobs]
        stack = MaskedStack(states, [masks[name] for name, _ in jobs], widths).to(dev)
        t0 = time.perf_counter()
        hists = train_stack(stack, data, opt, epochs, seed, train_accuracy=train_accuracy)
        seconds = (time.perf_counter() - t0) / len(jobs)
        current = dict(masks)  # the masks of round k (tickets get their next ones below)
        for (name, ctrl), st, hist in zip(jobs, stack.states(), hists):
            m = current[name]
            left = sum(int(x.sum()) for x in m) / sum(x.numel() for x in m)
            if ctrl:
                controls[name][k] = ControlRun(hist, float(left), st)
                continue
            nxt = next_masks(widths, st, m, results[name].preset)
            results[name].rounds.append(IMPRound(k, [x.clone() for x in m], st, nxt, hist,
                                                 seconds))
            masks[name] = nxt
        bar.set_postfix(left=f"{results[ps[0].name].rounds[-1].fraction_left:.3f}",
                        test_acc=f"{hists[0].test_acc[-1]:.4f}")
    return StackedIMP(results, controls, time.perf_counter() - start)
