"""Every bound of one network at once, and the bounds over the pruning parameter d.

* :func:`all_bounds`: the paper's bound, the counting bounds and the norm-based
  baselines (:mod:`prunebounds.baselines`) for one network, keyed by name;
  :func:`bounds_table` lays them out as rows;
* :func:`bounds_over_d`: the bounds that depend on d, for each d of a grid (the sweep the
  bound chapter draws and ``benchmarks/bounds_sweep.py`` times), one
  :class:`BoundsAtD` per d.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .baselines import (authors_bartlett2017, authors_neyshabur2015, authors_neyshabur2018,
                        bartlett2017_bound, neyshabur2015_bound, neyshabur2018_bound,
                        nonzero_spectral_norms)
from .bounds import (Bound, authors_sketch_bound, counting_bound, dense_count_bound,
                     paper_bound, sketch_bound, sparse_count_bound)
from .margins import error_rate, logits
from .pruning import expected_keep_fraction, paper_rule_sweep, prune_paper
from .validate import check_int, check_weights

__all__ = ["all_bounds", "bounds_table", "BoundsAtD", "bounds_over_d"]


def all_bounds(weights, init_weights, input_norm: float, X_norm_fro: float,
               gamma: float, m: int, delta: float, empirical_margin_loss: float, *,
               r: int = 256, n_classes: int | None = None,
               k_list: Sequence[int] | None = None,
               nnz_per_layer: Sequence[int] | None = None,
               keep_fraction=None, authors_loss: float | None = None,
               spectral_norms: Sequence[float] | None = None) -> dict[str, Bound]:
    """Every bound of this module for one network, keyed by name.

    Args:
        weights: the (possibly pruned) network's weight matrices, out x in.
        init_weights: its initial weights, Bartlett et al.'s reference matrices
            (``None``: zero reference).
        input_norm: B = max_i ||x_i||_2 over the training inputs.
        X_norm_fro: sqrt(sum_i ||x_i||_2^2) over the m training inputs.
        gamma, m, delta: margin, training-set size, failure probability.
        empirical_margin_loss: R^_gamma on the training set, shared by all bounds.
        r: values per parameter for the counting bounds (default 256, an 8-bit grid;
            Arora et al. leave r to the user -- state it with any result).
        n_classes: for Neyshabur 2015 (default: the output dimension).
        k_list: sketch sizes k_l; adds ``"sketch"`` (the paper's Theorem 5.2).
        nnz_per_layer: non-zeros per layer for Lemma D.1 (default: counted in
            ``weights``).
        keep_fraction: chi (scalar or per layer); adds ``"authors_sketch"``.
        authors_loss: R^ at the authors' needed margin for ``"authors_sketch"``
            (default: ``empirical_margin_loss``).
        spectral_norms: ||A^l||_2 of ``weights`` when already known (a sweep computes
            them once); default: computed here, once, and shared by every norm bound.

    Returns:
        name -> :class:`Bound`. Bounds on the 0-1 error: ``dense_count``,
        ``sparse_count``, ``neyshabur2015``, ``bartlett2017``, ``neyshabur2018``, and
        optionally ``sketch``, ``authors_sketch``. The authors' unnormalised measures
        ``authors_neyshabur2015``, ``authors_bartlett2017``, ``authors_neyshabur2018``
        have ``on_probability=False`` (their size says nothing about vacuity).
    """
    ws = check_weights(weights)
    shapes = [tuple(w.shape) for w in ws]
    spec = nonzero_spectral_norms(ws, spectral_norms)   # once, shared by every bound below
    if nnz_per_layer is None:
        nnz_per_layer = [int(torch.count_nonzero(w)) for w in ws]
    out: dict[str, Bound] = {
        "dense_count": dense_count_bound(empirical_margin_loss, sum(w.numel() for w in ws), r, m),
        "sparse_count": sparse_count_bound(empirical_margin_loss, nnz_per_layer, shapes, r, m),
    }
    if k_list is not None:
        out["sketch"] = sketch_bound(empirical_margin_loss, k_list, r, m)
    if keep_fraction is not None:
        out["authors_sketch"] = authors_sketch_bound(
            empirical_margin_loss if authors_loss is None else authors_loss,
            shapes, keep_fraction, m)
    out["neyshabur2015"] = neyshabur2015_bound(
        ws, input_norm, gamma, m, delta=delta,
        empirical_margin_loss=empirical_margin_loss, n_classes=n_classes)
    out["bartlett2017"] = bartlett2017_bound(
        ws, init_weights, X_norm_fro, gamma, m, delta,
        empirical_margin_loss=empirical_margin_loss, spectral_norms=spec)
    out["neyshabur2018"] = neyshabur2018_bound(
        ws, input_norm, gamma, m, delta, empirical_margin_loss=empirical_margin_loss,
        spectral_norms=spec)
    for name, v in (("authors_neyshabur2015", authors_neyshabur2015(ws, gamma)),
                    ("authors_bartlett2017", authors_bartlett2017(ws, gamma, spectral_norms=spec)),
                    ("authors_neyshabur2018", authors_neyshabur2018(ws, gamma, spectral_norms=spec))):
        out[name] = Bound(name, float(v), {"measure": float(v)}, {}, on_probability=False)
    return out


def bounds_table(bounds: Mapping[str, Bound]) -> list[dict[str, object]]:
    """Rows for a table (e.g. ``pandas.DataFrame(bounds_table(all_bounds(...)))``).

    One row per bound: name, value, whether it is vacuous, its dominant term, and
    every additive term as its own column (``term:<name>``).
    """
    rows = []
    for name, b in bounds.items():
        row: dict[str, object] = {"bound": name, "value": b.value, "vacuous": b.vacuous,
                                  "dominant_term": b.dominant_term}
        row.update({f"term:{k}": v for k, v in b.terms.items()})
        rows.append(row)
    return rows


@dataclass(frozen=True)
class BoundsAtD:
    """The bounds that depend on the pruning parameter, at one d (see :func:`bounds_over_d`)."""

    d: float
    needed: float        # the authors' needed margin eps(d)
    loss: float          # R^_eps(d)(f)
    paper: float         # the paper's bound (Theorem 5.2, reconstructed)
    paper_nolog: float   # ... with ln r replaced by 1
    n_capped: float      # layers whose sketch is capped at the layer
    authors: float       # the authors' evaluation, with chi(d)
    sparse: float        # Lemma D.1 count, confidence term written out
    kept: float          # fraction of all weights kept
    test_err: float | None = None  # the pruned network's test error, when asked


def bounds_over_d(probe, model, train_margins, ds: Sequence[float], seed: int, *,
                  r: int = 256, delta: float = 0.05, test=None) -> list[BoundsAtD]:
    """The bounds that depend on the pruning parameter, for each d in ``ds``.

    For each d: the weights of ``prune_paper(model, d, seed)`` (the paper's rule; drawn
    by :func:`prunebounds.pruning.paper_rule_sweep`, which gives the same matrices
    without copying the model), the authors' needed margin eps(d) from ``probe`` (a
    :class:`prunebounds.perturbation.PruningProbe` of ``model`` on the training set:
    one spectral norm of Delta^l per layer, the weight norms are reused), and the
    paper's bound (:func:`prunebounds.bounds.paper_bound`), the authors' evaluation
    (:func:`prunebounds.bounds.authors_sketch_bound` with chi(d)) and the Lemma D.1
    count (:func:`prunebounds.bounds.sparse_count_bound`, confidence term written out
    as in :func:`prunebounds.bounds.counting_bound`), all at the margin loss
    R^_eps(d)(f). The norm-based baselines do not depend on d: compute them once with
    :func:`all_bounds`.

    Args:
        train_margins: the unpruned network's training margins (m = their number).
        test: optional split with ``X`` and ``y``; adds the pruned network's test
            error (:func:`prunebounds.margins.error_rate`, one forward pass per d, on a
            pruned copy of ``model``).
    """
    mg = torch.as_tensor(train_margins).detach().to(torch.float64).flatten()
    m = int(mg.numel())
    seed = check_int("seed", seed, minimum=0)
    out = []
    for d, Wg in paper_rule_sweep(model, ds, seed):
        eps = probe.needed_margin(Wg).value
        pb = paper_bound(mg, eps, Wg, r=r, delta=delta)
        loss = pb.terms["empirical_margin_loss"]
        ab = authors_sketch_bound(loss, Wg, float(expected_keep_fraction(d)), m)
        nnz = [int(torch.count_nonzero(w)) for w in Wg]
        shapes = [tuple(w.shape) for w in Wg]
        sc = sparse_count_bound(loss, nnz, shapes, r, m)
        test_err = None
        if test is not None:
            test_err = error_rate(logits(prune_paper(model, d, seed), test.X), test.y)
        out.append(BoundsAtD(
            d=float(d), needed=eps, loss=loss, paper=pb.value,
            paper_nolog=pb.details["value_without_log_r"], n_capped=pb.details["n_capped"],
            authors=ab.value,
            sparse=counting_bound("sparse_count", loss, sc.details["q_nats"], m, delta).value,
            kept=sum(nnz) / sum(a * b for a, b in shapes), test_err=test_err))
    return out
