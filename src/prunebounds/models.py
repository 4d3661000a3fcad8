"""ReLU multilayer perceptrons f_A(x) = A^L phi(A^{L-1} phi(... phi(A^1 x))).

The paper's networks (and LeNet-300-100, and the small smoke network) are fully
connected ReLU networks with biases; the residual CNN and the vision transformer are in
:mod:`prunebounds.zoo`. PyTorch stores a
layer's weight A^l as an (out x in) matrix, i.e. d_2^l x d_1^l in the paper's
(fan-in d_1, fan-out d_2) notation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import ParameterError

ARCHITECTURES: dict[str, tuple[int, ...]] = {
    "paper-mnist": (784, 784, 784, 784, 784, 10),      # the paper's MNIST network
    "paper-cifar10": (3072, 2000, 2000, 2000, 2000, 10),  # the paper's CIFAR-10 network
    "lenet-300-100": (784, 300, 100, 10),               # Frankle & Carbin's LeNet
    "smoke": (784, 64, 64, 10),                          # seconds on a CPU, for tests
}


def resolve_widths(arch: str | Sequence[int]) -> tuple[int, ...]:
    """Widths (input, hidden..., output) from a preset name or an explicit list."""
    if isinstance(arch, str):
        if arch not in ARCHITECTURES:
            raise ParameterError(
                f"unknown architecture {arch!r}; valid values: {', '.join(ARCHITECTURES)}"
                " (or a list of positive layer widths)"
            )
        return ARCHITECTURES[arch]
    widths = tuple(arch)
    if len(widths) < 2 or any(
        isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths
    ):
        raise ParameterError(
            f"widths must be a list of at least two positive integers, got {list(widths)}"
        )
    return widths


class MLP(nn.Sequential):
    """Fully connected ReLU network with the given widths (no ReLU after the last layer)."""

    def __init__(self, widths: str | Sequence[int], bias: bool = True):
        widths = resolve_widths(widths)
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(n_in, n_out, bias=bias))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        self.widths = widths


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's linear layers in forward order."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """Detached copies-free views of the weight matrices A^1, ..., A^L (out x in)."""
    return [layer.weight.detach() for layer in linear_layers(model)]


def build(arch: str | Sequence[int], seed: int) -> MLP:
    """A freshly initialised MLP; the same seed gives bit-identical weights."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        return MLP(arch)
    finally:
        torch.random.set_rng_state(gen_state)
