"""The bound chapter: Theorem 5.2 evaluated three ways, the baselines, and rank correlations.

Theorem 5.2 (reconstructed) needs eps(d) >= max_x ||f(x) - g(x)||_2 on the training set;
then L_0(g) <= R^_{sqrt2 eps}(f) + sqrt((q ln r + ln(1/delta)) / (2m)) (the compression
chapter's lemma ``lem-margin-transfer`` gives the sqrt 2). The chapter evaluates it with
three choices of eps(d), each at its own pruning parameter d*:

* **authors** -- the authors' code: eps_A(d) = e B (prod ||A^l||) (sum ||Delta^l|| /
  ||A^l||) prod Gamma_l with the measured ||Delta^l|| of the realized mask, biases
  ignored, the condition ||Delta^l|| <= ||A^l|| / L of Lemma (P) not checked; d* solves
  eps_A(d*) = gamma; the value reported is R^_{eps_A}(f) + sqrt(q_auth / m).
* **chain** -- Lemma (P) on the bias-augmented network with the measured ||Delta^l||
  (:attr:`prunebounds.perturbation.ProbeResult.textbook`): a valid eps given the mask
  when its condition holds; d* is the largest d with sqrt2 eps(d) <= gamma and the
  condition; the sketch sizes use the realized non-zeros (the paper's bound).
* **provable** -- the random-matrix bound of Lemma 4.1 with Markov's lambda in place of
  the measured norms (:class:`prunebounds.perturbation.ProvableChain`): an eps that
  holds with probability >= 1 - sum_l 1/lambda_l before the mask is drawn; the sketch
  sizes use the reconstructed Lemma 5.1's bound on the non-zeros per line.

:func:`compute` returns a :class:`BoundResult` (the main network) and a
:class:`FamilyResult` (networks for the epoch curve and Kendall's tau); :func:`claims`
turns them into the chapter's claim records.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import brentq
from tqdm.auto import tqdm

from .. import counting, data, margins, models, norms, perturbation, pruning, runs, sketching, statistics
from .. import sparsity as sp
from ..bounds import (Bound, authors_sketch_bound, counting_bound, paper_bound,
                      sparse_count_bound)
from ..cache import cached_result
from ..claims import Claim, Value, criteria
from ..devices import resolve_device
from ..errors import ParameterError
from ..profiles import Profile
from ..sweeps import all_bounds
from ..validate import check_int, check_real
from .compression import margin_cost

LABEL = "chap-generalization-bound"
REQUIRES = ()  # reads only the main network, which full-results trains first

#: Relative tolerance of every bisection for d*.
REL_TOL = 1e-2
#: Percentiles tried, in order, when the profile's percentile margin is not positive.
LADDER = (10.0, 25.0, 50.0)
#: Total Markov failure probabilities of the provable chain shown in the trade-off table.
FAILURES = (0.5, 0.2, 0.1, 0.05, 0.01)
#: The display names of the bounds, in the order of the tables.
NAMES = {"paper": "paper (Thm 5.2, sketch)", "authors_sketch": "authors' evaluation",
         "provable": "provable chain", "dense_count": "dense count",
         "sparse_count": "Lemma D.1 count", "neyshabur2015": "Neyshabur 2015",
         "bartlett2017": "Bartlett 2017", "neyshabur2018": "Neyshabur 2018",
         "authors_neyshabur2015": "authors' 'Neyshabur 2015'",
         "authors_bartlett2017": "authors' 'Bartlett 2017'",
         "authors_neyshabur2018": "authors' 'Neyshabur 2018'"}


@dataclass(frozen=True)
class FamilySpec:
    """The family of networks: every combination of these, each after ``epochs``; and the
    run followed over its epochs (``epoch_run``: hidden widths, training-set size,
    optimiser, and the epochs at which it is evaluated; it trains to the last)."""

    hidden: tuple[tuple[int, ...], ...]
    train_sizes: tuple[int | None, ...]
    optimisers: tuple[str, ...]
    epochs: tuple[int, ...]
    seeds: tuple[int, ...]
    n_boot: int
    epoch_run: tuple[tuple[int, ...], int | None, str, tuple[int, ...]]


FAMILY = {
    "smoke": FamilySpec(((32,), (64, 64)), (None,), ("momentum-mnist",), (2, 4), (0,), 200,
                        ((64, 64), None, "momentum-mnist", (1, 2, 3, 4))),
    # plain SGD barely fits 1,000 samples in a few epochs, so the quick family is trained
    # with momentum (ours); the epoch run follows the authors' plain SGD
    "quick": FamilySpec(((100, 100), (300, 100)), (1000, 3000, 12000), ("momentum-mnist",),
                        (10, 20), (0,), 2000,
                        ((100, 100), 12000, "paper-mnist", tuple(range(1, 16)))),
    "full": FamilySpec(((100, 100), (300, 100)), (3000, 12000, None),
                       ("paper-mnist", "momentum-mnist"), (10, 30, 100), (0,), 5000,
                       ((300, 100), None, "paper-mnist", (1, 2, 3, 5, 7, 10, 15, 20, 30, 50,
                                                          70, 100))),
}


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Version:
    """Theorem 5.2 evaluated with one choice of eps(d), at its d*."""

    d_star: float
    eps: float            # the output-change bound at d* (authors: eps_A; chain; provable)
    condition: bool       # the hypothesis ||Delta^l|| <= ||A^l|| / L of Lemma (P) at d*
    kept: float           # fraction of all weights the mask keeps at d*
    test_err_g: float     # test error of the pruned network at d*
    bound: Bound


@dataclass(frozen=True)
class Protocol:
    """The three versions at one margin gamma."""

    name: str             # "minimum" or "percentile"
    gamma: float
    authors: Version
    chain: Version
    provable: Version


@dataclass(frozen=True)
class TradeOff:
    """The provable chain at one total Markov failure probability."""

    failure: float
    lam: float            # Markov's lambda of each layer, L / failure
    d_condition: float    # largest d at which lambda b_l(d) <= ||A~^l|| / L for every l
    d_star: float         # largest d at which also sqrt2 eps(d) <= gamma
    keep: float           # chi(d_star)
    eps: float            # the provable eps at d_star


@dataclass(frozen=True)
class FailureBudget:
    """Theorem 5.2's failure probability at the provable d*, term by term (union bound)."""

    markov: float         # sum_l 1 / lambda_l (Lemma 4.1 with Markov)
    lemma51: float        # sum over the lines of every layer of 1/lambda + L^{-1/3}
    discretization: float # 0: rounding to the grid is deterministic
    delta: float          # the confidence of the compression theorem (over the data)
    lemma51_layers: tuple[float, ...]

    @property
    def total(self) -> float:
        return self.markov + self.lemma51 + self.discretization + self.delta


@dataclass(frozen=True)
class SweepPoint:
    """The d-dependent quantities at one d (one mask, the profile's seed)."""

    d: float
    eps_authors: float
    eps_chain: float
    chain_condition: bool
    eps_provable: float
    provable_condition: bool
    loss_authors: float   # R^_{eps_A}(f)
    loss_chain: float     # R^_{sqrt2 eps}(f), measured Lemma (P)
    paper: float          # the paper's bound with the measured chain
    paper_nolog: float
    n_capped: float
    authors: float
    sparse: float         # Lemma D.1 count at the chain's margin loss
    kept: float
    test_err: float


@dataclass(frozen=True)
class LayerSketch:
    """The sketch of one layer at the chain's d* (percentile margin)."""

    size: sketching.SketchSize
    authors_q: float      # the authors' count d1 d2 chi ln^2 max(d1, d2) at the same d*


@dataclass(frozen=True)
class BoundResult:
    """Everything the chapter shows about the main network."""

    profile: str
    m: int
    delta: float
    r: int
    failure: float
    min_margin: float
    n_misclassified: int
    q: float              # the percentile of the training margins used
    test_err_f: float
    protocols: tuple[Protocol, Protocol]   # minimum, percentile
    spread: tuple[float, ...]   # eps_A at the authors' d* for three other masks
    sketch: tuple[LayerSketch, ...]
    bounds: dict[str, Bound]     # every bound at the percentile margin
    sweep: tuple[SweepPoint, ...]
    tradeoff: tuple[TradeOff, ...]
    budget: FailureBudget
    d_break: float        # chi(d) = 1 / ln^2 784: where a 784 x 784 sketch beats the layer
    n_params: int

    @property
    def percentile(self) -> Protocol:
        return self.protocols[1]

    @property
    def minimum(self) -> Protocol:
        return self.protocols[0]


@dataclass(frozen=True)
class Member:
    """One network of the family, evaluated at the family's percentile margin."""

    hidden: tuple[int, ...]
    train_size: int
    optimiser: str
    seed: int
    epoch: int
    gamma: float
    test_err: float
    train_err: float
    values: dict[str, float]

    @property
    def gap(self) -> float:
        return self.test_err - self.train_err


@dataclass(frozen=True)
class TauRow:
    """Kendall's tau of one bound over the family, against both readings of generalization."""

    name: str
    n: int
    tau_error: float
    p_error: float
    tau_gap: float
    p_gap: float
    difference: statistics.TauDifference
    smallest: float
    largest: float


@dataclass(frozen=True)
class FamilyResult:
    """The family of networks: its members, Kendall's tau, and one network over epochs."""

    q: float
    spec: FamilySpec
    members: tuple[Member, ...]
    taus: tuple[TauRow, ...]
    epochs: tuple[Member, ...]      # the epoch run after every epoch with a positive margin
    skipped_epochs: tuple[int, ...]
    train_seconds: float

    def tau(self, name: str) -> TauRow:
        return next(t for t in self.taus if t.name == name)


# --------------------------------------------------------------------------- pieces
class _LemmaP:
    """:func:`prunebounds.perturbation.certified_d`'s probe interface for the chain:
    the margin a pruned copy needs is sqrt2 times Lemma (P) with the measured norms on
    the bias-augmented network, and infinite where the lemma's condition fails."""

    def __init__(self, probe: perturbation.PruningProbe) -> None:
        self.probe = probe

    def needed_margin(self, pruned) -> perturbation.MarginBreakdown:
        res = self.probe.evaluate(pruned, true_error=False)
        value = margin_cost(res.textbook) if res.textbook_condition else math.inf
        return perturbation.MarginBreakdown(value, 0.0, 0.0, 0.0, 1.0, (), (), (), True)


def positive_q(margin_sets, q0: float) -> float:
    """The smallest of q0 and the :data:`LADDER` whose percentile is > 0 for every set."""
    for q in sorted({q0, *[x for x in LADDER if x > q0]}):
        if all(margins.margin_percentile(mm, q) > 0 for mm in margin_sets):
            return q
    raise ParameterError("even the median training margin is <= 0: the network has not "
                         "learned its training set; train it for more epochs")


def lemma51_sketches(shapes, keep: float, lam: float) -> tuple[list[sketching.SketchSize], list[float]]:
    """Sketch sizes with j from the reconstructed Lemma 5.1, and its failure per layer.

    For an (out, in) layer, j = the larger of the Lemma 5.1 bounds for a row (length in)
    and a column (length out) (:func:`prunebounds.sparsity.lemma51_bound`,
    ``"markov-chebyshev"``); every row and every column must stay below it, so the union
    bound multiplies the per-line failure 1/lambda + L^{-1/3} by the number of lines
    (not capped at 1, so that the sum over layers shows how far from 1 it is).
    """
    sizes, fails = [], []
    for n_out, n_in in shapes:
        br, fr = sp.lemma51_bound(n_in, keep, lam, kind="markov-chebyshev")
        bc, fc = sp.lemma51_bound(n_out, keep, lam, kind="markov-chebyshev")
        sizes.append(sketching.sketch_size_for((n_out, n_in), max(br, bc)))
        fails.append(n_out * fr + n_in * fc)
    return sizes, fails


def provable_bound(chain: perturbation.ProvableChain, mg: torch.Tensor, d: float,
                   shapes, r: int, delta: float) -> tuple[Bound, list[float]]:
    """The paper's bound with the provable eps and the Lemma 5.1 sketch sizes at d."""
    eps = chain.margin(d).value
    keep = float(pruning.expected_keep_fraction(d))
    sizes, fails = lemma51_sketches(shapes, keep, chain.lam)
    q = float(sum(s.n_params for s in sizes))
    b = counting_bound("provable", margins.margin_loss(mg, margin_cost(eps)), q * math.log(r),
                       int(mg.numel()), delta, {"q": q, "eps": eps})
    return b, fails


def _test_error(g: torch.nn.Module, split) -> float:
    return margins.model_error_rate(g, split.X, split.y)


def protocol(name: str, net, probe, chain, mg, gamma: float, seed: int, test, r: int,
             delta: float) -> Protocol:
    """d* of each version at margin ``gamma``, the pruned network there, and its bound."""
    shapes = [tuple(w.shape) for w in probe.weights]
    m = int(mg.numel())
    d_a = perturbation.certified_d(probe, net, gamma, seed=seed, rel_tol=REL_TOL)
    d_m = perturbation.certified_d(_LemmaP(probe), net, gamma, seed=seed, rel_tol=REL_TOL)
    d_v = chain.certified_d(gamma / margin_cost(1.0), rel_tol=REL_TOL)
    errors: dict[float, float] = {}

    def at(d: float):
        g = pruning.prune_paper(net, d, seed)
        if d not in errors:
            errors[d] = _test_error(g, test)
        Wg = models.weight_matrices(g)
        kept = sum(int(torch.count_nonzero(w)) for w in Wg) / sum(w.numel() for w in Wg)
        return Wg, probe.evaluate(Wg, true_error=False), kept, errors[d]

    Wa, ra, ka, ea = at(d_a)
    authors = authors_sketch_bound(margins.margin_loss(mg, ra.authors.value), Wa,
                                   float(pruning.expected_keep_fraction(d_a)), m)
    Wm, rm, km, em = at(d_m)
    paper = paper_bound(mg, margin_cost(rm.textbook), Wm, r=r, delta=delta)
    _, _, kv, ev = at(d_v)
    prov, _ = provable_bound(chain, mg, d_v, shapes, r, delta)
    pm = chain.margin(d_v)
    return Protocol(name, gamma,
                    Version(d_a, ra.authors.value, ra.authors.condition_holds, ka, ea, authors),
                    Version(d_m, rm.textbook, rm.textbook_condition, km, em, paper),
                    Version(d_v, pm.value, pm.condition_holds, kv, ev, prov))


def sparse_count(loss: float, Wg, r: int, m: int, delta: float) -> Bound:
    """Lemma D.1's count of the pruned weights ``Wg``, confidence term written out."""
    nnz = [int(torch.count_nonzero(w)) for w in Wg]
    sc = sparse_count_bound(loss, nnz, [tuple(w.shape) for w in Wg], r, m)
    return counting_bound("sparse_count", loss, sc.details["q_nats"], m, delta)


def every_bound(net, init, X_train, mg, gamma: float, prot: Protocol, seed: int,
                input_norm: float, r: int, delta: float) -> dict[str, Bound]:
    """Every bound at margin ``gamma``: the norm baselines and the dense count for f, the
    compression bounds for the pruned g of each version (counting with delta written out).

    The Lemma D.1 count describes the same g as the paper's bound (the chain's d*) at
    the same margin loss; only the way its weights are counted differs.
    """
    W = models.weight_matrices(net)
    m, loss = int(mg.numel()), margins.margin_loss(mg, gamma)
    res = all_bounds(W, models.weight_matrices(init), input_norm,
                     norms.input_norms(X_train).fro, gamma, m, delta, loss, r=r)
    res["dense_count"] = counting_bound("dense_count", loss,
                                        sum(w.numel() for w in W) * math.log(r), m, delta)
    Wm = models.weight_matrices(pruning.prune_paper(net, prot.chain.d_star, seed))
    res["sparse_count"] = sparse_count(prot.chain.bound.terms["empirical_margin_loss"], Wm,
                                       r, m, delta)
    res["paper"] = prot.chain.bound
    res["authors_sketch"] = prot.authors.bound
    res["provable"] = prot.provable.bound
    return {k: res[k] for k in NAMES}


def sweep_d(net, probe, chain, mg, ds, seed: int, test, r: int, delta: float) -> list[SweepPoint]:
    """The d-dependent quantities over ``ds`` (masks of one seed, nested in d)."""
    m = int(mg.numel())
    g = copy.deepcopy(net)
    out = []
    for d, Wg in tqdm(list(pruning.paper_rule_sweep(net, ds, seed)), desc="sweep over d",
                      disable=True):
        res = probe.evaluate(Wg, true_error=False)
        pb = paper_bound(mg, margin_cost(res.textbook), Wg, r=r, delta=delta)
        loss_a = margins.margin_loss(mg, res.authors.value)
        ab = authors_sketch_bound(loss_a, Wg, float(pruning.expected_keep_fraction(d)), m)
        pm = chain.margin(d)
        with torch.no_grad():
            for layer, w in zip(models.linear_layers(g), Wg):
                layer.weight.copy_(w)
        loss = pb.terms["empirical_margin_loss"]
        out.append(SweepPoint(
            d=float(d), eps_authors=res.authors.value, eps_chain=res.textbook,
            chain_condition=res.textbook_condition, eps_provable=pm.value,
            provable_condition=pm.condition_holds, loss_authors=loss_a, loss_chain=loss,
            paper=pb.value, paper_nolog=pb.details["value_without_log_r"],
            n_capped=pb.details["n_capped"], authors=ab.value,
            sparse=sparse_count(loss, Wg, r, m, delta).value,
            kept=sum(int(torch.count_nonzero(w)) for w in Wg) / sum(w.numel() for w in Wg),
            test_err=_test_error(g, test)))
    return out


def tradeoff(net, input_norm: float, gamma: float) -> list[TradeOff]:
    """The provable chain's d* and the largest d its condition allows, per failure."""
    out = []
    for f in FAILURES:
        chain = perturbation.ProvableChain(net, input_norm, failure=f)
        d_star = chain.certified_d(gamma / margin_cost(1.0), rel_tol=REL_TOL)
        out.append(TradeOff(f, chain.lam, chain.certified_d(1e300, rel_tol=REL_TOL), d_star,
                            float(pruning.expected_keep_fraction(d_star)),
                            chain.margin(d_star).value))
    return out


def break_even_d(p: int = 784) -> float:
    """The d with chi(d) = 1 / ln^2 p: beyond it a p x p sketch is smaller than the layer
    (chapter remark ``rem-bound-cap``)."""
    target = 1.0 / math.log(check_int("p", p, minimum=3)) ** 2
    return float(brentq(lambda d: float(pruning.expected_keep_fraction(d)) - target, 1e-6, 1e6))


def main_network(P: Profile, *, delta: float, r: int, failure: float,
                 progress: bool = False) -> BoundResult:
    """Every measurement of the main network (not cached; see :func:`compute`)."""
    device = resolve_device(P.device)
    cfg = runs.RunConfig.from_profile(P)
    run = runs.train_cached(cfg, progress=progress)
    net, init = run.model.to(device), run.model_at(0).to(device)
    D = data.load(P.dataset, max_train=P.max_train).to(device)
    mg = margins.margins(margins.logits(net, D.train.X), D.train.y).to(torch.float64).cpu()
    q = positive_q([mg], P.margin_q)
    probe = perturbation.PruningProbe(net, D.train.X, D.train.y)
    chain = perturbation.ProvableChain(net, probe.input_norm, failure=failure)
    gmin, gq = margins.min_margin(mg), margins.margin_percentile(mg, q)
    steps = tqdm(total=5, desc="bound chapter", disable=not progress)
    prots = []
    for name, gamma in (("minimum", gmin), ("percentile", gq)):
        prots.append(protocol(name, net, probe, chain, mg, gamma, P.seed, D.test, r, delta))
        steps.update()
    pq = prots[1]
    spread = tuple(probe.needed_margin(pruning.prune_paper(net, pq.authors.d_star, P.seed + s)).value
                   for s in (1, 2, 3))
    g_chain = models.weight_matrices(pruning.prune_paper(net, pq.chain.d_star, P.seed))
    chi_m = float(pruning.expected_keep_fraction(pq.chain.d_star))
    sketch = tuple(LayerSketch(s, counting.count_authors(s.shape[1], s.shape[0], chi_m))
                   for s in sketching.sketch_sizes(g_chain))
    bounds = every_bound(net, init, D.train.X, mg, gq, pq, P.seed, probe.input_norm, r, delta)
    steps.update()
    ds = np.geomspace(1e-6, 10.0, max(3, (P.n_d + 1) // 2))
    sweep = sweep_d(net, probe, chain, mg, ds, P.seed, D.test, r, delta)
    steps.update()
    trade = tradeoff(net, probe.input_norm, gq)
    shapes = [tuple(w.shape) for w in probe.weights]
    _, fails = lemma51_sketches(shapes, float(pruning.expected_keep_fraction(pq.provable.d_star)),
                                chain.lam)
    budget = FailureBudget(failure, float(sum(fails)), 0.0, delta, tuple(float(f) for f in fails))
    steps.update()
    steps.close()
    return BoundResult(
        profile=P.name, m=int(mg.numel()), delta=delta, r=r, failure=failure, min_margin=gmin,
        n_misclassified=int((mg <= 0).sum()), q=q, test_err_f=_test_error(net, D.test),
        protocols=(prots[0], prots[1]), spread=spread, sketch=sketch, bounds=bounds,
        sweep=tuple(sweep), tradeoff=tuple(trade), budget=budget, d_break=break_even_d(784),
        n_params=int(sum(a * b for a, b in shapes)))


# --------------------------------------------------------------------------- the family
def _run_config(P: Profile, hidden, size, optimiser: str, seed: int, epochs: int,
                snapshots) -> runs.RunConfig:
    n_in = int(np.prod(data.INPUT_SHAPES[P.dataset]))
    return runs.RunConfig.from_profile(P, widths=(n_in, *hidden, 10), epochs=epochs, seed=seed,
                                       max_train=size, optimiser=optimiser,
                                       snapshot_epochs=tuple(e for e in snapshots if e < epochs))


def family_configs(P: Profile, spec: FamilySpec) -> dict[tuple, runs.RunConfig]:
    """(hidden, train size, optimiser, seed) -> the run of each family member; the key
    ``"epochs"`` holds the run followed over its epochs (every epoch kept)."""
    E = max(spec.epochs)
    out = {(h, size, opt, s): _run_config(P, h, size, opt, s, E, spec.epochs)
           for h in spec.hidden for size in spec.train_sizes for opt in spec.optimisers
           for s in spec.seeds}
    h, size, opt, points = spec.epoch_run
    out["epochs"] = _run_config(P, h, size, opt, spec.seeds[0], max(points), points)
    return out


def evaluate_member(cfg: runs.RunConfig, epoch: int, net, init, D, mg, q: float, r: int,
                    delta: float, failure: float) -> Member:
    """Every bound of one family network at its q-th percentile training margin."""
    gamma = margins.margin_percentile(mg, q)
    probe = perturbation.PruningProbe(net, D.train.X, D.train.y)
    chain = perturbation.ProvableChain(net, probe.input_norm, failure=failure)
    prot = protocol("percentile", net, probe, chain, mg, gamma, cfg.seed, D.test, r, delta)
    bounds = every_bound(net, init, D.train.X, mg, gamma, prot, cfg.seed, probe.input_norm, r,
                         delta)
    return Member(tuple(cfg.widths[1:-1]), int(len(D.train)), cfg.optimiser, cfg.seed, epoch,
                  gamma, _test_error(net, D.test), margins.margin_loss(mg, 0.0),
                  {k: b.value for k, b in bounds.items()})


def tau_rows(members: list[Member], n_boot: int, seed: int) -> list[TauRow]:
    """Kendall's tau of every bound against the test error and the gap, and their difference."""
    test = [mm.test_err for mm in members]
    train = [mm.train_err for mm in members]
    out = []
    for name in NAMES:
        vals = [mm.values[name] for mm in members]
        rc = statistics.rank_correlations(vals, test, train)
        diff = statistics.tau_difference(vals, test, train, n_boot=n_boot, seed=seed)
        out.append(TauRow(name, rc.n, rc.tau_error, rc.p_error, rc.tau_gap, rc.p_gap, diff,
                          float(min(vals)), float(max(vals))))
    return out


def family(P: Profile, *, delta: float, r: int, failure: float,
           progress: bool = False) -> FamilyResult:
    """Train (or load) the family, evaluate every member and the epoch run (not cached)."""
    spec = FAMILY[P.name]
    configs = family_configs(P, spec)
    trained, seconds = {}, 0.0
    for key, cfg in tqdm(configs.items(), desc="family: training", disable=not progress):
        trained[key] = runs.train_cached(cfg, progress=False)
        seconds += float(trained[key].meta.get("train_seconds", 0.0))
    device = resolve_device(P.device)
    bundles = {c.max_train: data.load(P.dataset, max_train=c.max_train).to(device)
               for c in configs.values()}
    points = [(k, e) for k in configs if k != "epochs" for e in spec.epochs]
    points += [("epochs", e) for e in spec.epoch_run[3]]
    nets, mgs = {}, {}
    for k, e in points:
        D = bundles[configs[k].max_train]
        nets[k, e] = trained[k].model_at(e).to(device)
        mgs[k, e] = margins.margins(margins.logits(nets[k, e], D.train.X), D.train.y).cpu()
    q = positive_q([mgs[pt] for pt in points if pt[0] != "epochs"], P.margin_q)
    use = [pt for pt in points if pt[0] != "epochs" or margins.margin_percentile(mgs[pt], q) > 0]
    evaluated = {}
    for k, e in tqdm(use, desc="family: bounds", disable=not progress):
        evaluated[k, e] = evaluate_member(configs[k], e, nets[k, e],
                                          trained[k].model_at(0).to(device),
                                          bundles[configs[k].max_train], mgs[k, e], q, r, delta,
                                          failure)
    members = [evaluated[pt] for pt in points if pt[0] != "epochs"]
    epochs = [evaluated[pt] for pt in points if pt[0] == "epochs" and pt in evaluated]
    skipped = tuple(e for k, e in points if k == "epochs" and (k, e) not in evaluated)
    return FamilyResult(q, spec, tuple(members), tuple(tau_rows(members, spec.n_boot, P.seed)),
                        tuple(epochs), skipped, seconds)


# --------------------------------------------------------------------------- the chapter
@dataclass(frozen=True)
class GeneralizationBoundResult:
    """The chapter's result: the main network and the family."""

    main: BoundResult
    family: FamilyResult


def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def compute(P: Profile, *, delta: float = 0.05, bits: int = 8, failure: float = 0.1,
            progress: bool = True) -> GeneralizationBoundResult:
    """Everything the chapter measures for profile ``P`` (two cached parts)."""
    delta = check_real("delta", delta, minimum=1e-12, maximum=0.5)
    bits = check_int("bits", bits, minimum=1)
    failure = check_real("failure", failure, minimum=1e-9, maximum=0.999)
    r = 2 ** bits
    base = dict(profile=P.name, dataset=P.dataset, max_train=P.max_train, seed=P.seed,
                epochs=P.epochs, margin_q=P.margin_q, delta=delta, r=r, failure=failure,
                chapter=_source_hash())
    main = cached_result(
        "chapter-bound-main", dict(base, run=runs.RunConfig.from_profile(P).key, n_d=P.n_d),
        lambda: main_network(P, delta=delta, r=r, failure=failure, progress=progress),
        BoundResult)
    fam = cached_result(
        "chapter-bound-family", dict(base, family=repr(FAMILY[P.name])),
        lambda: family(P, delta=delta, r=r, failure=failure, progress=progress), FamilyResult)
    return GeneralizationBoundResult(main, fam)


def claims(R: GeneralizationBoundResult) -> list[Claim]:
    """The chapter's claim records."""
    M, F = R.main, R.family
    pq = M.percentile
    chi_a = float(pruning.expected_keep_fraction(pq.authors.d_star))
    prob = [k for k, b in M.bounds.items() if b.on_probability]
    smallest = min(prob, key=lambda k: M.bounds[k].value)
    tp = F.tau("paper")
    b = M.budget
    chapter = dict(chapter=LABEL)
    return [
        Claim(id="d-star", origin="paper", **chapter, evidence="tab-bound-protocol",
              statement="Compression succeeds at $d^*$ where the needed margin equals the margin",
              measured=(Value("d_star", "$d^*$ (authors' protocol)", pq.authors.d_star, ".2g"),
                        Value("chi_d_star", "kept fraction $\\keep(d^*)$", chi_a, ".4f"),
                        Value("d_star_chain", "$d^*$ of Lemma (P) with the measured norms",
                              pq.chain.d_star, ".2g"),
                        Value("d_star_provable", "$d^*$ of the provable chain", pq.provable.d_star, ".2g")),
              judgement=criteria.at_most(chi_a, 0.9, what="the kept fraction χ(d*)",
                                         limit_what="a tenth of the weights pruned",
                                         otherwise="holds but vacuous")),
        Claim(id="thm-5-2-bound", origin="reconstructed", **chapter, evidence="tab-bound-protocol",
              statement="Theorem 5.2: the generalization bound",
              measured=(Value("bound_paper", "paper's bound (measured norms)", pq.chain.bound.value, ".3g"),
                        Value("bound_authors", "authors' evaluation", pq.authors.bound.value, ".3g"),
                        Value("bound_provable", "provable chain", pq.provable.bound.value, ".3g"),
                        Value("failure_total", "its failure probability", b.total, ".4g"),
                        Value("test_f", "test error of $f$", M.test_err_f, ".4f"),
                        Value("test_g", "test error of the pruned $g$", pq.chain.test_err_g, ".4f"),
                        Value("n_vacuous", "vacuous bounds",
                              len([k for k in prob if M.bounds[k].vacuous]), "d")),
              authors="normalized curves only",
              judgement=criteria.bound_vs_error(pq.chain.bound.value, pq.chain.test_err_g,
                                                what="the paper's bound",
                                                error_what="the pruned network's test error")),
        Claim(id="thm-5-2-failure", origin="reconstructed", **chapter, evidence="tab-bound-failure",
              statement="Theorem 5.2's failure probability (Lemma 4.1 with Markov's "
                        "$\\lambda_l$, Lemma 5.1, the discretization, $\\delta$) is below 1",
              measured=(Value("markov", "$\\sum_l 1/\\lambda_l$", b.markov, ".3g"),
                        Value("lemma51", "Lemma 5.1, all lines of all layers", b.lemma51, ".4g"),
                        Value("total", "total failure probability", b.total, ".4g"),
                        Value("chi_provable", "kept fraction at the provable $d^*$",
                              float(pruning.expected_keep_fraction(pq.provable.d_star)), ".4f")),
              judgement=criteria.at_most(b.total, 1.0, what="the total failure probability",
                                         limit_what="1 (a probability)")),
        Claim(id="baselines", origin="paper", **chapter, evidence="tab-bound-terms",
              statement="Baselines: Neyshabur et al. 2015, Bartlett et al. 2017, Neyshabur et al. "
                        "2018, with their constants",
              measured=(Value("n15", "complexity term, Neyshabur 2015",
                              M.bounds["neyshabur2015"].terms["complexity"], ".3g"),
                        Value("b17", "Bartlett 2017", M.bounds["bartlett2017"].terms["complexity"], ".3g"),
                        Value("n18", "Neyshabur 2018", M.bounds["neyshabur2018"].terms["complexity"], ".3g"),
                        Value("smallest", "smallest bound of all", NAMES[smallest], "s"),
                        Value("smallest_value", "its value", M.bounds[smallest].value, ".3g")),
              authors="normalized curves, constants and logs dropped; their “Bartlett” uses a "
                      "Frobenius norm",
              judgement=criteria.bound_vs_error(M.bounds[smallest].value, M.test_err_f,
                                                what="the smallest bound",
                                                error_what="the test error of f")),
        Claim(id="bound-tracks-generalization", origin="paper", **chapter, evidence="tab-bound-kendall",
              statement="The bound tracks generalization across networks",
              measured=(Value("tau_paper", "Kendall's $\\tau$ of the paper's bound with test error",
                              tp.tau_error, ".2f"),
                        Value("p_value", "its p-value", tp.p_error, ".2g"),
                        Value("tau_gap", "with the generalization gap", tp.tau_gap, ".2f"),
                        Value("p_gap", "its p-value", tp.p_gap, ".2g"),
                        Value("n_networks", "networks", tp.n, "d")),
              authors="per-epoch figure",
              judgement=criteria.caveat_unless(
                  criteria.all_of(
                      criteria.at_least(tp.tau_error, 0.0, what="Kendall's τ with the test error",
                                        limit_what="0, the same order"),
                      criteria.at_most(tp.p_error, 0.05, what="its p-value")),
                  criteria.all_of(
                      criteria.at_least(tp.tau_gap, 0.0, what="Kendall's τ with the gap",
                                        limit_what="0"),
                      criteria.at_most(tp.p_gap, 0.05, what="its p-value")),
                  "it does not track the generalization gap")),
    ]


def _change(v: list[float]) -> float:
    """Relative change from the first to the last value."""
    return float(v[-1] / v[0] - 1.0) if v and v[0] else math.nan


def numbers(R: GeneralizationBoundResult) -> dict[str, float | int | str]:
    """The numbers the chapter's text quotes, by glue name."""
    M, F = R.main, R.family
    pm, pq = M.minimum, M.percentile
    prob = [k for k, b in M.bounds.items() if b.on_probability]
    smallest = min(prob, key=lambda k: M.bounds[k].value)
    sw = M.sweep
    one = [p.d for p in sw if p.loss_chain >= 1.0]
    t01 = next(t for t in M.tradeoff if t.failure == M.failure) if any(
        t.failure == M.failure for t in M.tradeoff) else M.tradeoff[len(M.tradeoff) // 2]
    taus = [t for t in F.taus if not math.isnan(t.tau_error)]
    best = max(taus, key=lambda t: t.tau_error) if taus else F.taus[0]
    ep = F.epochs
    out = {
        "bound_delta": M.delta, "bound_r": M.r, "bound_bits": int(round(math.log2(M.r))),
        "bound_m": M.m, "bound_failure": M.failure,
        "bound_min_margin": M.min_margin, "bound_n_misclassified": M.n_misclassified,
        "bound_q": M.q, "bound_q_margin": pq.gamma, "bound_test_f": M.test_err_f,
        "bound_d_break": M.d_break, "bound_n_params": f"{M.n_params:,}",
        "bound_spread_lo": min(M.spread), "bound_spread_hi": max(M.spread),
        "bound_min_paper": pm.chain.bound.value, "bound_min_authors": pm.authors.bound.value,
        "bound_min_dstar": pm.authors.d_star,
        "bound_n_capped": int(sum(s.size.capped for s in M.sketch)), "bound_n_layers": len(M.sketch),
        "bound_q_sketch": float(sum(s.size.n_params for s in M.sketch)),
        "bound_q_auth": float(sum(s.authors_q for s in M.sketch)),
        "bound_n_vacuous": int(sum(bool(M.bounds[k].vacuous) for k in prob)),
        "bound_n_prob": len(prob), "bound_smallest": NAMES[smallest],
        "bound_smallest_value": M.bounds[smallest].value,
        "bound_n15_complexity": M.bounds["neyshabur2015"].terms["complexity"],
        "bound_b17_complexity": M.bounds["bartlett2017"].terms["complexity"],
        "bound_n18_complexity": M.bounds["neyshabur2018"].terms["complexity"],
        "bound_dense": M.bounds["dense_count"].value, "bound_sparse": M.bounds["sparse_count"].value,
        "bound_sweep_min_paper": min(p.paper for p in sw),
        "bound_sweep_min_authors": min(p.authors for p in sw),
        "bound_sweep_min_provable_eps": min(p.eps_provable for p in sw),
        "bound_sweep_min_complexity": min(p.paper - p.loss_chain for p in sw),
        "bound_sweep_capped_min": int(min(p.n_capped for p in sw)),
        "bound_sweep_d_max": sw[-1].d, "bound_sweep_kept_max_d": sw[-1].kept,
        "bound_sweep_test_max_d": sw[-1].test_err,
        "bound_sweep_n_down": int(sum(b.eps_authors < a.eps_authors for a, b in zip(sw, sw[1:]))),
        "bound_sweep_n_steps": len(sw) - 1,
        "bound_sweep_loss_one": min(one) if one else math.nan,
        "bound_chain_ratio": float(np.median([p.eps_chain / p.eps_authors for p in sw
                                              if p.eps_authors > 0])),
        "bound_lam": t01.lam, "bound_d_condition": t01.d_condition,
        "bound_markov": M.budget.markov, "bound_lemma51": M.budget.lemma51,
        "bound_failure_total": M.budget.total,
        "bound_trade_d_lo": M.tradeoff[0].d_condition, "bound_trade_f_lo": M.tradeoff[0].failure,
        "bound_trade_d_hi": M.tradeoff[-1].d_condition, "bound_trade_f_hi": M.tradeoff[-1].failure,
        "bound_fam_n": len(F.members), "bound_q_fam": F.q,
        "bound_fam_test_lo": min(mm.test_err for mm in F.members),
        "bound_fam_test_hi": max(mm.test_err for mm in F.members),
        "bound_fam_gap_lo": min(mm.gap for mm in F.members),
        "bound_fam_gap_hi": max(mm.gap for mm in F.members),
        "bound_fam_widths": ", ".join("(" + ", ".join(map(str, h)) + ")" for h in F.spec.hidden),
        "bound_fam_sizes": ", ".join(f"{mm:,}" for mm in sorted({m.train_size for m in F.members})),
        "bound_fam_epochs": ", ".join(map(str, F.spec.epochs)),
        "bound_fam_optimisers": ", ".join(F.spec.optimisers),
        "bound_fam_seeds": ", ".join(map(str, F.spec.seeds)),
        "bound_fam_train_s": F.train_seconds,
        "bound_tau_paper": F.tau("paper").tau_error, "bound_tau_paper_p": F.tau("paper").p_error,
        "bound_tau_paper_gap": F.tau("paper").tau_gap, "bound_tau_paper_gap_p": F.tau("paper").p_gap,
        "bound_tau_authors": F.tau("authors_sketch").tau_error,
        "bound_tau_authors_gap": F.tau("authors_sketch").tau_gap,
        "bound_tau_best": NAMES[best.name], "bound_tau_best_value": best.tau_error,
        "bound_tau_min_p": float(min((t.p_error for t in taus), default=math.nan)),
        "bound_tau_n_sig_diff": int(sum(t.difference.pvalue < 0.05 for t in F.taus)),
        "bound_tau_paper_diff": F.tau("paper").difference.difference,
        "bound_tau_paper_diff_p": F.tau("paper").difference.pvalue,
        "bound_tau_n_boot": F.spec.n_boot,
        "bound_epoch_widths": " x ".join(map(str, ep[-1].hidden)),
        "bound_epoch_m": ep[-1].train_size, "bound_epoch_optimiser": ep[-1].optimiser,
        "bound_epoch_first": ep[0].epoch, "bound_epoch_last": ep[-1].epoch,
        "bound_epoch_n_skipped": len(F.skipped_epochs),
        "bound_epoch_test_first": ep[0].test_err, "bound_epoch_test_last": ep[-1].test_err,
        "bound_epoch_test_change": _change([e.test_err for e in ep]),
        "bound_epoch_paper_change": _change([e.values["paper"] for e in ep]),
        "bound_epoch_authors_change": _change([e.values["authors_sketch"] for e in ep]),
        "bound_epoch_n15_change": _change([e.values["neyshabur2015"] for e in ep]),
    }
    for name, p in (("authors", pq.authors), ("chain", pq.chain), ("provable", pq.provable)):
        b = p.bound
        out.update({
            f"bound_{name}_dstar": p.d_star, f"bound_{name}_eps": p.eps,
            f"bound_{name}_chi": float(pruning.expected_keep_fraction(p.d_star)),
            f"bound_{name}_kept": p.kept, f"bound_{name}_test_g": p.test_err_g,
            f"bound_{name}_value": b.value, f"bound_{name}_loss": b.terms["empirical_margin_loss"],
            f"bound_{name}_complexity": b.terms["complexity"],
        })
    out["bound_paper_confidence"] = pq.chain.bound.terms["confidence"]
    out["bound_paper_nolog"] = pq.chain.bound.details["value_without_log_r"]
    return out
