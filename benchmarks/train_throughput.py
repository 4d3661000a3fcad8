"""Training throughput: one MNIST epoch with prunebounds.train against two baselines.

    python benchmarks/train_throughput.py [--batches N] [--arch paper-mnist lenet-300-100]

For each architecture, measured in the same run on this machine:

1. ``prunebounds``: one epoch of :func:`prunebounds.train.train_epoch` (tensors in memory,
   batches drawn by index);
2. ``DataLoader``: the conventional torchvision loop (``datasets.MNIST`` with
   ``ToTensor`` + ``Normalize``, ``DataLoader(shuffle=True)``), timed over ``--batches``
   batches and scaled to a full epoch (it is too slow to run whole);
3. ``matmul bound``: the time the epoch's matrix-multiply FLOPs (forward and backward,
   6 x samples x weights) take at the rate one large ``torch.matmul`` achieves.

It prints the ratios DataLoader / prunebounds (target >= 5) and
prunebounds / matmul bound (target <= 2). Nothing is asserted: machines are noisy.
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebounds import data, models
from prunebounds.train import OPTIMISERS, make_sgd, train_epoch


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of one large float32 matmul (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def time_prunebounds(arch: str, bundle: data.DataBundle) -> float:
    opt = OPTIMISERS["paper-mnist"]
    net = models.build(arch, 0)
    sgd = make_sgd(net, opt)
    gen = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    train_epoch(net, bundle.train.X, bundle.train.y, sgd, opt, gen)
    return time.perf_counter() - t


def time_dataloader(arch: str, n_batches: int, n_train: int) -> float:
    from torchvision import datasets, transforms

    opt = OPTIMISERS["paper-mnist"]
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    ds = datasets.MNIST(str(data.prepare("mnist")), train=True, download=False, transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=opt.batch_size, shuffle=True)
    net = models.build(arch, 0)
    sgd = make_sgd(net, opt)
    it = iter(loader)
    t = time.perf_counter()
    for _ in range(n_batches):
        xb, yb = next(it)
        loss = torch.nn.functional.cross_entropy(net(xb.flatten(1)), yb)
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        sgd.step()
    per_batch = (time.perf_counter() - t) / n_batches
    return per_batch * (n_train / opt.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", nargs="+", default=["paper-mnist", "lenet-300-100"])
    parser.add_argument("--batches", type=int, default=40,
                        help="DataLoader batches to time (scaled to an epoch)")
    args = parser.parse_args()
    bundle = data.load("mnist")
    n = len(bundle.train)
    rate = matmul_rate()
    print(f"threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"matmul rate {rate / 1e9:.1f} GFLOP/s, {n} training samples")
    print(f"{'architecture':<16}{'prunebounds s':>15}{'DataLoader s':>14}{'matmul s':>10}"
          f"{'DL/ours':>9}{'ours/matmul':>13}")
    for arch in args.arch:
        widths = models.resolve_widths(arch)
        n_weights = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        bound = 6 * n * n_weights / rate
        ours = time_prunebounds(arch, bundle)
        loader = time_dataloader(arch, args.batches, n)
        print(f"{arch:<16}{ours:>15.2f}{loader:>14.2f}{bound:>10.2f}"
              f"{loader / ours:>9.1f}{ours / bound:>13.2f}")


if __name__ == "__main__":
    main()
