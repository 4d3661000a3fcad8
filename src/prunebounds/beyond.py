"""What of the paper's argument carries over to the residual CNN and the vision transformer.

The networks themselves are in :mod:`prunebounds.zoo`; this module measures them:

* :func:`weight_matrices_all` and :func:`prune_paper_all`: every weight matrix (convs
  unfolded, attention split into Q, K, V) and the paper's rule (R) applied to each with
  its own variance Psi, exactly as :func:`prunebounds.pruning.prune_paper` does for
  ``nn.Linear`` layers (the two agree mask for mask on an MLP).
* the operator norm of a convolution on whole images (:func:`conv_operator_norm`,
  through :func:`prunebounds.norms.operator_norm`) and its explicit block-Toeplitz
  matrix (:func:`conv_as_matrix`);
* a perturbation bound for the residual network (:func:`resnet_perturbation_bound`),
  where skip connections turn the product of norms of Neyshabur et al.'s lemma into a
  product of (1 + norm) factors;
* the first- and second-order parts of the error of attention's product of weights
  W_Q^T W_K (:func:`attention_product_errors`); the data-dependent gain of LayerNorm
  (:func:`layernorm_gains`);
* a pruning sweep (:func:`prune_sweep`) and per-matrix Gaussianity diagnostics
  (:func:`matrix_diagnostics`).

Results are small frozen dataclasses (:class:`ResNetPerturbation`,
:class:`AttentionErrors`, :class:`LayerNormGain`, :class:`MatrixDiagnostics`,
:class:`PruneSweep`), cached with :func:`prunebounds.cache.cached_result`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from .errors import ParameterError
from .margins import accuracy, logits, margins
from .norms import operator_norm, spectral_norm
from .perturbation import output_change
from .pruning import GaussianMagnitudePruning
from .validate import check_int, check_real
from .zoo import Attention, ConvReLU, ResidualBlock, ResNet

__all__ = [
    "weight_matrices_all",
    "prune_paper_all",
    "conv_as_matrix",
    "conv_operator_norm",
    "conv_input_shapes",
    "ResNetPerturbation",
    "resnet_perturbation_bound",
    "AttentionErrors",
    "attention_product_errors",
    "LayerNormGain",
    "layernorm_gains",
    "MatrixDiagnostics",
    "matrix_diagnostics",
    "MarginSummary",
    "PruneSweep",
    "prune_sweep",
]


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
    kernel, apply = _conv_fn(conv, stride, padding)
    c, h, w = (check_int("input_shape", v, minimum=1) for v in input_shape)
    n = c * h * w
    basis = torch.eye(n, dtype=torch.float64, device=kernel.device).reshape(n, c, h, w)
    return apply(basis).reshape(n, -1).T.contiguous()


def conv_operator_norm(conv: nn.Conv2d | torch.Tensor, input_shape: Sequence[int], *,
                       stride: int | None = None, padding: int | None = None,
                       tol: float = 1e-10) -> float:
    """The operator (spectral) norm ||A||_2 of a convolution on images of ``input_shape``.

    :func:`prunebounds.norms.operator_norm` (Lanczos on A^T A, relative tolerance
    ``tol``), where A x = conv(x) and A^T y is the transposed convolution
    (``conv_transpose2d``), both in float64; the matrix A itself is never formed. For a
    kernel W of size kh x kw with stride 1 and zero padding,

        ||W_unf||_2 <= ||A||_2 <= sqrt(kh kw) ||W_unf||_2,

    with W_unf the unfolded matrix: the lower bound by feeding a single patch, the upper
    one because each pixel lies in at most kh kw patches (the tests check both against
    :func:`conv_as_matrix`). ``conv`` is an ``nn.Conv2d`` (its stride and padding are
    used unless given) or a kernel tensor (stride 1, padding 0 unless given).
    """
    w, apply = _conv_fn(conv, stride, padding)
    s = conv.stride[0] if isinstance(conv, nn.Conv2d) and stride is None else (stride or 1)
    p = (conv.padding[0] if isinstance(conv, nn.Conv2d) and padding is None
         else (padding or 0))
    shape = tuple(check_int("input_shape", v, minimum=1) for v in input_shape)
    tol = check_real("tol", tol, minimum=0.0)
    if not bool(w.any()):
        return 0.0
    out_hw = apply(torch.zeros((1, *shape), dtype=torch.float64, device=w.device)).shape[2:]
    extra = [shape[1 + i] - ((out_hw[i] - 1) * s - 2 * p + w.shape[2 + i]) for i in range(2)]

    def gram(v: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).to(w.device)
        y = F.conv_transpose2d(apply(x.reshape(1, *shape)), w, stride=s, padding=p,
                               output_padding=tuple(extra))
        return y.reshape(-1).cpu().numpy()

    return operator_norm(gram, math.prod(shape), tol=tol)


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
        param = next(model.parameters())
        model(torch.zeros(1, math.prod(shape), dtype=param.dtype, device=param.device))
    finally:
        for h in hooks:
            h.remove()
    return found


def _stage_inputs(model: ResNet) -> list[tuple[int, ...]]:
    """Input shape (C, H, W) or (C,) of each stage of ``model.stages``, then the head's."""
    shapes = []
    with torch.no_grad():
        z = torch.zeros(1, *model.input_shape, dtype=model.head.weight.dtype,
                        device=model.head.weight.device)
        for stage in model.stages:
            shapes.append(tuple(z.shape[1:]))
            z = stage(z)
    shapes.append(tuple(z.shape[1:]))
    return shapes


@dataclass(frozen=True)
class ResNetPerturbation:
    """The telescoping bound (T) of :func:`resnet_perturbation_bound` and its factors.

    ``kind``, ``L``, ``L_hat`` and ``eps`` are per stage (conv, block, ..., head).
    """

    bound: float
    kind: tuple[str, ...]
    L: tuple[float, ...]
    L_hat: tuple[float, ...]
    eps: tuple[float, ...]
    prod_L: float          # prod_l L_l, the network's Lipschitz bound
    prod_L_noskip: float   # the same with every residual factor 1 + a replaced by a
    input_norm: float


def resnet_perturbation_bound(model: ResNet, pruned: ResNet,
                              input_norm: float) -> ResNetPerturbation:
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

    Returns a :class:`ResNetPerturbation`.
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
    L.append(spectral_norm(wh, "svd"))
    L_hat.append(spectral_norm(whh, "svd"))
    noskip.append(L[-1])
    eps.append(spectral_norm(wh - whh, "svd"))
    n = len(L)
    bound = b * sum(eps[l] * math.prod(L[:l]) * math.prod(L_hat[l + 1:]) for l in range(n))
    return ResNetPerturbation(
        bound=float(bound), kind=tuple(kinds), L=tuple(L), L_hat=tuple(L_hat), eps=tuple(eps),
        prod_L=float(math.prod(L)), prod_L_noskip=float(math.prod(noskip)), input_norm=b)


# --------------------------------------------------------------------------- attention and layer norm
@dataclass(frozen=True)
class AttentionErrors:
    """Per head of one attention module: spectral norms of M - M_hat and of its parts."""

    name: str
    total: tuple[float, ...]   # ||M - M_hat||_2
    first: tuple[float, ...]   # ||Delta_Q^T W_K + W_Q^T Delta_K||_2
    second: tuple[float, ...]  # ||Delta_Q^T Delta_K||_2
    norm_M: tuple[float, ...]  # ||W_Q^T W_K||_2


def _two_norm(M: torch.Tensor) -> float:
    return spectral_norm(M, "svd")


def attention_product_errors(model: nn.Module, pruned: nn.Module) -> list[AttentionErrors]:
    """Error of each head's bilinear form M = W_Q^T W_K after pruning, split by order.

    The attention logits of head h are x W_Q^{hT} W_K^h x'^T / sqrt(d_h) (plus bias
    terms), a *product* of two weight matrices. With Delta_Q = W_Q - W_Q_hat and
    Delta_K = W_K - W_K_hat (the rows of head h),

        M - M_hat = (Delta_Q^T W_K + W_Q^T Delta_K) - Delta_Q^T Delta_K,

    a first-order part, linear in the pruning errors (the part the paper's linear
    argument handles), and a second-order part. Returns, per :class:`Attention` module
    in order, an :class:`AttentionErrors`.
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
        out.append(AttentionErrors(name, *(tuple(rec[k]) for k in
                                           ("total", "first", "second", "norm_M"))))
    return out


@dataclass(frozen=True)
class LayerNormGain:
    """The gain max|gamma| / sqrt(var(z) + eps) of one LayerNorm over all tokens seen."""

    name: str
    max_gamma: float
    gain_min: float
    gain_median: float
    gain_max: float


@torch.no_grad()
def layernorm_gains(model: nn.Module, X: torch.Tensor,
                    batch_size: int = 4096) -> list[LayerNormGain]:
    """The data-dependent Lipschitz factor of every ``nn.LayerNorm`` on inputs ``X``.

    LN(z) = gamma * (z - mean(z)) / sqrt(var(z) + eps) + beta has Jacobian
    diag(gamma) (I - 11^T/n - u u^T/n) / sqrt(var(z) + eps) (u the normalised z), whose
    norm is at most max|gamma| / sqrt(var(z) + eps): the gain depends on the scale of
    the token z that arrives, not only on the weights. LN is also scale invariant,
    LN(c z) = LN(z) for c > 0. Returns per LayerNorm (in module order) the ``name``,
    ``max_gamma`` and the smallest, median and largest value over all tokens of all
    samples of ``gain`` = max|gamma| / sqrt(var(z) + eps), as :class:`LayerNormGain`.
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
        out.append(LayerNormGain(name, gmax, float(g.min()), float(g.median()), float(g.max())))
    return out


# --------------------------------------------------------------------------- measurements
@dataclass(frozen=True)
class MatrixDiagnostics:
    """Shape of the entry distribution of one weight matrix (see :func:`matrix_diagnostics`)."""

    name: str
    shape: tuple[int, int]
    n: int
    psi: float
    excess_kurtosis: float
    ks_D: float
    qq_r: float


def matrix_diagnostics(model: nn.Module) -> list[MatrixDiagnostics]:
    """Shape of the entry distribution of every matrix of :func:`weight_matrices_all`.

    Per matrix, a :class:`MatrixDiagnostics`: ``name``, ``shape`` (the unfolded shape
    for convolutions), ``n``
    entries, ``psi`` (population variance, the rule's Psi), ``excess_kurtosis`` (0 for
    a normal law, -1.2 for PyTorch's uniform initialisation), ``ks_D`` (Kolmogorov-
    Smirnov distance of the standardized entries to N(0, 1), an effect size) and
    ``qq_r`` (correlation of the normal Q-Q plot), as in :mod:`prunebounds.gaussianity`.
    """
    out = []
    for name, W in weight_matrices_all(model):
        a = W.detach().to(torch.float64).flatten().cpu().numpy()
        z = (a - a.mean()) / a.std()
        out.append(MatrixDiagnostics(
            name=name, shape=(int(W.shape[0]), int(W.shape[1])), n=int(a.size),
            psi=float(a.var()),
            excess_kurtosis=float(stats.kurtosis(a, fisher=True, bias=True)),
            ks_D=float(stats.kstest(z, "norm").statistic),
            qq_r=float(stats.probplot(a, dist="norm", fit=True)[1][2]),
        ))
    return out


@dataclass(frozen=True)
class MarginSummary:
    """The smallest training margin and its 1st, 5th, 10th and 50th percentiles."""

    min: float
    p1: float
    p5: float
    p10: float
    p50: float


@dataclass(frozen=True)
class PruneSweep:
    """What :func:`prune_sweep` measures. Lists are per d, then per mask seed."""

    d: tuple[float, ...]
    names: tuple[str, ...]                      # the matrices of weight_matrices_all
    max_correct_logit_change: tuple[tuple[float, ...], ...]
    max_sup_change: tuple[tuple[float, ...], ...]
    max_l2_change: tuple[tuple[float, ...], ...]
    test_acc: tuple[tuple[float, ...], ...]
    kept: tuple[tuple[float, ...], ...]         # fraction of all matrix entries kept
    kept_per_matrix: tuple[tuple[float, ...], ...]  # per d: mean over seeds, per matrix
    margins_train: MarginSummary                # of the unpruned model


def prune_sweep(model: nn.Module, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor,
                y_test: torch.Tensor, d_values: Sequence[float], seeds: Sequence[int],
                prune: Callable[[nn.Module, float, int], nn.Module] = prune_paper_all
                ) -> PruneSweep:
    """Prune ``model`` at every d and seed; measure the change on (X, y) and test accuracy.

    For each d (and each seed of the mask), ``prune(model, d, seed)`` is compared with
    ``model`` on the training inputs X by :func:`prunebounds.perturbation.output_change`
    (the largest change of the correct-class logit, the authors' "true pruning error",
    and of the whole logit vector), and its accuracy
    (:func:`prunebounds.margins.accuracy`) on the test set is measured. Returns a
    :class:`PruneSweep`.
    """
    d_values = [check_real("d", d, minimum=0.0) for d in d_values]
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not d_values or not seeds:
        raise ParameterError("need at least one value of d and one seed")
    ref = logits(model, X).to(torch.float64)
    m = margins(ref, y)
    names = tuple(n for n, _ in weight_matrices_all(model))
    keys = ("max_correct_logit_change", "max_sup_change", "max_l2_change", "test_acc", "kept")
    res: dict[str, list] = {k: [] for k in keys}
    kept_per_matrix = []
    for d in d_values:
        row: dict[str, list] = {k: [] for k in keys}
        per_matrix = []
        for s in seeds:
            g = prune(model, d, s)
            err = output_change(None, g, X, y, reference_logits=ref)
            row["max_correct_logit_change"].append(err.max_correct_logit_change)
            row["max_sup_change"].append(err.max_sup_change)
            row["max_l2_change"].append(err.max_l2_change)
            row["test_acc"].append(accuracy(logits(g, X_test), y_test))
            mats = [w for _, w in weight_matrices_all(g)]
            nnz = [int(torch.count_nonzero(w)) for w in mats]
            row["kept"].append(sum(nnz) / sum(w.numel() for w in mats))
            per_matrix.append([k / w.numel() for k, w in zip(nnz, mats)])
        for k in keys:
            res[k].append(tuple(row[k]))
        kept_per_matrix.append(tuple(np.mean(per_matrix, axis=0).tolist()))
    summary = MarginSummary(float(m.min()), *(float(torch.quantile(m, q / 100.0))
                                              for q in (1, 5, 10, 50)))
    return PruneSweep(d=tuple(d_values), names=names, **{k: tuple(v) for k, v in res.items()},
                      kept_per_matrix=tuple(kept_per_matrix), margins_train=summary)
