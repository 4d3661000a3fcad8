"""Time to evaluate every bound over a sweep of the pruning parameter d.

    python benchmarks/bounds_sweep.py [--n-d 100] [--baseline-n-d 10] [--profile quick]

For the profile's trained network (from the results cache; trained if missing) this
times what the bound chapter computes for a sweep over d:

* once: every d-independent bound of :func:`prunebounds.sweeps.all_bounds` for the
  trained network (the norm-based baselines and the dense count) and the
  :class:`prunebounds.perturbation.PruningProbe` (weight norms, input norm, logits);
* per d (:func:`prunebounds.sweeps.bounds_over_d`): one draw of the paper's pruning
  rule (fixed seed), the spectral norm of each Delta^l (Lanczos) for the authors'
  needed margin, the paper's bound, the authors' evaluation and the Lemma D.1 count.

The baseline, timed in the same run over ``--baseline-n-d`` values and scaled to
``--n-d``, is the straightforward loop: a new probe per d, every spectral norm by a full
SVD (``torch.linalg.matrix_norm(ord=2)``), and every bound of ``all_bounds`` recomputed
for the pruned network at each d. Target: the sweep of 100 values in <= 10 s on 2
cores. Nothing is asserted; both times and their ratio are printed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from prunebounds import bounds, data, margins, models, profiles, runs, sweeps
from prunebounds.perturbation import PruningProbe
from prunebounds.pruning import expected_keep_fraction, prune_paper

R, DELTA = 256, 0.05


def package_sweep(model, init, X, y, m_train, ds, seed: int) -> float:
    start = time.perf_counter()
    gamma = margins.margin_percentile(m_train, 5.0)
    sweeps.all_bounds(models.weight_matrices(model), models.weight_matrices(init),
                      float(X.norm(dim=1).max()), float(X.norm(dim=1).pow(2).sum().sqrt()),
                      gamma, len(y), DELTA, margins.margin_loss(m_train, gamma), r=R)
    probe = PruningProbe(model, X, y, norm_method="lanczos")
    sweeps.bounds_over_d(probe, model, m_train, ds, seed, r=R, delta=DELTA)
    return time.perf_counter() - start


def baseline_sweep(model, init, X, y, m_train, ds, seed: int) -> float:
    start = time.perf_counter()
    x_fro = float(X.norm(dim=1).pow(2).sum().sqrt())
    init_w = models.weight_matrices(init)
    for d in ds:
        probe = PruningProbe(model, X, y, norm_method="svd")
        pruned = prune_paper(model, float(d), seed)
        eps = max(probe.evaluate(pruned, true_error=False).authors.value, 1e-6)
        W = models.weight_matrices(pruned)
        spec = [float(torch.linalg.matrix_norm(w.double(), ord=2)) for w in W]
        sweeps.all_bounds(W, init_w, probe.input_norm, x_fro, eps, len(y), DELTA,
                          margins.margin_loss(m_train, eps), r=R, spectral_norms=spec,
                          keep_fraction=float(expected_keep_fraction(float(d))))
        bounds.paper_bound(m_train, eps, W, r=R, delta=DELTA)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--n-d", type=int, default=100)
    parser.add_argument("--baseline-n-d", type=int, default=10)
    args = parser.parse_args()
    P = profiles.resolve(args.profile)
    run = runs.train_cached(runs.RunConfig.from_profile(P))
    D = data.load(P.dataset, max_train=P.max_train)
    X, y = D.train.X, D.train.y
    m_train = margins.margins(margins.logits(run.model, X), y)
    ds = np.geomspace(1e-6, 10.0, args.n_d)
    fast = package_sweep(run.model, run.model_at(0), X, y, m_train, ds, P.seed)
    base_ds = np.geomspace(1e-6, 10.0, args.baseline_n_d)
    base = baseline_sweep(run.model, run.model_at(0), X, y, m_train, base_ds, P.seed)
    base_scaled = base * args.n_d / args.baseline_n_d
    print(f"threads {torch.get_num_threads()}, widths {run.config.widths}, m = {len(y)}")
    print(f"prunebounds sweep ({args.n_d} values of d, Lanczos, norms reused): {fast:.1f} s "
          f"(target <= 10 s)")
    print(f"baseline (full SVD, nothing reused; {args.baseline_n_d} values scaled to "
          f"{args.n_d}): {base_scaled:.1f} s")
    print(f"ratio baseline / prunebounds: {base_scaled / fast:.1f}")


if __name__ == "__main__":
    main()
