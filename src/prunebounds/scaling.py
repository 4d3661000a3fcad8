"""Experiments the reviewers asked for: other pruning rules, width/depth scaling, heavy tails.

Three small tools for the chapter "What the reviewers asked":

* :func:`compare_rules` prunes one network by the paper's rule (R), by deterministic
  magnitude pruning at the same per-layer sparsity and by random pruning at the same
  sparsity, and reports the authors' needed margin, ||Delta^l||_2, the true logit
  change and the test error of each;
* :func:`margin_terms` trains (through :func:`prunebounds.runs.train_cached`) a
  network of given widths, prunes it by (R) at a fixed d and returns the factors of the
  authors' needed margin and the sketch size q of Theorem 5.2 (reconstructed);
* :func:`student_t_rule` gives the kept fraction and E[Delta^2] of rule (R) when the
  weights follow a Student-t law with the layer's variance, beside the Gaussian formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import margins, models, pruning
from .errors import ParameterError
from .gaussianity import RuleExpectations, rule_expectations_quad
from .norms import max_input_norm, spectral_norm
from .perturbation import MarginBreakdown, PruningProbe, needed_margin
from .runs import RunConfig, train_cached
from .sketching import sketch_sizes
from .validate import check_int, check_real

RULES = ("paper", "magnitude", "random")


def pruned_by_rules(model: torch.nn.Module, d: float, seed: int) -> dict:
    """The three pruned copies of ``model`` with the same number of zeros per layer.

    ``paper``: rule (R) with parameter d (:func:`prunebounds.pruning.prune_paper`);
    ``magnitude``: the smallest weights of each layer, as many as (R) dropped there
    (:func:`prunebounds.pruning.prune_like`, deterministic); ``random``: a uniformly
    random subset of each layer of the same size (:func:`prunebounds.pruning.prune_random`).
    """
    g = pruning.prune_paper(model, d, seed)
    frac = [1.0 - k for k in pruning.kept_fractions(g)]
    counts = [round(f * w.numel()) for f, w in zip(frac, models.weight_matrices(model))]
    sizes = [w.numel() for w in models.weight_matrices(model)]
    frac = [c / n for c, n in zip(counts, sizes)]
    return {"paper": g, "magnitude": pruning.prune_like(model, g),
            "random": pruning.prune_random(model, frac, seed)}


@dataclass(frozen=True)
class RuleComparison:
    """One (d, rule) row of :func:`compare_rules`."""

    d: float
    rule: str
    kept: float                       # mean kept fraction over the layers
    kept_layers: tuple[float, ...]
    delta_norms: tuple[float, ...]    # ||Delta^l||_2
    needed: float                     # the authors' needed margin
    true_change: float                # max |change of the correct-class logit|, training set
    l2_change: float                  # max ||change of the logits||_2, training set
    train_error: float
    test_error: float
    delta_fro: tuple[float, ...]      # ||Delta^l||_F
    nnz: int
    q: float                          # sketch size sum_l k_out k_in
    dead_rows: int


def compare_rules(model: torch.nn.Module, probe: PruningProbe, ds: Sequence[float], seed: int,
                  X_test: torch.Tensor, y_test: torch.Tensor) -> list[RuleComparison]:
    """For each d and each rule of :data:`RULES`: needed margin, ||Delta||, truth, test error.

    The authors' needed margin e B prod||A|| sum ||Delta||/||A|| prod Gamma (brief,
    "Pruning error") is evaluated for every rule, although its derivation (independent
    mean-zero error, Lemma 4.1 reconstructed) only covers the paper's rule: the
    deterministic rule's error is a function of the weights, not an independent draw.
    Returns one :class:`RuleComparison` per (d, rule); besides the above it holds the
    Frobenius norms ||Delta^l||_F, the number of non-zeros, the sketch size q
    (:func:`prunebounds.sketching.sketch_sizes`) and the number of all-zero rows. Error
    rates are :func:`prunebounds.margins.error_rate`.
    """
    rows = []
    for d in ds:
        d = check_real("d", d, minimum=0.0)
        for rule, g in pruned_by_rules(model, d, seed).items():
            ev = probe.evaluate(g, true_error=True)
            Wg = models.weight_matrices(g)
            fro = [math.sqrt(m2 * w.numel()) for m2, w in zip(ev.mean_sq_delta, Wg)]
            rows.append(RuleComparison(
                d=d, rule=rule, kept=float(np.mean(ev.kept)), kept_layers=ev.kept,
                delta_norms=ev.delta_norms, needed=ev.authors.value,
                true_change=ev.output.max_correct_logit_change,
                l2_change=ev.output.max_l2_change,
                train_error=ev.train_error,
                test_error=margins.error_rate(margins.logits(g, X_test), y_test),
                delta_fro=tuple(fro), nnz=int(sum(int(torch.count_nonzero(w)) for w in Wg)),
                q=float(sum(s.n_params for s in sketch_sizes(Wg))),
                dead_rows=int(sum(int((w.abs().sum(dim=1) == 0).sum()) for w in Wg))))
    return rows


@dataclass(frozen=True)
class MarginTerms(MarginBreakdown):
    """The authors' needed margin of one trained network (its factors are those of
    :class:`prunebounds.perturbation.MarginBreakdown`; ``value`` is the needed margin)
    and what :func:`margin_terms` compares it with."""

    widths: tuple[int, ...] = ()
    depth: int = 0
    gamma: float = 0.0    # the margin_q-th percentile of the training margins
    test_error: float = 0.0
    q: float = 0.0        # sketch size sum_l k_out k_in
    n_weights: int = 0
    nnz: int = 0


def margin_terms(cfg: RunConfig, data, d: float, seed: int, margin_q: float = 5.0,
                 progress: bool = False) -> MarginTerms:
    """Train (cached) the network ``cfg`` and return the needed margin's factors at d.

    The factors of the authors' needed margin (:class:`MarginBreakdown`): e B,
    prod_l ||A^l||_2, sum_l ||Delta^l||_2/||A^l||_2, prod_l Gamma_l, their product
    ``value``; beside them the robust margin gamma (``margin_q``-th percentile of the
    training margins), the test error, the sketch size q = sum_l k_out k_in of
    :func:`prunebounds.sketching.sketch_sizes` and the number of weights. ``data`` must be
    the data set ``cfg`` trains on (its training split gives B and m).
    """
    d = check_real("d", d, minimum=0.0)
    margin_q = check_real("margin_q", margin_q, minimum=0.0, maximum=100.0)
    run = train_cached(cfg, progress=progress)
    net = run.model
    X, y = data.train.X, data.train.y
    g = pruning.prune_paper(net, d, seed)
    W, Wg = models.weight_matrices(net), models.weight_matrices(g)
    nm = needed_margin(W, Wg, max_input_norm(X), len(X))
    m_tr = margins.margins(margins.logits(net, X), y)
    sizes = sketch_sizes(Wg)
    return MarginTerms(
        **{f: getattr(nm, f) for f in MarginBreakdown.__dataclass_fields__},
        widths=tuple(cfg.widths), depth=len(W), gamma=margins.margin_percentile(m_tr, margin_q),
        test_error=margins.model_error_rate(net, data.test.X, data.test.y),
        q=float(sum(s.n_params for s in sizes)), n_weights=int(sum(w.numel() for w in W)),
        nnz=int(sum(int(torch.count_nonzero(w)) for w in Wg)))


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (the exponent of a power law y ~ x^s)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) != len(y) or len(x) < 2 or np.any(x <= 0) or np.any(y <= 0):
        raise ParameterError("loglog_slope needs >= 2 pairs of positive numbers")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def student_t_scale(df: float, variance: float) -> float:
    """Scale s of a Student-t law with ``df`` > 2 degrees of freedom and the given variance.

    Var(s T_df) = s^2 df/(df - 2), so s = sqrt(variance (df - 2)/df).
    """
    df = check_real("df", df, minimum=0.0)
    if df <= 2.0:
        raise ParameterError(f"df must be > 2 for a finite variance, got {df}")
    variance = check_real("variance", variance, minimum=0.0)
    return math.sqrt(variance * (df - 2.0) / df)


def student_t_rule(df: float, d: float, psi: float = 1.0) -> RuleExpectations:
    """Kept fraction and E[Delta^2] of rule (R) for weights ~ s T_df with variance Psi (ours).

    By quadrature (:func:`prunebounds.gaussianity.rule_expectations_quad`) of
    1 - E exp(-W^2/(d Psi)) and E W^2 exp(-W^2/(d Psi)); ``df = inf`` is the Gaussian
    limit, where the paper's closed forms chi(d) and Psi (d/(d+2))^{3/2} hold. Returns
    all four integrals of :func:`prunebounds.gaussianity.rule_expectations_quad` (the
    chapter uses ``keep`` and ``m2``).
    """
    psi = check_real("psi", psi, minimum=0.0)
    if math.isinf(df):
        sd = math.sqrt(psi)

        def pdf(w: float) -> float:
            return math.exp(-0.5 * (w / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))
    else:
        s = student_t_scale(df, psi)
        log_c = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
                 - 0.5 * math.log(df * math.pi) - math.log(s))

        def pdf(w: float) -> float:  # the Student-t density, as scipy.stats.t(df, scale=s)
            return math.exp(log_c - (df + 1) / 2 * math.log1p((w / s) ** 2 / df))
    return rule_expectations_quad(pdf, d, psi)


@dataclass(frozen=True)
class MonteCarloRule:
    """One Monte Carlo draw of rule (R) on a matrix (see :func:`student_t_monte_carlo`)."""

    keep: float         # kept fraction
    m2: float           # mean of Delta_ij^2
    delta_norm: float   # ||Delta||_2


def student_t_monte_carlo(df: float, d: float, shape: tuple[int, int], seed: int,
                          psi: float = 1.0) -> MonteCarloRule:
    """Monte Carlo of :func:`student_t_rule` on one matrix, plus its ||Delta||_2 (ours).

    Draws a ``shape`` matrix of s T_df entries with variance Psi, prunes it by rule (R)
    with the matrix's own empirical variance (as the paper's rule does) and returns the
    kept fraction, the mean of Delta_ij^2 and the spectral norm of Delta.
    """
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if math.isinf(df):
        w = rng.normal(scale=math.sqrt(psi), size=n)
    else:
        w = student_t_scale(df, psi) * rng.standard_t(df, size=n)
    W = w.reshape(shape)
    keep = rng.random(shape) < pruning.keep_probability(W, d, float(W.var()))
    delta = np.where(keep, 0.0, W)
    return MonteCarloRule(keep=float(keep.mean()), m2=float((delta ** 2).mean()),
                          delta_norm=spectral_norm(delta))
