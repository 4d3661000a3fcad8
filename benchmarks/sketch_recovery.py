"""Time sketch recovery (Dasarathy et al. 2015) at the size of the paper's layers.

(a) Douglas-Rachford recovery (prunebounds.sketching.recover_first_order) of one
    p x p Gaussian matrix pruned by the paper's rule at parameter d (keep w.p.
    1 - exp(-w^2/(d Psi))), from a k x k sketch; optionally a sweep over k to locate
    the smallest sketch that still recovers the layer.
(b) HiGHS basis pursuit (recover_linprog) on growing sizes until one does not finish
    within the budget, and the first-order solver on the largest size that did, with
    the speed ratio at equal size.

Run ``python benchmarks/sketch_recovery.py`` (minutes) or ``--quick`` (about a minute).
Wall times on a shared machine vary a lot; CPU seconds are printed beside them.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from prunebounds.sketching import (
    bipartite_adjacency,
    default_degree,
    recover_first_order,
    recover_linprog,
    sketch,
)

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def pruned_gaussian(p: int, d: float, seed: int) -> np.ndarray:
    """A p x p N(0, 1) matrix pruned by the paper's rule: keep w.p. 1 - exp(-w^2/(d Psi))."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((p, p))
    keep = rng.random((p, p)) < -np.expm1(-W ** 2 / (d * W.var()))
    return W * keep


def make_instance(p: int, k: int, d: float, seed: int):
    X = pruned_gaussian(p, d, seed)
    s = default_degree(p)
    A = bipartite_adjacency(k, p, s, seed + 1)
    B = bipartite_adjacency(k, p, s, seed + 2)
    return X, A, B, sketch(X, A, B)


def rel_err(X, ref: np.ndarray) -> float:
    X = X.cpu().numpy() if isinstance(X, torch.Tensor) else X
    return float(np.linalg.norm(X - ref) / np.linalg.norm(ref))


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def row(*cells) -> str:
    widths = (16, 5, 5, 8, 7, 9, 6, 8, 8, 8)
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


HEADER = row("method", "p", "k", "nnz", "max/row", "rel.err", "iters", "wall s", "cpu s", "gap")


def first_order_row(label: str, X, A, B, Y, args, dtype=torch.float64, max_iter=3000):
    res, wall, cpu = timed(recover_first_order, Y, A, B, dtype=dtype, threads=args.threads,
                           max_iter=max_iter)
    gap = "-" if res.duality_gap is None else f"{res.duality_gap:.0e}"
    print(row(label, X.shape[0], A.shape[0], int(np.count_nonzero(X)),
              int(np.count_nonzero(X, axis=1).max()), f"{rel_err(res.X, X):.1e}",
              res.iterations, f"{wall:.2f}", f"{cpu:.2f}", gap), flush=True)
    return wall


def layer_benchmark(args) -> None:
    k = args.k or math.ceil(args.k_ratio * args.p)
    chi = 1 - math.sqrt(args.d / (args.d + 2))
    print(f"\n(a) one pruned {args.p}x{args.p} layer, d = {args.d} (chi = {chi:.3f}), "
          f"sketch {k}x{k}, s = {default_degree(args.p)} ones per column")
    X, A, B, Y = make_instance(args.p, k, args.d, args.seed)
    print(HEADER)
    for name in args.dtypes:
        first_order_row(f"DR {name}", X, A, B, Y, args, DTYPES[name])
    if args.sweep:
        print(f"\n    sweep over k (float32 iterations, at most {args.sweep_iter} steps)")
        print(HEADER)
        for kk in args.sweep:
            A, B = (bipartite_adjacency(kk, args.p, default_degree(args.p), args.seed + i)
                    for i in (1, 2))
            first_order_row("DR sweep", X, A, B, sketch(X, A, B), args, torch.float32,
                            args.sweep_iter)


def linprog_benchmark(args) -> None:
    print(f"\n(b) HiGHS linprog on growing sizes (k = ceil({args.lp_k_ratio} p), d = {args.d},"
          f" time limit {args.lp_budget:.0f} s)")
    print(HEADER)
    largest = None
    for p in args.lp_sizes:
        X, A, B, Y = make_instance(p, math.ceil(args.lp_k_ratio * p), args.d, args.seed)
        res, wall, cpu = timed(recover_linprog, Y, A, B, time_limit=args.lp_budget)
        err = f"{rel_err(res.X, X):.1e}" if res.converged else "-"
        print(row("linprog", p, A.shape[0], int(np.count_nonzero(X)),
                  int(np.count_nonzero(X, axis=1).max()), err, res.iterations,
                  f"{wall:.2f}", f"{cpu:.2f}", "-"), flush=True)
        if not res.converged:
            print(f"    p = {p} did not finish within {args.lp_budget:.0f} s: {res.message}")
            break
        largest = (X, A, B, Y, wall)
    if largest is None:
        return
    X, A, B, Y, lp_wall = largest
    fo_wall = first_order_row("DR float64", X, A, B, Y, args)
    print(f"    at p = {X.shape[0]}: linprog {lp_wall:.2f} s, first order {fo_wall:.2f} s, "
          f"ratio {lp_wall / fo_wall:.0f}x")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    ap.add_argument("--p", type=int, default=784, help="layer size for (a)")
    ap.add_argument("--d", type=float, default=5.0, help="pruning parameter d")
    ap.add_argument("--k", type=int, default=None, help="sketch size for (a)")
    ap.add_argument("--k-ratio", type=float, default=0.75, help="k = ceil(ratio p) if no --k")
    ap.add_argument("--dtypes", default="float64,float32",
                    help="working precisions of the Douglas-Rachford steps")
    ap.add_argument("--sweep", default="", help="comma-separated k values to sweep in (a)")
    ap.add_argument("--sweep-iter", type=int, default=800)
    ap.add_argument("--lp-sizes", default="20,40,60,80,100,120,140")
    ap.add_argument("--lp-k-ratio", type=float, default=0.8)
    ap.add_argument("--lp-budget", type=float, default=60.0, help="seconds per linprog")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default); 1 is robust when shared")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.p, args.lp_sizes, args.lp_budget = 300, "20,30,40", 20.0
    args.dtypes = [t for t in args.dtypes.split(",") if t]
    unknown = set(args.dtypes) - set(DTYPES)
    if unknown:
        ap.error(f"unknown dtype(s) {sorted(unknown)}; valid: {', '.join(DTYPES)}")
    args.sweep = [int(v) for v in args.sweep.split(",") if v]
    args.lp_sizes = [int(v) for v in args.lp_sizes.split(",") if v]
    args.threads = args.threads or None
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    print(f"torch {torch.__version__}, threads: "
          f"{args.threads or torch.get_num_threads()}, seed {args.seed}")
    layer_benchmark(args)
    linprog_benchmark(args)


if __name__ == "__main__":
    main()
