"""Beyond MLPs: a small residual convolutional network and a small vision transformer.

The paper's argument (Guha, Dubey & Huo, arXiv 2305.18789) is stated for ReLU MLPs
f_A(x) = A^L phi(... phi(A^1 x)). This module builds two modern networks whose every
weight is still a matrix, so that the same pruning rule and the same measurements
apply, and provides what is needed to say which steps of the argument carry over:

* :class:`ResNet`: a bias-free residual convolutional network (no normalisation).
  A convolution with kernel W (out x in x kh x kw) computes, at every output
  position, W_unf @ patch, where W_unf = W.reshape(out, in kh kw) is the *unfolded*
  (im2col) matrix; as a map on whole images it is a large structured (block-Toeplitz)
  matrix in which every entry of W_unf appears once per output position.
* :class:`ViT`: a vision transformer with pre-LayerNorm blocks; patch embedding,
  the query, key, value and output projections of attention, and the two layers of
  each MLP block are all ``nn.Linear`` matrices.
* :data:`MODELS`: constructors by name, used by :func:`prunebounds.experiments.new_model`
  (``RunConfig(model="resnet-small", ...)``), so these networks are trained and cached
  like the MLPs. They take the *flat* inputs of :mod:`prunebounds.data` (n x 784 for
  MNIST, n x 3072 for CIFAR-10) and reshape them internally.
* :func:`weight_matrices_all` and :func:`prune_paper_all`: every weight matrix (convs
  unfolded, attention split into Q, K, V) and the paper's rule (R) applied to each with
  its own variance Psi, exactly as :func:`prunebounds.pruning.prune_paper` does for
  ``nn.Linear`` layers (the two agree mask for mask on an MLP).
* Measurements: the operator norm of a convolution (:func:`conv_operator_norm`) and its
  explicit matrix (:func:`conv_as_matrix`); a perturbation bound for the residual network
  (:func:`resnet_perturbation_bound`), where skip connections turn the product of norms
  of Neyshabur et al.'s lemma into a product of (1 + norm) factors; the first- and
  second-order parts of the error of attention's product of weights W_Q^T W_K
  (:func:`attention_product_errors`); the data-dependent gain of LayerNorm
  (:func:`layernorm_gains`); a pruning sweep (:func:`prune_sweep`) and per-matrix
  Gaussianity diagnostics (:func:`matrix_diagnostics`).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from .errors import ParameterError
from .margins import logits, margins
from .models import resolve_widths
from .perturbation import pruning_error
from .profiles import check_int, check_real
from .pruning import GaussianMagnitudePruning

__all__ = [
    "IMAGE_SHAPES",
    "image_shape",
    "ConvReLU",
    "ResidualBlock",
    "ResNet",
    "Attention",
    "TransformerBlock",
    "ViT",
    "MODELS",
    "SIZES",
    "weight_matrices_all",
    "prune_paper_all",
    "conv_as_matrix",
    "conv_operator_norm",
    "conv_input_shapes",
    "resnet_perturbation_bound",
    "attention_product_errors",
    "layernorm_gains",
    "matrix_diagnostics",
    "prune_sweep",
]

#: Flat input size -> image shape (channels, height, width) of the book's data sets.
IMAGE_SHAPES: dict[int, tuple[int, int, int]] = {784: (1, 28, 28), 3072: (3, 32, 32)}


def image_shape(widths: Sequence[int]) -> tuple[int, int, int]:
    """The (C, H, W) image behind a flat input of ``widths[0]`` features.

    ``widths`` is the width list of a :class:`prunebounds.experiments.RunConfig`; for
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
    :func:`resnet_perturbation_bound` needs.
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
#: (seeded by :func:`prunebounds.experiments.new_model`).
MODELS: dict[str, Callable[[tuple[int, ...]], nn.Module]] = {
    name: functools.partial(ResNet if name.startswith("resnet") else ViT, **kw)
    for name, kw in SIZES.items()
}


# --------------------------------------------------------------------------- matrices and the rule
def weight_matrices_all(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every weight matrix of ``model`` as ``(name, matrix)`` in forward (module) order.

    * ``nn.Linear``: the weight (out x in), as :func:`prunebounds.models.weight_matrices`.
    * ``nn.Conv2d``: the unfolded (im2col) matrix W.reshape(out, in kh kw) (a view):
      row o holds the kernel of output channel o, and conv(x) at one position is this
      matrix times the flattened patch under the kernel.
    * ``nn.MultiheadAttention`` (if a model uses it): ``in_proj_weight`` split into its
      query, key and value blocks (names ``...q``, ``...k``, ``...v``).

    Biases, normalisation parameters and embeddings that are not matrices of a linear
    map (position embeddings) are not included: the rule never prunes them.
    """
    out: list[tuple[str, torch.Tensor]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            out.append((name, module.weight.detach()))
        elif isinstance(module, nn.Conv2d):
            out.append((name, module.weight.detach().reshape(module.weight.shape[0], -1)))
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            for tag, block in zip("qkv", module.in_proj_weight.detach().chunk(3, dim=0)):
                out.append((f"{name}.{tag}" if name else tag, block))
    if not out:
        raise ParameterError("the model has no Linear, Conv2d or attention weights")
    return out


def prune_paper_all(model: nn.Module, d: float, seed: int) -> nn.Module:
    """A copy of ``model`` pruned by the paper's rule (R) in *every* weight matrix.

    The rule of :mod:`prunebounds.pruning` (drop w with probability
    exp(-w^2 / (d Psi)), Psi the matrix's population variance, no rescaling) applied to
    each matrix of :func:`weight_matrices_all`: ``nn.Linear`` weights, ``nn.Conv2d``
    kernels (Psi of the whole kernel = that of its unfolded matrix; the mask is drawn
    entry by entry, so it is the rule on the unfolded matrix) and, for
    ``nn.MultiheadAttention``, the Q, K and V blocks of ``in_proj_weight`` each with its
    own Psi. Biases, LayerNorm and position embeddings are kept. One generator seeded
    with ``seed`` draws the masks in module order with
    :meth:`prunebounds.pruning.GaussianMagnitudePruning.compute_mask`, so on an MLP the
    result equals :func:`prunebounds.pruning.prune_paper` exactly. d = 0 keeps all.
    """
    d = check_real("d", d, minimum=0.0)
    seed = check_int("seed", seed, minimum=0)
    pruned = copy.deepcopy(model)
    method = GaussianMagnitudePruning(d, torch.Generator().manual_seed(seed))

    def prune_(w: torch.Tensor) -> None:
        w.mul_(method.compute_mask(w, torch.ones_like(w)))

    found = False
    with torch.no_grad():
        for module in pruned.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                prune_(module.weight)
                found = True
            elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
                for block in module.in_proj_weight.chunk(3, dim=0):  # views: pruned in place
                    prune_(block)
                found = True
    if not found:
        raise ParameterError("the model has no Linear, Conv2d or attention weights to prune")
    return pruned


# --------------------------------------------------------------------------- convolutions as matrices
def _conv_fn(conv: nn.Conv2d | torch.Tensor, stride: int | None, padding: int | None):
    if isinstance(conv, nn.Conv2d):
        w = conv.weight.detach()
        s = conv.stride[0] if stride is None else stride
        p = conv.padding[0] if padding is None else padding
    else:
        w, s, p = conv.detach(), 1 if stride is None else stride, 0 if padding is None else padding
    if w.ndim != 4:
        raise ParameterError(f"a convolution kernel has 4 dimensions, got shape {tuple(w.shape)}")
    w = w.to(torch.float64)
    return w, (lambda x: F.conv2d(x, w, stride=s, padding=p))


def conv_as_matrix(conv: nn.Conv2d | torch.Tensor, input_shape: Sequence[int], *,
                   stride: int | None = None, padding: int | None = None) -> torch.Tensor:
    """The convolution as an explicit matrix on flattened images (float64).

    Column j is the flattened output for the j-th standard basis image of shape
    ``input_shape`` = (C_in, H, W); rows and columns are ordered channel-major
    (c, h, w), as ``Tensor.flatten`` orders them. Each entry of the kernel appears once
    per output position where its pixel lies inside the (padded) image, so the matrix
    is block-Toeplitz, with (C_out H' W') x (C_in H W) entries. For small sizes only
    (it is dense).
    """
    _, apply = _conv_fn(conv, stride, padding)
    c, h, w = (check_int("input_shape", v, minimum=1) for v in input_shape)
    n = c * h * w
    basis = torch.eye(n, dtype=torch.float64).reshape(n, c, h, w)
    return apply(basis).reshape(n, -1).T.contiguous()


def conv_operator_norm(conv: nn.Conv2d | torch.Tensor, input_shape: Sequence[int], *,
                       stride: int | None = None, padding: int | None = None,
                       tol: float = 1e-10) -> float:
    """The operator (spectral) norm ||A||_2 of a convolution on images of ``input_shape``.

    The largest eigenvalue of A^T A by ARPACK's Lanczos iteration
    (``scipy.sparse.linalg.eigsh``, fixed start vector, relative tolerance ``tol``),
    where A x = conv(x) and A^T y is the transposed convolution
    (``conv_transpose2d``), both in float64; the matrix A itself is never formed. For a
    kernel W of size kh x kw with stride 1 and zero padding,

        ||W_unf||_2 <= ||A||_2 <= sqrt(kh kw) ||W_unf||_2,

    with W_unf the unfolded matrix: the lower bound by feeding a single patch, the upper
    one because each pixel lies in at most kh kw patches (the tests check both against
    :func:`conv_as_matrix`). ``conv`` is an ``nn.Conv2d`` (its stride and padding are
    used unless given) or a kernel tensor (stride 1, padding 0 unless given).
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    w, apply = _conv_fn(conv, stride, padding)
    s = conv.stride[0] if isinstance(conv, nn.Conv2d) and stride is None else (stride or 1)
    p = (conv.padding[0] if isinstance(conv, nn.Conv2d) and padding is None
         else (padding or 0))
    shape = tuple(check_int("input_shape", v, minimum=1) for v in input_shape)
    tol = check_real("tol", tol, minimum=0.0)
    if not bool(w.any()):
        return 0.0
    out_hw = apply(torch.zeros((1, *shape), dtype=torch.float64)).shape[2:]
    extra = [shape[1 + i] - ((out_hw[i] - 1) * s - 2 * p + w.shape[2 + i]) for i in range(2)]

    def gram(v: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).reshape(1, *shape)
        y = F.conv_transpose2d(apply(x), w, stride=s, padding=p, output_padding=tuple(extra))
        return y.reshape(-1).numpy()

    n = math.prod(shape)
    if n <= 2:
        A = conv_as_matrix(conv, shape, stride=stride, padding=padding)
        return float(torch.linalg.matrix_norm(A, ord=2))
    op = LinearOperator((n, n), matvec=gram, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    lam = eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)[0]
    return math.sqrt(max(float(lam), 0.0))


@torch.no_grad()
def conv_input_shapes(model: nn.Module) -> dict[str, tuple[int, int, int]]:
    """The (C, H, W) shape of the images that each ``nn.Conv2d`` of ``model`` receives.

    Found by one forward pass of a zero input with hooks (the model must have an
    ``input_shape`` attribute, as :class:`ResNet` has). The operator norm of a
    convolution depends on this size (:func:`conv_operator_norm`).
    """
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ParameterError("the model has no input_shape attribute")
    found: dict[str, tuple[int, int, int]] = {}
    def record(name: str):
        def hook(_mod, inp, _out) -> None:  # returns None: the output is left unchanged
            found.setdefault(name, tuple(inp[0].shape[1:]))
        return hook

    hooks = [m.register_forward_hook(record(name))
             for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        dtype = next(model.parameters()).dtype
        model(torch.zeros(1, math.prod(shape), dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
    return found


def _stage_inputs(model: ResNet) -> list[tuple[int, ...]]:
    """Input shape (C, H, W) or (C,) of each stage of ``model.stages``, then the head's."""
    shapes = []
    with torch.no_grad():
        z = torch.zeros(1, *model.input_shape, dtype=model.head.weight.dtype)
        for stage in model.stages:
            shapes.append(tuple(z.shape[1:]))
            z = stage(z)
    shapes.append(tuple(z.shape[1:]))
    return shapes


def resnet_perturbation_bound(model: ResNet, pruned: ResNet, input_norm: float) -> dict:
    """A bound on max ||f(x) - f_hat(x)||_2 over ||x||_2 <= B for a pruned :class:`ResNet` (ours).

    Write f = phi_n o ... o phi_1 (the stages and the bias-free part of the head; the
    head's bias is not pruned and cancels in f - f_hat). Each stage is positively
    homogeneous with phi(0) = 0, Lipschitz with constant L (for the pruned stage L_hat),
    and satisfies ||phi(h) - phi_hat(h)|| <= eps ||h||. Telescoping over the stages,

        ||f(x) - f_hat(x)|| <= B sum_l eps_l prod_{k<l} L_k prod_{k>l} L_hat_k.       (T)

    Per stage: a conv + ReLU has L = ||C||, eps = ||C - C_hat||; a residual block
    x -> relu(x + W2 relu(W1 x)) has L = 1 + ||W2|| ||W1|| and
    eps = ||W2 - W2_hat|| ||W1|| + ||W2_hat|| ||W1 - W1_hat||; the head
    L = ||W_H||, eps = ||W_H - W_H_hat||. Norms of convolutions
    are operator norms on the stage's input images (:func:`conv_operator_norm`). For
    an MLP (no skips) (T) reduces to the product of norms of Neyshabur et al.'s lemma
    without its factor e; the skip turns each factor ||W2|| ||W1|| into 1 + ||W2|| ||W1||.

    Returns a dict with ``bound``, per-stage lists ``kind``, ``L``, ``L_hat``, ``eps``,
    and ``prod_L`` = prod_l L_l (the network's Lipschitz bound), ``prod_L_noskip``
    (the same product with every residual factor 1 + a replaced by a).
    """
    if not isinstance(model, ResNet) or not isinstance(pruned, ResNet):
        raise ParameterError("resnet_perturbation_bound needs two ResNet models")
    b = check_real("input_norm", input_norm, minimum=0.0)
    shapes = _stage_inputs(model)
    kinds, L, L_hat, eps, noskip = [], [], [], [], []

    def op(c: nn.Conv2d, shape) -> float:
        return conv_operator_norm(c, shape)

    def delta(c: nn.Conv2d, c_hat: nn.Conv2d) -> nn.Conv2d:
        out = copy.deepcopy(c)
        with torch.no_grad():
            out.weight.sub_(c_hat.weight)
        return out

    for stage, stage_hat, shape in zip(model.stages, pruned.stages, shapes):
        if isinstance(stage, ConvReLU):
            a, a_hat = op(stage.conv, shape), op(stage_hat.conv, shape)
            kinds.append("conv")
            L.append(a), L_hat.append(a_hat), noskip.append(a)
            eps.append(op(delta(stage.conv, stage_hat.conv), shape))
        elif isinstance(stage, ResidualBlock):
            w1, w2 = op(stage.conv1, shape), op(stage.conv2, shape)
            w1h, w2h = op(stage_hat.conv1, shape), op(stage_hat.conv2, shape)
            d1 = op(delta(stage.conv1, stage_hat.conv1), shape)
            d2 = op(delta(stage.conv2, stage_hat.conv2), shape)
            kinds.append("block")
            L.append(1.0 + w2 * w1), L_hat.append(1.0 + w2h * w1h), noskip.append(w2 * w1)
            eps.append(d2 * w1 + w2h * d1)
        else:
            raise ParameterError(f"unknown stage {type(stage).__name__}")
    wh = model.head.weight.detach().to(torch.float64)
    whh = pruned.head.weight.detach().to(torch.float64)
    kinds.append("head")
    L.append(float(torch.linalg.matrix_norm(wh, ord=2)))
    L_hat.append(float(torch.linalg.matrix_norm(whh, ord=2)))
    noskip.append(L[-1])
    eps.append(float(torch.linalg.matrix_norm(wh - whh, ord=2)))
    n = len(L)
    bound = b * sum(eps[l] * math.prod(L[:l]) * math.prod(L_hat[l + 1:]) for l in range(n))
    return {"bound": float(bound), "kind": kinds, "L": L, "L_hat": L_hat, "eps": eps,
            "prod_L": float(math.prod(L)), "prod_L_noskip": float(math.prod(noskip)),
            "input_norm": b}


# --------------------------------------------------------------------------- attention and layer norm
def _two_norm(M: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(M.to(torch.float64), ord=2))


def attention_product_errors(model: nn.Module, pruned: nn.Module) -> list[dict]:
    """Error of each head's bilinear form M = W_Q^T W_K after pruning, split by order.

    The attention logits of head h are x W_Q^{hT} W_K^h x'^T / sqrt(d_h) (plus bias
    terms), a *product* of two weight matrices. With Delta_Q = W_Q - W_Q_hat and
    Delta_K = W_K - W_K_hat (the rows of head h),

        M - M_hat = (Delta_Q^T W_K + W_Q^T Delta_K) - Delta_Q^T Delta_K,

    a first-order part, linear in the pruning errors (the part the paper's linear
    argument handles), and a second-order part. Returns, per :class:`Attention` module
    in order, a dict with ``name`` and per-head lists of the spectral norms ``total``,
    ``first`` and ``second`` and of ``norm_M`` = ||W_Q^T W_K||.
    """
    mods = [(n, m) for n, m in model.named_modules() if isinstance(m, Attention)]
    mods_hat = [m for m in pruned.modules() if isinstance(m, Attention)]
    if len(mods) != len(mods_hat) or not mods:
        raise ParameterError("both models need the same (non-zero) number of Attention modules")
    out = []
    for (name, a), a_hat in zip(mods, mods_hat):
        dh = a.q.weight.shape[0] // a.heads
        rec: dict[str, Any] = {"name": name, "total": [], "first": [], "second": [], "norm_M": []}
        for h in range(a.heads):
            rows = slice(h * dh, (h + 1) * dh)
            Q = a.q.weight.detach()[rows].to(torch.float64)
            K = a.k.weight.detach()[rows].to(torch.float64)
            Qh = a_hat.q.weight.detach()[rows].to(torch.float64)
            Kh = a_hat.k.weight.detach()[rows].to(torch.float64)
            dQ, dK = Q - Qh, K - Kh
            rec["total"].append(_two_norm(Q.T @ K - Qh.T @ Kh))
            rec["first"].append(_two_norm(dQ.T @ K + Q.T @ dK))
            rec["second"].append(_two_norm(dQ.T @ dK))
            rec["norm_M"].append(_two_norm(Q.T @ K))
        out.append(rec)
    return out


@torch.no_grad()
def layernorm_gains(model: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> list[dict]:
    """The data-dependent Lipschitz factor of every ``nn.LayerNorm`` on inputs ``X``.

    LN(z) = gamma * (z - mean(z)) / sqrt(var(z) + eps) + beta has Jacobian
    diag(gamma) (I - 11^T/n - u u^T/n) / sqrt(var(z) + eps) (u the normalised z), whose
    norm is at most max|gamma| / sqrt(var(z) + eps): the gain depends on the scale of
    the token z that arrives, not only on the weights. LN is also scale invariant,
    LN(c z) = LN(z) for c > 0. Returns per LayerNorm (in module order) the ``name``,
    ``max_gamma`` and the smallest, median and largest value over all tokens of all
    samples of ``gain`` = max|gamma| / sqrt(var(z) + eps) (keys ``gain_min``,
    ``gain_median``, ``gain_max``).
    """
    lns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    if not lns:
        raise ParameterError("the model has no LayerNorm")
    sig: dict[str, list[torch.Tensor]] = {n: [] for n, _ in lns}
    handles = []
    for name, ln in lns:
        def hook(mod, inp, _out, name=name):
            z = inp[0].to(torch.float64)
            sig[name].append(torch.sqrt(z.var(dim=-1, unbiased=False) + mod.eps).flatten())
        handles.append(ln.register_forward_hook(hook))
    try:
        logits(model, X, batch_size=batch_size)
    finally:
        for h in handles:
            h.remove()
    out = []
    for name, ln in lns:
        gmax = float(ln.weight.detach().abs().max()) if ln.weight is not None else 1.0
        g = gmax / torch.cat(sig[name])
        out.append({"name": name, "max_gamma": gmax, "gain_min": float(g.min()),
                    "gain_median": float(g.median()), "gain_max": float(g.max())})
    return out


# --------------------------------------------------------------------------- measurements
def matrix_diagnostics(model: nn.Module) -> list[dict]:
    """Shape of the entry distribution of every matrix of :func:`weight_matrices_all`.

    Per matrix: ``name``, ``shape`` (the unfolded shape for convolutions), ``n``
    entries, ``psi`` (population variance, the rule's Psi), ``excess_kurtosis`` (0 for
    a normal law, -1.2 for PyTorch's uniform initialisation), ``ks_D`` (Kolmogorov-
    Smirnov distance of the standardized entries to N(0, 1), an effect size) and
    ``qq_r`` (correlation of the normal Q-Q plot), as in :mod:`prunebounds.gaussianity`.
    """
    out = []
    for name, W in weight_matrices_all(model):
        a = W.detach().to(torch.float64).flatten().numpy()
        z = (a - a.mean()) / a.std()
        out.append({
            "name": name, "shape": [int(W.shape[0]), int(W.shape[1])], "n": int(a.size),
            "psi": float(a.var()),
            "excess_kurtosis": float(stats.kurtosis(a, fisher=True, bias=True)),
            "ks_D": float(stats.kstest(z, "norm").statistic),
            "qq_r": float(stats.probplot(a, dist="norm", fit=True)[1][2]),
        })
    return out


def prune_sweep(model: nn.Module, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor,
                y_test: torch.Tensor, d_values: Sequence[float], seeds: Sequence[int],
                prune: Callable[[nn.Module, float, int], nn.Module] = prune_paper_all) -> dict:
    """Prune ``model`` at every d and seed; measure the change on (X, y) and test accuracy.

    For each d (and each seed of the mask), ``prune(model, d, seed)`` is compared with
    ``model`` on the training inputs X by :func:`prunebounds.perturbation.pruning_error`
    (the largest change of the correct-class logit, the authors' "true pruning error",
    and of the whole logit vector), and evaluated on the test set. Returns a JSON-able
    dict: ``d``; per d, lists over seeds of ``max_correct_logit_change``,
    ``max_sup_change``, ``max_l2_change``, ``test_acc``, ``kept`` (the
    kept fraction of all matrix entries together); ``kept_per_matrix`` (per d, the mean
    over seeds, per matrix); ``names`` of the matrices; and ``margins_train`` summary
    of the unpruned model (``min`` and the percentiles 1, 5, 10, 50).
    """
    d_values = [check_real("d", d, minimum=0.0) for d in d_values]
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not d_values or not seeds:
        raise ParameterError("need at least one value of d and one seed")
    ref = logits(model, X).to(torch.float64)
    m = margins(ref, y)
    names = [n for n, _ in weight_matrices_all(model)]
    keys = ("max_correct_logit_change", "max_sup_change", "max_l2_change", "test_acc", "kept")
    res: dict[str, Any] = {"d": d_values, "names": names, "kept_per_matrix": [],
                           **{k: [] for k in keys}}
    res["margins_train"] = {"min": float(m.min()), **{
        f"p{q}": float(torch.quantile(m, q / 100.0)) for q in (1, 5, 10, 50)}}
    for d in d_values:
        row: dict[str, list] = {k: [] for k in keys}
        per_matrix = []
        for s in seeds:
            g = prune(model, d, s)
            err = pruning_error(None, g, X, y, reference_logits=ref)
            row["max_correct_logit_change"].append(err.max_correct_logit_change)
            row["max_sup_change"].append(err.max_sup_change)
            row["max_l2_change"].append(err.max_l2_change)
            row["test_acc"].append(float((logits(g, X_test).argmax(1) == y_test).double().mean()))
            mats = [w for _, w in weight_matrices_all(g)]
            nnz = [int(torch.count_nonzero(w)) for w in mats]
            row["kept"].append(sum(nnz) / sum(w.numel() for w in mats))
            per_matrix.append([k / w.numel() for k, w in zip(nnz, mats)])
        for k in keys:
            res[k].append(row[k])
        res["kept_per_matrix"].append(np.mean(per_matrix, axis=0).tolist())
    return res
