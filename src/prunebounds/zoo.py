"""The model zoo beyond MLPs: a small residual CNN and a small vision transformer.

The paper's argument (Guha, Dubey & Huo, arXiv 2305.18789) is stated for ReLU MLPs
f_A(x) = A^L phi(... phi(A^1 x)). The two networks here keep every weight a matrix, so
that the same pruning rule and the same measurements apply (their analysis is in
:mod:`prunebounds.beyond`):

* :class:`ResNet`: a bias-free residual convolutional network (no normalisation).
  A convolution with kernel W (out x in x kh x kw) computes, at every output
  position, W_unf @ patch, where W_unf = W.reshape(out, in kh kw) is the *unfolded*
  (im2col) matrix.
* :class:`ViT`: a vision transformer with pre-LayerNorm blocks; patch embedding,
  the query, key, value and output projections of attention, and the two layers of
  each MLP block are all ``nn.Linear`` matrices.
* :data:`MODELS`: constructors by name, used by :func:`prunebounds.runs.new_model`
  (``RunConfig(model="resnet-small", ...)``), so these networks are trained and cached
  like the MLPs. They take the *flat* inputs of :mod:`prunebounds.data` (n x 784 for
  MNIST, n x 3072 for CIFAR-10) and reshape them internally.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ParameterError
from .models import resolve_widths
from .validate import check_int

__all__ = [
    "IMAGE_SHAPES",
    "image_shape",
    "ConvReLU",
    "ResidualBlock",
    "ResNet",
    "Attention",
    "TransformerBlock",
    "ViT",
    "SIZES",
    "MODELS",
]

#: Flat input size -> image shape (channels, height, width) of the book's data sets.
IMAGE_SHAPES: dict[int, tuple[int, int, int]] = {784: (1, 28, 28), 3072: (3, 32, 32)}


def image_shape(widths: Sequence[int]) -> tuple[int, int, int]:
    """The (C, H, W) image behind a flat input of ``widths[0]`` features.

    ``widths`` is the width list of a :class:`prunebounds.runs.RunConfig`; for
    these networks only its first entry (input features) and last entry (classes)
    matter, e.g. ``(784, 10)`` for MNIST.
    """
    widths = resolve_widths(widths)
    if widths[0] not in IMAGE_SHAPES:
        raise ParameterError(f"input size {widths[0]} is not an image of the book's data "
                             f"sets; valid input sizes: {', '.join(map(str, IMAGE_SHAPES))}")
    return IMAGE_SHAPES[widths[0]]


# --------------------------------------------------------------------------- the residual network
class ConvReLU(nn.Module):
    """x -> relu(conv(x)), a bias-free 3 x 3 convolution (stride 1 or 2, padding 1)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class ResidualBlock(nn.Module):
    """x -> relu(x + W2 relu(W1 x)), W1 and W2 bias-free 3 x 3 convolutions.

    The basic block of He et al. (2016) without batch normalisation. Both maps are
    positively homogeneous and vanish at 0, which is what the perturbation bound of
    :func:`prunebounds.beyond.resnet_perturbation_bound` needs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ResNet(nn.Module):
    """A small residual convolutional network on flat image inputs.

    stem (3 x 3 conv, stride 2) -> ``blocks`` residual blocks at ``channels[0]`` ->
    for each further width: a 3 x 3 conv with stride 2, then ``blocks`` residual blocks
    -> linear head (with bias) on the flattened feature maps (7 x 7 for MNIST with two
    stages). Convolutions have no biases and there is no normalisation, so every stage
    is positively homogeneous, stage(c x) = c stage(x) for c >= 0, and maps 0 to 0.
    Convolutions are initialised as He et al. (2015) recommend for ReLU networks.
    (Global average pooling instead of the flattened head trained too slowly with the
    paper's SGD settings in the few hundred steps of the quick profile.)

    Args:
        widths: ``(input features, ..., classes)``; input 784 (MNIST) or 3072 (CIFAR-10).
        channels: channels of each stage (resolution halves between stages).
        blocks: residual blocks per stage.
    """

    def __init__(self, widths: Sequence[int], channels: Sequence[int] = (16, 32),
                 blocks: int = 1) -> None:
        super().__init__()
        self.widths = resolve_widths(widths)
        self.input_shape = image_shape(self.widths)
        channels = [check_int("channels", c, minimum=1) for c in channels]
        if not channels:
            raise ParameterError("channels must list at least one stage width")
        blocks = check_int("blocks", blocks, minimum=0)
        stages: list[nn.Module] = [ConvReLU(self.input_shape[0], channels[0], stride=2)]
        stages += [ResidualBlock(channels[0]) for _ in range(blocks)]
        for c_prev, c in zip(channels[:-1], channels[1:]):
            stages.append(ConvReLU(c_prev, c, stride=2))
            stages += [ResidualBlock(c) for _ in range(blocks)]
        self.stages = nn.Sequential(*stages)
        side = self.input_shape[1] // 2 ** len(channels)  # each stage halves (28 -> 14 -> 7)
        self.head = nn.Linear(channels[-1] * side * side, self.widths[-1])
        for m in self.stages.modules():  # He et al. (2015) initialisation for ReLU networks
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.input_shape)
        return self.head(self.stages(x).flatten(1))


# --------------------------------------------------------------------------- the vision transformer
class Attention(nn.Module):
    """Multi-head self-attention with separate query, key, value and output matrices.

    softmax(Q K^T / sqrt(d_h)) V per head, Q = x W_Q^T + b_Q etc.; the attention
    logits x W_Q^{hT} W_K^h x'^T are a *product* of two weight matrices.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ParameterError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, dim = x.shape

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(n, t, self.heads, dim // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.out(a.transpose(1, 2).reshape(n, t, dim))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + Attn(LN(x)), then x + MLP(LN(x)) with a ReLU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.relu(self.fc1(self.ln2(x))))


class ViT(nn.Module):
    """A small vision transformer on flat image inputs.

    The image is cut into a 4 x 4 grid of patches (7 x 7 pixels for MNIST, 8 x 8 for
    CIFAR-10), each patch embedded by one linear map, a learned position embedding
    added, ``depth`` pre-LN transformer blocks applied, a final LayerNorm, and a linear
    head on the 16 normalised tokens concatenated (no class token, no pooling: mean
    pooling trained too slowly with the paper's SGD settings in the few hundred steps
    of the quick profile). The MLP blocks use ReLU, as the paper's networks do.

    Args:
        widths: ``(input features, ..., classes)``.
        dim: token dimension. heads: attention heads. depth: blocks.
        mlp_ratio: hidden width of each MLP block over ``dim``.
    """

    def __init__(self, widths: Sequence[int], dim: int = 64, depth: int = 2, heads: int = 4,
                 mlp_ratio: int = 2) -> None:
        super().__init__()
        self.widths = resolve_widths(widths)
        self.input_shape = image_shape(self.widths)
        c, h, _ = self.input_shape
        self.patch = h // 4
        n_tokens = (h // self.patch) ** 2
        dim = check_int("dim", dim, minimum=1)
        self.embed = nn.Linear(c * self.patch ** 2, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_tokens, dim))
        self.blocks = nn.Sequential(*[TransformerBlock(dim, check_int("heads", heads, minimum=1),
                                                       check_int("mlp_ratio", mlp_ratio, minimum=1))
                                      for _ in range(check_int("depth", depth, minimum=0))])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(n_tokens * dim, self.widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.input_shape
        p = self.patch
        tokens = (x.reshape(x.shape[0], c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
                  .reshape(x.shape[0], (h // p) * (w // p), c * p * p))  # patches, (c, i, j) order
        z = self.blocks(self.embed(tokens) + self.pos)
        return self.head(self.ln(z).flatten(1))


#: Size presets of the two families ("tiny" for tests and the smoke profile).
SIZES: dict[str, dict[str, Any]] = {
    "resnet-tiny": dict(channels=(4, 8), blocks=1),
    "resnet-small": dict(channels=(16, 32), blocks=1),
    "vit-tiny": dict(dim=16, depth=1, heads=2, mlp_ratio=2),
    "vit-small": dict(dim=64, depth=2, heads=4, mlp_ratio=2),
}

#: Constructors by name: ``MODELS[name](widths)`` returns an initialised network
#: (seeded by :func:`prunebounds.runs.new_model`).
MODELS: dict[str, Callable[[tuple[int, ...]], nn.Module]] = {
    name: functools.partial(ResNet if name.startswith("resnet") else ViT, **kw)
    for name, kw in SIZES.items()
}
