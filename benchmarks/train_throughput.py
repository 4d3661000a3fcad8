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
prunebounds / matmul bound (target <= 2).

When CUDA is available it also times, in the same run and on the GPU, with the data moved
there once:

4. ``trainer``: :func:`prunebounds.train.train_epoch` (batch order from the CPU
   generator, moved once per epoch; loss and correct-count sums kept on the device, read
   once per epoch);
5. ``plain loop``: the shortest correct device loop: ``randperm`` on the device, forward,
   loss, backward, step, nothing summed and nothing read back;

and prints seconds per epoch (mean of ``--cuda-epochs`` after one warm-up epoch) and
the ratio trainer / plain loop (targets: <= 1.2, and <= 0.3 s per paper-MLP epoch on an
H200). ``--cuda-only`` skips the CPU measurements. Nothing is asserted: machines are
noisy.
"""

from __future__ import annotations

import argparse
import time

import torch

from prunebounds import data, models
from prunebounds.errors import DataUnavailableError
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


def _cuda_epochs(step_epoch, epochs: int) -> float:
    """Mean seconds of ``epochs`` calls of ``step_epoch`` after one warm-up call."""
    step_epoch()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(epochs):
        step_epoch()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / epochs


def time_trainer_cuda(arch: str, bundle: data.DataBundle, epochs: int) -> float:
    """Seconds per epoch of the package's train_epoch with model and data on the GPU."""
    opt = OPTIMISERS["paper-mnist"]
    gpu = bundle.to("cuda")
    net = models.build(arch, 0).cuda()
    sgd = make_sgd(net, opt)
    gen = torch.Generator().manual_seed(0)
    return _cuda_epochs(lambda: train_epoch(net, gpu.train.X, gpu.train.y, sgd, opt, gen), epochs)


def time_plain_loop_cuda(arch: str, bundle: data.DataBundle, epochs: int) -> float:
    """Seconds per epoch of a bare device loop (nothing summed, nothing read back)."""
    opt = OPTIMISERS["paper-mnist"]
    gpu = bundle.to("cuda")
    X, y = gpu.train.X, gpu.train.y
    net = models.build(arch, 0).cuda()
    sgd = make_sgd(net, opt)

    def epoch() -> None:
        for idx in torch.randperm(len(y), device="cuda").split(opt.batch_size):
            loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()

    return _cuda_epochs(epoch, epochs)


def cuda_report(archs: list[str], bundle: data.DataBundle, epochs: int) -> None:
    print(f"CUDA: {torch.cuda.get_device_name(0)}, {len(bundle.train)} training samples, "
          f"{epochs} timed epochs after a warm-up")
    print(f"{'architecture':<16}{'trainer s/epoch':>17}{'plain loop s/epoch':>20}"
          f"{'trainer/plain':>15}")
    for arch in archs:
        ours = time_trainer_cuda(arch, bundle, epochs)
        plain = time_plain_loop_cuda(arch, bundle, epochs)
        print(f"{arch:<16}{ours:>17.3f}{plain:>20.3f}{ours / plain:>15.2f}")
    print("targets: trainer/plain <= 1.2; paper-mnist <= 0.3 s per epoch on an H200")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", nargs="+", default=["paper-mnist", "lenet-300-100"])
    parser.add_argument("--batches", type=int, default=40,
                        help="DataLoader batches to time (scaled to an epoch)")
    parser.add_argument("--cuda-epochs", type=int, default=5,
                        help="epochs timed on the GPU (after one warm-up epoch)")
    parser.add_argument("--cuda-only", action="store_true",
                        help="skip the CPU measurements (GPU comparison only)")
    args = parser.parse_args()
    try:
        bundle = data.load("mnist")
    except DataUnavailableError as exc:
        raise SystemExit(f"MNIST is needed for this benchmark: {exc}") from None
    if torch.cuda.is_available():
        cuda_report(args.arch, bundle, args.cuda_epochs)
        if args.cuda_only:
            return
    elif args.cuda_only:
        raise SystemExit("--cuda-only: no CUDA device on this machine")
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
