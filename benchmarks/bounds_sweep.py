"""Time to evaluate every bound over a sweep of the pruning parameter d.

    python benchmarks/bounds_sweep.py [--n-d 100] [--baseline-n-d 10] [--profile quick]

For the profile's trained network (from the results cache; trained if missing), each
value of d costs: one draw of the paper's pruning rule, the spectral norms of the
pruning errors Delta^l (the needed margin and the perturbation bounds, via
:class:`prunebounds.perturbation.PruningProbe`), and every bound of
:func:`prunebounds.bounds.all_bounds` for the pruned network.

Two ways are timed in the same run: the package's sweep (Lanczos spectral norms,
weight norms computed once) over ``--n-d`` values, and a baseline that computes every
spectral norm with a full SVD (``torch.linalg.matrix_norm(ord=2)``) and nothing once,
over ``--baseline-n-d`` values, scaled to ``--n-d``. It prints both and their ratio
(target: the package's sweep of 100 values in <= 10 s on 2 cores). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from prunebounds import bounds, data, experiments, margins, models, profiles
from prunebounds.perturbation import PruningProbe
from prunebounds.pruning import expected_keep_fraction, prune_paper


def sweep(model, init, D, ds, norm_method: str, reuse_norms: bool) -> float:
    X, y = D.train.X, D.train.y
    m_train = margins.margins(margins.logits(model, X), y)
    x_fro = float(X.norm(dim=1).pow(2).sum().sqrt())
    start = time.perf_counter()
    probe = PruningProbe(model, X, y, norm_method=norm_method)
    init_w = models.weight_matrices(init)
    for i, d in enumerate(ds):
        pruned = prune_paper(model, float(d), seed=i)
        if not reuse_norms:
            probe = PruningProbe(model, X, y, norm_method=norm_method)
        res = probe.evaluate(pruned, true_error=False)
        gamma = max(res["authors"]["value"], 1e-6)
        bounds.all_bounds(models.weight_matrices(pruned), init_w, probe.input_norm, x_fro,
                          gamma, len(y), 0.05, margins.margin_loss(m_train, gamma),
                          keep_fraction=float(expected_keep_fraction(float(d))))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--n-d", type=int, default=100)
    parser.add_argument("--baseline-n-d", type=int, default=10)
    args = parser.parse_args()
    P = profiles.resolve(args.profile)
    run = experiments.train_cached(experiments.RunConfig.from_profile(P))
    D = data.load(P.dataset, max_train=P.max_train)
    ds = np.linspace(0.1, 10.0, args.n_d)
    fast = sweep(run.model, run.model_at(0), D, ds, "lanczos", reuse_norms=True)
    base_ds = np.linspace(0.1, 10.0, args.baseline_n_d)
    base = sweep(run.model, run.model_at(0), D, base_ds, "svd", reuse_norms=False)
    base_scaled = base * args.n_d / args.baseline_n_d
    print(f"threads {torch.get_num_threads()}, widths {run.config.widths}, m = {len(D.train)}")
    print(f"prunebounds sweep ({args.n_d} values of d, Lanczos, norms reused): {fast:.1f} s")
    print(f"baseline (full SVD, nothing reused; {args.baseline_n_d} values scaled to "
          f"{args.n_d}): {base_scaled:.1f} s")
    print(f"ratio baseline / prunebounds: {base_scaled / fast:.1f}")


if __name__ == "__main__":
    main()
