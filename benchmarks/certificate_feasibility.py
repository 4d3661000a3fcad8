"""Feasibility of the certificate (issue 14): how small a valid Occam-kl bound, at what cost.

Trains LeNet-300-100 on all 60,000 MNIST training images, prunes it gradually (global
magnitude, optionally also removing hidden units by the product of their incoming and
outgoing weight norms) with masked fine-tuning, retrains the last levels, then for each
level and b: fine-tunes the k-means codebook, encodes, decodes, checks the round trip
and bounds the error (delta = 0.05, m = 60,000). Prints one JSON line per certificate.

    PYTHONPATH=src nice -n 10 python benchmarks/certificate_feasibility.py --units
    PYTHONPATH=src python benchmarks/certificate_feasibility.py --paper   # the paper MLP

``--paper`` trains the paper's MLP (784-784x4-10) instead and certifies it pruned by the
paper's rule over d in {1, 2.5, 5, 10} and by magnitude at equal sparsity. Runs on the
CPU with one thread (``--threads``); timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn

from prunebounds import certificate as K
from prunebounds import coding as C
from prunebounds.data import load
from prunebounds.models import build, linear_layers
from prunebounds.pruning import kept_fractions, prune_like, prune_paper
from prunebounds.train import make_sgd, optimiser_config, train_epoch

# (hidden units of layer 1, of layer 2, fraction of all weights kept)
UNIT_SCHEDULE = [(200, 80, 0.3), (150, 70, 0.12), (100, 60, 0.05), (70, 50, 0.025),
                 (55, 40, 0.015), (45, 35, 0.01), (40, 30, 0.007), (35, 25, 0.005),
                 (30, 20, 0.0035), (25, 17, 0.0025), (21, 14, 0.0018)]


def masked_training(net, masks, X, y, epochs, gen, cosine=False):
    """SGD (the book's MNIST preset) with the pruned weights held at zero."""
    layers = linear_layers(net)
    sgd = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(sgd, epochs * math.ceil(len(y) / 256))
             if cosine else None)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(256):
            loss = nn.functional.cross_entropy(net(X[idx]), y[idx])
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            if sched is not None:
                sched.step()
            with torch.no_grad():
                for layer, mask in zip(layers, masks):
                    layer.weight.mul_(mask)


def prune_step(net, masks, keep, units):
    layers = linear_layers(net)
    if units is not None:
        for l, h in enumerate(units):
            w_in, w_out = layers[l].weight.detach(), layers[l + 1].weight.detach()
            score = w_in.norm(dim=1) * w_out.norm(dim=0)
            drop = score.argsort()[: len(score) - h]
            masks[l][drop, :] = False
            masks[l + 1][:, drop] = False
    n = sum(m.numel() for m in masks)
    scores = torch.cat([(l.weight.detach().abs() * m).flatten() for l, m in zip(layers, masks)])
    threshold = scores.kthvalue(scores.numel() - int(round(keep * n))).values
    return [m & (l.weight.detach().abs() > threshold) for l, m in zip(layers, masks)]


def certificates(net, data, bits, tag):
    X, y = data.train.X, data.train.y
    for b in bits:
        start = time.perf_counter()
        spec = C.CodeSpec(bits=b, bias_bits=4)
        tuned = C.finetune_codebook(net, spec, X, y, epochs=3, lr=3e-3)
        cert = K.certify(tuned, spec, X, y, delta=0.05, X_test=data.test.X, y_test=data.test.y)
        print(json.dumps({**tag, "bits": b, "bound": round(cert.bound, 4),
                          "train_error": cert.train_error, "test_error": cert.test_error,
                          "code_bits": cert.code_bits, "n_kept": cert.n_kept,
                          "parts": cert.breakdown.as_dict(),
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)


def lenet(args, data):
    X, y = data.train.X, data.train.y
    gen = torch.Generator().manual_seed(0)
    net = build("lenet-300-100", 0)
    opt = optimiser_config("paper-mnist")
    sgd = make_sgd(net, opt)
    for _ in range(args.dense_epochs):
        train_epoch(net, X, y, sgd, opt, gen)
    masks = [torch.ones_like(l.weight, dtype=torch.bool) for l in linear_layers(net)]
    for h1, h2, keep in UNIT_SCHEDULE:
        masks = prune_step(net, masks, keep, (h1, h2) if args.units else None)
        masked_training(net, masks, X, y, 2, gen)
        if keep <= args.certify_below:
            saved = {k: v.clone() for k, v in net.state_dict().items()}
            masked_training(net, masks, X, y, args.retrain_epochs, gen, cosine=True)
            tag = {"network": "lenet-300-100", "units": args.units, "keep": keep,
                   "elapsed": round(time.perf_counter() - T0)}
            certificates(net, data, args.bits, tag)
            net.load_state_dict(saved)


def paper(args, data):
    X, y = data.train.X, data.train.y
    net = build("paper-mnist", 0)
    opt = optimiser_config("paper-mnist")
    sgd, gen = make_sgd(net, opt), torch.Generator().manual_seed(0)
    for _ in range(args.dense_epochs):
        train_epoch(net, X, y, sgd, opt, gen)
    for d in (1.0, 2.5, 5.0, 10.0):
        pruned = prune_paper(net, d, seed=0)
        for kind, p in (("paper", pruned), ("magnitude", prune_like(net, pruned))):
            spec = C.CodeSpec(bits=2, bias_bits=4)
            cert = K.certify(p, spec, X, y, X_test=data.test.X, y_test=data.test.y)
            print(json.dumps({"network": "paper-mnist", "d": d, "rule": kind,
                              "keep": kept_fractions(p), "bound": cert.bound,
                              "train_error": cert.train_error, "test_error": cert.test_error,
                              "code_bits": cert.code_bits, "parts": cert.breakdown.as_dict()}),
                  flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true", help="the paper's MLP instead of LeNet")
    parser.add_argument("--units", action="store_true", help="also prune hidden units")
    parser.add_argument("--dense-epochs", type=int, default=8)
    parser.add_argument("--retrain-epochs", type=int, default=8)
    parser.add_argument("--certify-below", type=float, default=0.0075)
    parser.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    T0 = time.perf_counter()
    mnist = load("mnist", train_fraction=1.0)
    (paper if args.paper else lenet)(args, mnist)
