"""Chapter "Iterative magnitude pruning and lottery tickets": what it measures and claims.

Iterative magnitude pruning (IMP) with rewinding (Frankle & Carbin 2019) on
LeNet-300-100 and on the paper's MLP, with Frankle & Carbin's random re-initialization
control, every round analysed by :func:`prunebounds.lottery.analyse_round` (accuracy,
the law of the survivors, row and column counts, the paper's rule on the survivors,
the margin half of the argument for each pruning step, and the counting bounds for the
sparse network). Tickets and controls of a round train side by side
(:func:`prunebounds.lottery.imp_stacked`), on the profile's device.

What each profile runs is in :data:`PLANS` (one :class:`NetworkPlan` per network);
:func:`settings` applies the overrides of the chapter's parameters cell. The trained
weights of every round are cached (:func:`imp_weights`; :func:`tickets` returns them as
an :class:`prunebounds.lottery.IMPResult`), and so is the chapter's result
(:func:`compute`), a :class:`LotteryResult` whose :class:`Summary` holds every number
the text quotes. :func:`claims` judges the chapter's claims by explicit criteria.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import lottery, sparsity
from ..cache import cached_result, cached_tensors, from_jsonable, to_jsonable
from ..claims import Claim, Value, criteria
from ..data import DataBundle, load
from ..devices import resolve_device
from ..errors import ParameterError
from ..models import build, resolve_widths
from ..profiles import Profile
from ..pruning import d_for_keep
from ..runs import RunConfig, train_cached
from ..validate import check_int, check_real

__all__ = ["LABEL", "REQUIRES", "NetworkPlan", "LotterySettings", "PLANS", "settings",
           "Run", "Summary", "LotteryResult", "imp_weights", "tickets", "compute", "planned_left",
           "plan_rows", "count_rows", "claims"]

LABEL = "chap-lottery-tickets"
REQUIRES = ("setting",)  # late rewinding starts from the main network's snapshots

#: Frankle & Carbin's training of LeNet-300-100: iterations per round (theirs).
FC_ITERATIONS = 50_000


@dataclass(frozen=True)
class NetworkPlan:
    """How one network is pruned iteratively.

    Attributes:
        key: ``"lenet"`` or ``"paper"``.
        label: the network's name in the text.
        hidden: hidden widths (``None``: the profile's architecture, the paper's MLP).
        presets: pruning schedules of :data:`prunebounds.lottery.PRESETS`.
        rounds: R; rounds 0 (dense) to R are trained.
        epochs: training epochs per round.
        optimiser: a name of :data:`prunebounds.lottery.IMP_OPTIMISERS` (``None``: the
            profile's optimiser, the paper's plain SGD).
        rewind_epoch: 0 rewinds to the initial weights (Frankle & Carbin); j > 0 rewinds
            to the main network of the setting chapter after j epochs (*late rewinding*,
            Frankle et al. 2020), which must be one of the profile's snapshots.
        control_rounds: rounds whose mask is also trained from a fresh initialisation.
    """

    key: str
    label: str
    hidden: tuple[int, ...] | None
    presets: tuple[str, ...]
    rounds: int
    epochs: int
    optimiser: str | None
    rewind_epoch: int
    control_rounds: tuple[int, ...]


@dataclass(frozen=True)
class LotterySettings:
    """Everything the chapter runs: the two networks and the bounds' settings."""

    lenet: NetworkPlan
    paper: NetworkPlan
    margin_q: float
    bits: int
    delta: float

    @property
    def plans(self) -> tuple[NetworkPlan, NetworkPlan]:
        return (self.lenet, self.paper)


BOTH = ("frankle-carbin", "global-20")
FC = ("frankle-carbin",)


def _every(rounds: int, step: int = 1) -> tuple[int, ...]:
    return tuple(sorted(set(range(step, rounds + 1, step)) | {rounds}))


#: Per profile, the plans of LeNet-300-100 and of the paper's MLP.
PLANS: dict[str, tuple[NetworkPlan, NetworkPlan]] = {
    "smoke": (NetworkPlan("lenet", "LeNet-30-10", (30, 10), BOTH, 2, 1, "frankle-carbin-adam",
                          0, (1, 2)),
              NetworkPlan("paper", "paper's MLP", None, FC, 2, 1, None, 1, (2,))),
    # quick: LeNet down to 2.9% of its weights (16 rounds of one epoch of Frankle &
    # Carbin's Adam); the paper's MLP for 3 rounds of one epoch of plain SGD, each
    # rewound to the main network after 30 of its 45 epochs (late rewinding).
    "quick": (NetworkPlan("lenet", "LeNet-300-100", (300, 100), FC, 16, 1,
                          "frankle-carbin-adam", 0, (4, 8, 12, 16)),
              NetworkPlan("paper", "paper's MLP", None, FC, 3, 1, None, 30, ())),
    # full: Frankle & Carbin's protocol on both networks, rewound to the initial
    # weights, down to 1.5-1.8% of the weights, a control in every round.
    "full": (NetworkPlan("lenet", "LeNet-300-100", (300, 100), BOTH, 19, 10,
                         "frankle-carbin-adam", 0, _every(19)),
             NetworkPlan("paper", "paper's MLP", None, BOTH, 19, 30, None, 0, _every(19))),
}


def _plan(base: NetworkPlan, rounds: int | None, epochs: int | None,
          rewind_epoch: int | None) -> NetworkPlan:
    changes: dict[str, Any] = {}
    if rounds is not None:
        changes["rounds"] = check_int(f"{base.key}_rounds", rounds, minimum=1)
        step = 1 if len(base.control_rounds) >= base.rounds else \
            max(1, base.rounds // max(len(base.control_rounds), 1))
        changes["control_rounds"] = (_every(changes["rounds"], step)
                                     if base.control_rounds else ())
    if epochs is not None:
        changes["epochs"] = check_int(f"{base.key}_epochs", epochs, minimum=1)
    if rewind_epoch is not None:
        changes["rewind_epoch"] = check_int(f"{base.key}_rewind_epoch", rewind_epoch, minimum=0)
    return dataclasses.replace(base, **changes)


def settings(P: Profile, *, lenet_rounds: int | None = None, lenet_epochs: int | None = None,
             paper_rounds: int | None = None, paper_epochs: int | None = None,
             rewind_epoch: int | None = None, margin_q: float | None = None,
             bits: int | None = None, delta: float | None = None) -> LotterySettings:
    """The chapter's settings for profile ``P`` with the given overrides (``None``: keep).

    ``rewind_epoch`` applies to the paper's MLP: 0 (its initial weights) or one of the
    main network's snapshot epochs. Raises ParameterError on a bad value, naming the
    valid ones.
    """
    lenet, paper = PLANS[P.name]
    paper = _plan(paper, paper_rounds, paper_epochs, rewind_epoch)
    valid = (0, *(e for e in P.snapshots if e < P.epochs), P.epochs)
    if paper.rewind_epoch not in valid:
        raise ParameterError(f"rewind_epoch {paper.rewind_epoch} is not a stored epoch of the "
                             f"main network; valid values: {', '.join(map(str, valid))}")
    return LotterySettings(
        lenet=_plan(lenet, lenet_rounds, lenet_epochs, None), paper=paper,
        margin_q=check_real("margin_q", P.margin_q if margin_q is None else margin_q,
                            minimum=0.0, maximum=100.0),
        bits=check_int("bits", 8 if bits is None else bits, minimum=2),
        delta=check_real("delta", 0.05 if delta is None else delta, minimum=1e-12,
                         maximum=0.5))


# --------------------------------------------------------------------------- devices
def _device(P: Profile) -> torch.device:
    """The profile's device (:func:`prunebounds.devices.resolve_device`)."""
    return resolve_device(P.device)


# --------------------------------------------------------------------------- weights
def _widths(P: Profile, plan: NetworkPlan, data: DataBundle) -> tuple[int, ...]:
    hidden = plan.hidden if plan.hidden is not None else resolve_widths(P.arch)[1:-1]
    return (data.n_features, *hidden, data.n_classes)


def _rewind_state(P: Profile, plan: NetworkPlan) -> tuple[dict | None, str]:
    """The weights to rewind to and a key for them (theta_0 of the seed, or a snapshot)."""
    if plan.rewind_epoch == 0:
        return None, "theta0"
    run = train_cached(RunConfig.from_profile(P))
    net = run.model_at(plan.rewind_epoch)
    return net.state_dict(), f"{run.config.key}@{plan.rewind_epoch}"


def _optimiser(P: Profile, plan: NetworkPlan) -> str:
    return plan.optimiser or P.optimiser


def _to_tensors(res: lottery.StackedIMP) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    info: dict[str, Any] = {"seconds": res.seconds, "runs": {}}
    for name, r in res.results.items():
        tensors.update({f"initial/{k}": v for k, v in r.initial.items()})
        rounds = []
        for rd in r.rounds:
            for l, (m, n) in enumerate(zip(rd.masks, rd.next_masks)):
                tensors[f"{name}/r{rd.index}/mask{l}"] = m
                tensors[f"{name}/r{rd.index}/next{l}"] = n
            tensors.update({f"{name}/r{rd.index}/state/{k}": v for k, v in rd.state.items()})
            rounds.append({"index": rd.index, "seconds": rd.seconds,
                           "history": to_jsonable(rd.history)})
        controls = []
        for k, c in res.controls[name].items():
            tensors.update({f"{name}/c{k}/state/{key}": v for key, v in c.state.items()})
            controls.append({"round": k, "fraction_left": c.fraction_left,
                             "history": to_jsonable(c.history)})
        info["runs"][name] = {"rounds": rounds, "controls": controls}
    return tensors, info


def _from_tensors(tensors: dict[str, torch.Tensor], info: dict, widths: tuple[int, ...],
                  optimiser: str, epochs: int, seed: int) -> lottery.StackedIMP:
    initial = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("initial/")}
    template = build(widths, seed)
    template.load_state_dict(initial)
    n_layers = len(widths) - 1
    results, controls = {}, {}
    for name, run in info["runs"].items():
        r = lottery.IMPResult(lottery.PRESETS[name], template, initial,
                              lottery.imp_optimiser(optimiser), epochs, seed)
        for rd in run["rounds"]:
            k = rd["index"]
            state = {key.split("/state/", 1)[1]: v for key, v in tensors.items()
                     if key.startswith(f"{name}/r{k}/state/")}
            r.rounds.append(lottery.IMPRound(
                k, [tensors[f"{name}/r{k}/mask{l}"] for l in range(n_layers)], state,
                [tensors[f"{name}/r{k}/next{l}"] for l in range(n_layers)],
                from_jsonable(lottery.MaskedHistory, rd["history"]), rd["seconds"]))
        results[name] = r
        controls[name] = {
            c["round"]: lottery.ControlRun(
                from_jsonable(lottery.MaskedHistory, c["history"]), c["fraction_left"],
                {key.split("/state/", 1)[1]: v for key, v in tensors.items()
                 if key.startswith(f"{name}/c{c['round']}/state/")})
            for c in run["controls"]}
    return lottery.StackedIMP(results, controls, info["seconds"])


#: The modules the trained weights depend on (their source enters the cache key).
WEIGHT_MODULES = ("lottery.py", "data.py", "models.py", "train.py", "margins.py", "runs.py")


def imp_weights(P: Profile, network: str = "lenet", S: LotterySettings | None = None, *,
                progress: bool = True) -> lottery.StackedIMP:
    """Every round of IMP on ``network`` ("lenet" or "paper") in profile ``P``, cached.

    Trains (or reads from the cache) the tickets of every schedule of the network's
    plan and their controls: :func:`prunebounds.lottery.imp_stacked` on the profile's
    device. Masks and trained weights of every round are stored with
    :func:`prunebounds.cache.cached_tensors`. The chapter shows no training accuracy,
    so the histories hold none (NaN): it would cost one more pass over the training set
    per round.
    """
    S = settings(P) if S is None else S
    plan = {p.key: p for p in S.plans}[network] if network in ("lenet", "paper") else None
    if plan is None:
        raise ParameterError(f"unknown network {network!r}; valid values: lenet, paper")
    data = load(P.dataset, max_train=P.max_train)
    widths = _widths(P, plan, data)
    opt = _optimiser(P, plan)
    dev = _device(P)
    initial, initial_key = _rewind_state(P, plan)
    config = {"widths": list(widths), "dataset": P.dataset, "max_train": P.max_train,
              "presets": list(plan.presets), "rounds": plan.rounds, "epochs": plan.epochs,
              "seed": P.seed, "optimiser": lottery.imp_optimiser(opt).as_dict(),
              "initial": initial_key, "control_rounds": list(plan.control_rounds),
              "device": dev.type}

    def run() -> tuple[dict[str, torch.Tensor], dict]:
        res = lottery.imp_stacked(widths, data, plan.presets, plan.rounds, plan.epochs, P.seed,
                                  optimiser=opt, initial=initial,
                                  control_rounds=plan.control_rounds, device=dev,
                                  train_accuracy=False, progress=progress)
        return _to_tensors(res)

    tensors, info = cached_tensors("lottery-weights", config, run, modules=WEIGHT_MODULES)
    return _from_tensors(tensors, info, widths, opt, plan.epochs, P.seed)


def tickets(P: Profile, network: str = "lenet", preset: str = "frankle-carbin"
            ) -> lottery.IMPResult:
    """The cached IMP run of ``network`` with schedule ``preset`` in profile ``P``.

    An :class:`prunebounds.lottery.IMPResult`: ``rounds[k]`` holds the mask m_k the
    round trained with, the trained weights (``state``, pruned weights zero), the next
    mask, and the history (per-epoch validation and test accuracy, final training
    accuracy); ``model_at(k)`` rebuilds round k's network. For the chapter on
    certificates, which codes these networks.
    """
    res = imp_weights(P, network).results
    if preset not in res:
        raise ParameterError(f"the {P.name} profile runs {network} with the schedule(s) "
                             f"{', '.join(res)}, not {preset!r}")
    return res[preset]


# --------------------------------------------------------------------------- the result
@dataclass(frozen=True)
class Run:
    """One network pruned with one schedule, every round analysed."""

    network: str
    label: str
    preset: str
    widths: tuple[int, ...]
    rewind_epoch: int
    epochs: int
    optimiser: str
    experiment: lottery.IMPExperiment

    @property
    def rounds(self) -> tuple[lottery.RoundAnalysis, ...]:
        return self.experiment.rounds

    @property
    def controls(self) -> tuple[lottery.ControlSummary, ...]:
        return self.experiment.controls


@dataclass(frozen=True)
class Summary:
    """Every number the chapter's text quotes (NaN where a run does not exist)."""

    lenet_dense_acc: float
    lenet_ticket_acc: float
    lenet_control_acc: float
    lenet_left: float
    lenet_rounds: int
    lenet_iterations: int
    paper_dense_acc: float
    paper_last_acc: float
    paper_control_acc: float
    paper_left: float
    paper_rounds: int
    paper_rewind_epoch: int
    lowest_left: float
    ticket_minus_control_min: float
    border_mean: float
    centre_mean: float
    dead_inputs: int
    n_inputs: int
    kurt0: float
    kurt_last: float
    centre0: float
    centre_last: float
    centre_next: float
    ks_last: float
    row_ratio: float
    col_ratio: float
    row_max: int
    col_max: int
    no_input: int
    no_output: int
    dead_expected: float
    disconnected_max: int
    rule_keep_lo: float
    rule_keep_hi: float
    d_match_lo: float
    d_match_hi: float
    d_gauss: float
    rule_density: float
    imp_density: float
    steps: int
    steps_positive: int
    ratio_lo: float
    ratio_hi: float
    true_within: int
    vacuous_steps: int
    best_count: float
    best_count_err: float
    best_left: float
    best_label: str
    best_preset: str
    sketch_better: int
    n_networks: int
    sd_layer1: float
    sd_layer2: float


@dataclass(frozen=True)
class LotteryResult:
    """What the chapter measures (see :func:`compute`); ``seconds``: the training time of
    every network's IMP run (tickets and controls together)."""

    profile: str
    settings: LotterySettings
    m: int
    r: int
    runs: tuple[Run, ...]
    summary: Summary
    seconds: float

    def run(self, network: str, preset: str = "frankle-carbin") -> Run:
        """The run of ``network`` ("lenet", "paper") with schedule ``preset``."""
        for x in self.runs:
            if x.network == network and x.preset == preset:
                return x
        raise ParameterError(f"no run of {network!r} with schedule {preset!r}; runs: "
                             + ", ".join(f"{x.network}/{x.preset}" for x in self.runs))


def _nan_if_empty(values: list[float], fn) -> float:
    return float(fn(values)) if values else float("nan")


def _summary(runs: tuple[Run, ...], data: DataBundle) -> Summary:
    """The numbers of the text, from the analysed runs."""
    lenet = next(x for x in runs if x.network == "lenet" and x.preset == "frankle-carbin")
    paper = next(x for x in runs if x.network == "paper" and x.preset == "frankle-carbin")
    R, last = lenet.rounds, lenet.rounds[-1]
    ctrl = [c for c in lenet.controls if c.round == last.round]
    pctrl = [c for c in paper.controls if c.round == paper.rounds[-1].round]
    gaps = [x.rounds[-1].test_acc - c.test_acc for x in runs for c in x.controls
            if c.round == x.rounds[-1].round]
    img = np.array(last.input_nnz, dtype=float).reshape(data.input_shape).sum(axis=0)
    border = np.ones(img.shape, dtype=bool)
    border[4:-4, 4:-4] = False
    S = last.sparsity
    dens = [z / n for z, n in zip(last.nnz, last.sizes)]
    dead_expected = sum(
        sparsity.expected_dead_lines(S[l].shape[0], S[l].shape[1], dens[l])
        + sparsity.expected_dead_lines(S[l + 1].shape[1], S[l + 1].shape[0], dens[l + 1])
        for l in range(len(S) - 1))
    rule_keeps = [x.rule[0].rule_keep for x in R[1:]]
    d_match = [x.rule[0].d_match for x in R[1:]]
    steps = [x.rounds[k].step for x in runs for k in range(len(x.rounds))]
    positive = [s for s in steps if s.gamma > 0]
    ratios = [s.needed_margin / s.gamma for s in positive]
    counts = [(x.sparse.bounds["sparse_count"].value, x.sparse.test_err, x.fraction_left,
               run.label, run.preset) for run in runs for x in run.rounds]
    best = min(counts)
    s0, sR, sN = R[0].survivors[0], last.survivors[0], last.survivors_next[0]
    return Summary(
        lenet_dense_acc=R[0].test_acc, lenet_ticket_acc=last.test_acc,
        lenet_control_acc=ctrl[0].test_acc if ctrl else float("nan"),
        lenet_left=last.fraction_left, lenet_rounds=last.round,
        lenet_iterations=lenet.epochs * math.ceil(
            len(data.train) / lottery.imp_optimiser(lenet.optimiser).batch_size),
        paper_dense_acc=paper.rounds[0].test_acc, paper_last_acc=paper.rounds[-1].test_acc,
        paper_control_acc=pctrl[0].test_acc if pctrl else float("nan"),
        paper_left=paper.rounds[-1].fraction_left, paper_rounds=paper.rounds[-1].round,
        paper_rewind_epoch=paper.rewind_epoch,
        lowest_left=min(x.rounds[-1].fraction_left for x in runs),
        ticket_minus_control_min=_nan_if_empty(gaps, min),
        border_mean=float(img[border].mean()), centre_mean=float(img[~border].mean()),
        dead_inputs=last.sparsity[0].cols.dead, n_inputs=data.n_features,
        kurt0=s0.excess_kurtosis, kurt_last=sR.excess_kurtosis, centre0=s0.centre_ratio,
        centre_last=sR.centre_ratio, centre_next=sN.centre_ratio, ks_last=sR.ks_D,
        row_ratio=S[0].rows.max / S[0].rows.binomial_max,
        col_ratio=S[0].cols.max / S[0].cols.binomial_max,
        row_max=S[0].rows.max, col_max=S[0].cols.max,
        no_input=sum(S[l].rows.dead for l in range(len(S) - 1)),
        no_output=sum(S[l + 1].cols.dead for l in range(len(S) - 1)),
        dead_expected=float(dead_expected),
        disconnected_max=max(sum(x.rounds[-1].disconnected) for x in runs),
        rule_keep_lo=_nan_if_empty(rule_keeps, min), rule_keep_hi=_nan_if_empty(rule_keeps, max),
        d_match_lo=_nan_if_empty(d_match, min), d_match_hi=_nan_if_empty(d_match, max),
        d_gauss=d_for_keep(0.8),
        rule_density=float(np.prod([x.rule[0].rule_keep for x in R[:-1]])),
        imp_density=last.layer_fractions[0],
        steps=len(steps), steps_positive=len(positive),
        ratio_lo=_nan_if_empty(ratios, min), ratio_hi=_nan_if_empty(ratios, max),
        true_within=sum(s.true_max_logit_change < s.gamma for s in positive),
        vacuous_steps=sum(s.paper_bound.value > 1 for s in steps),
        best_count=best[0], best_count_err=best[1], best_left=best[2], best_label=best[3],
        best_preset=best[4],
        sketch_better=sum(x.sparse.bounds["sketch"].value
                          < x.sparse.bounds["dense_count"].value - 1e-12
                          for run in runs for x in run.rounds),
        n_networks=len(counts),
        sd_layer1=R[0].survivors[0].sd, sd_layer2=R[0].survivors[1].sd)


@dataclass(frozen=True)
class _DataWithB(DataBundle):
    """A data set whose input bound B = max ||x||_2 is computed once (each call of
    :meth:`DataBundle.max_input_norm` converts the training set to float64, about a
    second on MNIST, and every analysed round asks for it)."""

    B: float = float("nan")

    def max_input_norm(self) -> float:
        return self.B


def _with_b(data: DataBundle) -> DataBundle:
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(DataBundle)}
    return _DataWithB(**fields, B=data.max_input_norm())


def _analyse(P: Profile, S: LotterySettings, plan: NetworkPlan, data: DataBundle,
             progress: bool) -> list[Run]:
    stacked = imp_weights(P, plan.key, S, progress=progress)
    widths = _widths(P, plan, data)
    dev = _device(P)
    out = []
    for name, res in stacked.results.items():
        rounds = tuple(lottery.analyse_round(res, k, data, S.margin_q, S.bits, S.delta,
                                             device=dev)
                       for k in tqdm(range(len(res.rounds)), desc=f"analysing {plan.key}/{name}",
                                     disable=not progress, file=sys.stderr, leave=False))
        controls = tuple(
            lottery.ControlSummary(round=k, fraction_left=c.fraction_left,
                                   **lottery._accuracy_summary(c.history))
            for k, c in sorted(stacked.controls[name].items()))
        exp = lottery.IMPExperiment(res.preset, rounds, controls, stacked.seconds)
        out.append(Run(plan.key, plan.label, name, widths, plan.rewind_epoch, plan.epochs,
                       _optimiser(P, plan), exp))
    return out


def compute(P: Profile, S: LotterySettings | None = None, *,
            progress: bool = True) -> LotteryResult:
    """Everything the chapter measures in profile ``P`` (settings ``S``), cached.

    Per network of the settings (:func:`imp_weights`) and schedule: every round analysed
    by :func:`prunebounds.lottery.analyse_round`, the controls' accuracies, and the
    :class:`Summary` of the numbers the text quotes. The cache key holds the profile,
    the settings, the package's source and this module's source.
    """
    S = settings(P) if S is None else S
    config = {"profile": to_jsonable(P), "settings": to_jsonable(S),
              "chapter_source": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]}

    def run() -> LotteryResult:
        data = load(P.dataset, max_train=P.max_train)
        measured = _with_b(data)
        runs = tuple(r for plan in S.plans for r in _analyse(P, S, plan, measured, progress))
        return LotteryResult(profile=P.name, settings=S, m=len(data.train), r=2 ** S.bits,
                             runs=runs, summary=_summary(runs, data),
                             seconds=sum({r.network: r.experiment.seconds for r in runs}.values()))

    return cached_result("chapter-lottery-tickets", config, run, LotteryResult)


# --------------------------------------------------------------------------- tables
def planned_left(widths: tuple[int, ...], preset: str, rounds: int) -> float:
    """The fraction of all weights left after ``rounds`` rounds of ``preset`` (exact counts,
    :func:`prunebounds.lottery.kept_counts`)."""
    sizes = [a * b for a, b in zip(widths[:-1], widths[1:])]
    rates = lottery.layer_rates(preset, len(sizes))
    if lottery.PRESETS[preset].scope == "global":
        kept = lottery.kept_counts(sum(sizes[:-1]), rates[0], rounds)[-1] + sizes[-1]
    else:
        kept = sum(lottery.kept_counts(n, p, rounds)[-1] for n, p in zip(sizes, rates))
    return kept / sum(sizes)


def _describe_optimiser(name: str) -> str:
    o = lottery.imp_optimiser(name)
    if isinstance(o, lottery.AdamConfig):
        return f"Adam {o.lr:g}, batch {o.batch_size}"
    kind = f"SGD, momentum {o.momentum:g}" if o.momentum else "plain SGD"
    return f"{kind} {o.lr:g}, batch {o.batch_size}"


def plan_rows(profiles: dict[str, Profile]) -> list[list[Any]]:
    """Rows of the table of plans: per profile and network what the chapter runs, after
    a row for Frankle & Carbin's LeNet-300-100 (theirs)."""
    rows = [["Frankle & Carbin", "LeNet-300-100", "layer-wise", "to a few %",
             "50,000 iterations", "Adam 0.0012, batch 60", "initial weights", "every round"]]
    for name, P in profiles.items():
        if name == "smoke":
            continue
        for plan in PLANS[name]:
            widths = (784, *(plan.hidden or resolve_widths(P.arch)[1:-1]), 10)
            rewind = ("initial weights" if plan.rewind_epoch == 0 else
                      f"main network, epoch {plan.rewind_epoch} of {P.epochs}")
            controls = ("every round" if len(plan.control_rounds) >= plan.rounds else
                        "none" if not plan.control_rounds else
                        "rounds " + ", ".join(map(str, plan.control_rounds)))
            left = planned_left(widths, plan.presets[0], plan.rounds)
            rows.append([name, plan.label, ", ".join(plan.presets), f"{plan.rounds} ({left:.1%})",
                         f"{plan.epochs} epoch{'s' if plan.epochs > 1 else ''}",
                         _describe_optimiser(plan.optimiser or P.optimiser), rewind, controls])
    return rows


def count_rows(R: LotteryResult) -> list[list[Any]]:
    """Per run and layer (or group of layers of a global schedule): the weights kept after
    the last round against n (1 - p)^k and the exact recurrence of the compounding-rates
    lemma. Raises AssertionError if a count differs from the recurrence."""
    rows = []
    for run in R.runs:
        last = run.rounds[-1]
        k, rates = last.round, lottery.layer_rates(run.preset, len(last.nnz))
        if lottery.PRESETS[run.preset].scope == "global":
            groups = [("hidden", sum(last.sizes[:-1]), sum(last.nnz[:-1]), rates[0]),
                      ("output", last.sizes[-1], last.nnz[-1], rates[-1])]
        else:
            groups = [(f"layer {l}", n, z, p)
                      for l, (n, z, p) in enumerate(zip(last.sizes, last.nnz, rates), 1)]
        for g, n, z, p in groups:
            exact = lottery.kept_counts(n, p, k)[-1]
            assert z == exact, f"{run.label} {run.preset} {g}: {z} kept, recurrence {exact}"
            rows.append([run.label, run.preset, g, k, f"{n:,}", p, f"{n * (1 - p) ** k:,.1f}",
                         f"{exact:,}", f"{z:,}"])
    return rows


# --------------------------------------------------------------------------- claims
def claims(R: LotteryResult) -> list[Claim]:
    """The chapter's claims: the two readings of the iterative-pruning extension, winning
    tickets on LeNet-300-100, and IMP on the paper's MLP."""
    s = R.summary
    lenet, paper = R.settings.lenet, R.settings.paper
    chapter = dict(chapter=LABEL)
    dense_minus = s.lenet_dense_acc - 0.01
    ticket = criteria.all_of(
        criteria.at_least(s.lenet_ticket_acc, dense_minus, what="the ticket's test accuracy",
                          limit_what="the dense network's − 0.01"),
        criteria.at_least(s.lenet_ticket_acc, s.lenet_control_acc,
                          what="the ticket's test accuracy",
                          limit_what="the random re-initialization's"))
    reach = criteria.all_of(
        criteria.at_most(s.lenet_left, 0.05, what="the weights left",
                         limit_what="a few percent"),
        criteria.at_least(s.lenet_iterations, FC_ITERATIONS,
                          what="the training iterations per round",
                          limit_what="Frankle & Carbin's"))
    paper_check = criteria.at_least(s.paper_last_acc, s.paper_dense_acc - 0.01,
                                    what="the last round's test accuracy",
                                    limit_what="the dense round's − 0.01")
    if paper.control_rounds:
        paper_check = criteria.all_of(paper_check, criteria.at_least(
            s.paper_last_acc, s.paper_control_acc, what="the last round's test accuracy",
            limit_what="the random re-initialization's"))
    protocol = criteria.all_of(
        criteria.equal(paper.rewind_epoch, 0, what="the rewinding epoch",
                       target_what="0 (the initial weights)"),
        criteria.at_least(len(paper.control_rounds), 1, what="the rounds with a control",
                          limit_what="one"))
    return [
        Claim(id="iterative-reading-a", origin="reconstructed", **chapter,
              evidence="fig-lottery-density",
              statement="Iterative pruning, reading A: density compounds like $\\keep(d)^k$",
              measured=(Value("imp_density", "IMP leaves of layer 1", s.imp_density, ".3f"),
                        Value("rule_density", "the paper's rule per round would leave",
                              s.rule_density, ".3f"),
                        Value("dmatch_lo", "$d$ matching a 20% step, from", s.d_match_lo, ".3g"),
                        Value("dmatch_hi", "to", s.d_match_hi, ".3g")),
              authors="winning tickets down to a few % of the weights {cite:p}`frankle2019lottery`",
              judgement=criteria.at_most(
                  s.rule_keep_lo, 0.8,
                  what="the smallest share the rule keeps of the retrained survivors",
                  limit_what="0.8, the Gaussian prediction")),
        Claim(id="iterative-reading-b", origin="reconstructed", **chapter,
              evidence="tab-lottery-bounds",
              statement="Iterative pruning, reading B: a bound for the final sparse network alone",
              measured=(Value("best_count", "best counting bound over the rounds", s.best_count,
                              ".3g"),
                        Value("best_test_err", "test error of that network", s.best_count_err,
                              ".4f"),
                        Value("best_left", "weights left", s.best_left, ".1%")),
              judgement=criteria.bound_vs_error(s.best_count, s.best_count_err,
                                                what="the best counting bound",
                                                error_what="that network's test error")),
        Claim(id="winning-tickets", origin="ours", **chapter, evidence="fig-lottery-accuracy",
              statement="Winning tickets exist {cite:p}`frankle2019lottery` (the setting of the "
                        "extension): LeNet-300-100 pruned by IMP",
              measured=(Value("left", "weights left", s.lenet_left, ".1%"),
                        Value("ticket_acc", "ticket test accuracy", s.lenet_ticket_acc, ".4f"),
                        Value("control_acc", "random re-init", s.lenet_control_acc, ".4f"),
                        Value("dense_acc", "dense", s.lenet_dense_acc, ".4f"),
                        Value("iterations", "training iterations per round", s.lenet_iterations,
                              ",d")),
              authors="tickets keep the dense accuracy down to a few % of the weights",
              judgement=criteria.caveat_unless(
                  ticket, reach, "each round trains for fewer iterations than Frankle & "
                                 "Carbin's 50,000")),
        Claim(id="imp-paper-mlp", origin="ours", **chapter, evidence="fig-lottery-accuracy",
              statement="Iterative magnitude pruning of the paper's MLP keeps its accuracy",
              measured=(Value("rounds", "rounds", s.paper_rounds, "d"),
                        Value("left", "weights left", s.paper_left, ".1%"),
                        Value("last_acc", "test accuracy, last round", s.paper_last_acc, ".4f"),
                        Value("dense_acc", "dense round", s.paper_dense_acc, ".4f"),
                        Value("control_acc", "random re-init", s.paper_control_acc, ".4f"),
                        Value("rewind_epoch", "rewound to epoch", s.paper_rewind_epoch, "d")),
              judgement=criteria.caveat_unless(
                  paper_check, protocol, "late rewinding, short rounds and no control: "
                                         "not Frankle & Carbin's protocol")),
    ]
