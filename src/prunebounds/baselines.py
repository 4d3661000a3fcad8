"""The norm-based bounds the paper compares with, and the authors' versions of them.

* Neyshabur, Tomioka & Srebro (COLT 2015): Frobenius norms (:func:`neyshabur2015_bound`);
* Bartlett, Foster & Telgarsky (NeurIPS 2017): spectral complexity
  (:func:`spectral_complexity`, :func:`bartlett2017_bound`);
* Neyshabur, Bhojanapalli & Srebro (ICLR 2018): PAC-Bayes spectral bound
  (:func:`neyshabur2018_bound`);
* the authors' simplified measures, transcribed from their code
  (:func:`authors_neyshabur2015`, :func:`authors_bartlett2017`,
  :func:`authors_neyshabur2018`): no sqrt(m), no constants, no logarithms.

Weights are ``out x in`` matrices (the paper's A^l acting on column vectors), norms come
from :mod:`prunebounds.norms`, and every bound is a :class:`prunebounds.bounds.Bound`
on the 0-1 test error (the authors' measures are plain numbers). The conventions of
:mod:`prunebounds.bounds` apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .bounds import Bound, make_bound
from .errors import ParameterError
from .norms import authors_lpq_norm, bartlett_21, frobenius_norm, spectral_norms
from .validate import (check_delta, check_gamma, check_int, check_loss, check_m, check_real,
                       check_weights)

__all__ = [
    "nonzero_spectral_norms",
    "neyshabur2015_bound",
    "SpectralComplexity",
    "spectral_complexity",
    "bartlett2017_bound",
    "neyshabur2018_bound",
    "authors_neyshabur2015",
    "authors_bartlett2017",
    "authors_neyshabur2018",
]


def nonzero_spectral_norms(ws: list[torch.Tensor], given=None) -> list[float]:
    """Spectral norms of ``ws`` (or the precomputed ``given`` ones), all checked > 0."""
    if given is None:
        s = spectral_norms(ws)
    else:
        s = [check_real("spectral norm", v, minimum=0.0) for v in given]
        if len(s) != len(ws):
            raise ParameterError(
                f"spectral_norms has {len(s)} entries but there are {len(ws)} layers"
            )
    for l, v in enumerate(s, start=1):
        if v == 0.0:
            raise ParameterError(
                f"layer {l} is all zeros (spectral norm 0): the network is constant and "
                "the normalised bounds are undefined"
            )
    return s


def _width(ws: list[torch.Tensor], width) -> int:
    """The largest dimension of any weight matrix (input dimension included)."""
    w_max = max(max(w.shape) for w in ws)
    if width is None:
        return w_max
    return check_int("width", width, minimum=1)



# --------------------------------------------------------------------------------------
# Norm-based baselines, with the constants their papers give
# --------------------------------------------------------------------------------------

def neyshabur2015_bound(weights, input_norm: float, gamma: float, m: int, *,
                        delta: float = 0.05, empirical_margin_loss: float = 0.0,
                        n_classes: int | None = None) -> Bound:
    """Frobenius-norm bound of Neyshabur, Tomioka & Srebro (COLT 2015), made multiclass.

    Ingredients:

    1. Their Theorem 1 / Corollary 2 with p = q = 2 (group norm = Frobenius norm): for
       depth-L ReLU networks with prod_l ||A^l||_F <= G and inputs ||x||_2 <= B, the
       Rademacher complexity of the scalar class is at most
       2^(L-1) G B sqrt(c / m), with c = min(p*, 4 ln(2D)) = 2 for p* = 2 (the
       linear-class factor of their corollary, as we read it; the sharper linear-class
       bound of Kakade et al. 2009 has c = 1). The 2 per layer comes from peeling one
       ReLU at a time, L - 1 times.
    2. The multiclass margin bound of Mohri, Rostamizadeh & Talwalkar (Foundations of
       ML, 2nd ed., Theorem 9.2): L_0 <= R^_gamma + (4k/gamma) Rad_m(Pi_1(H)) +
       sqrt(ln(1/delta)/(2m)), k classes. The scalar networks x -> f(x)[y] use one row
       of A^L, whose norm is at most ||A^L||_F, so step 1 applies to Pi_1(H).

    Result: R^_gamma + (4k/gamma) 2^(L-1) B prod_l ||A^l||_F sqrt(2/m) + sqrt(ln(1/delta)/(2m)).
    The bound uses the network's own norms as if they were fixed in advance (no union
    bound over G or gamma). ``n_classes`` defaults to the output dimension.
    """
    ws = check_weights(weights)
    B = check_real("input_norm (max ||x||_2)", input_norm, minimum=0.0)
    g = check_gamma(gamma)
    m = check_m(m)
    d = check_delta(delta)
    k = check_int("n_classes", ws[-1].shape[0] if n_classes is None else n_classes, minimum=2)
    L = len(ws)
    fro = [frobenius_norm(w) for w in ws]
    prod_fro = math.prod(fro)
    rademacher = 2.0 ** (L - 1) * B * prod_fro * math.sqrt(2.0 / m)
    return make_bound("neyshabur2015", {
        "empirical_margin_loss": check_loss(empirical_margin_loss),
        "complexity": 4.0 * k / g * rademacher,
        "confidence": math.sqrt(math.log(1.0 / d) / (2.0 * m)),
    }, {"frobenius_product": prod_fro, "rademacher": rademacher, "depth": L,
        "n_classes": k, "input_norm": B})


@dataclass(frozen=True)
class SpectralComplexity:
    """Bartlett et al.'s R_A and its two factors (see :func:`spectral_complexity`)."""

    R_A: float
    lipschitz: float   # prod_i ||A_i||_2
    ratio_sum: float   # sum_i (b_i / s_i)^(2/3)


def spectral_complexity(weights, reference_weights=None, *,
                        spectral_norms: Sequence[float] | None = None) -> SpectralComplexity:
    """Bartlett et al. (2017)'s spectral complexity R_A for ReLU networks (rho_i = 1).

    R_A = (prod_i ||A_i||_2) (sum_i (||A_i^T - M_i^T||_{2,1} / ||A_i||_2)^(2/3))^(3/2),
    with reference matrices M_i (``reference_weights``; ``None`` = zero matrices; the
    initial weights make it a distance to initialisation). ``spectral_norms``: the
    ||A_i||_2, if already computed (they dominate the cost; every function that needs
    them takes this argument).
    """
    ws = check_weights(weights)
    if reference_weights is None:
        refs = [None] * len(ws)
    else:
        refs = check_weights(reference_weights, "reference_weights")
        if len(refs) != len(ws):
            raise ParameterError(
                f"reference_weights has {len(refs)} layers, weights has {len(ws)}"
            )
    s = nonzero_spectral_norms(ws, spectral_norms)
    b = [bartlett_21(w, ref) for w, ref in zip(ws, refs)]
    lip = math.prod(s)
    ratio_sum = math.fsum((bi / si) ** (2.0 / 3.0) for bi, si in zip(b, s))
    return SpectralComplexity(R_A=lip * ratio_sum ** 1.5, lipschitz=lip, ratio_sum=ratio_sum)


def bartlett2017_bound(weights, reference_weights, X_norm_fro: float, gamma: float,
                       m: int, delta: float = 0.05, width: int | None = None, *,
                       empirical_margin_loss: float = 0.0,
                       spectral_norms: Sequence[float] | None = None) -> Bound:
    """Spectrally-normalised margin bound of Bartlett, Foster & Telgarsky (NeurIPS 2017).

    Their Theorem 1.1 reads L_0 <= R^_gamma + O~(||X||_F R_A ln(W) / (gamma m) +
    sqrt(ln(1/delta)/m)); the constants are in the appendix. We evaluate the
    fixed-bounds form (their Lemma A.8, as we read it), plugging in the network's own
    norms s_i = ||A_i||_2, b_i = ||A_i^T - M_i^T||_{2,1}:

        R^_gamma + 8/m + 72 ||X||_F ln(2W) ln(m) R_A / (gamma m) + 3 sqrt(ln(2/delta) / (2m))

    * ||X||_F = sqrt(sum_i ||x_i||_2^2) over the m training inputs (``X_norm_fro``; see
      :func:`prunebounds.norms.input_norms`). It grows like sqrt(m), so the middle term decays like
      ln(m)/sqrt(m) at fixed data distribution.
    * W = the largest dimension of any weight matrix, input included (``width``).
      Their covering-number bound (Theorem 3.3) carries ln(2W^2) under a square root;
      the ln(2W) factor used here is larger once W >= 4, so it can only overstate.
    * rho_i = 1 (ReLU). R_A from :func:`spectral_complexity`.
    * The constants 8, 72 and 3 were not checked against the PDF in writing this
      module (no copy of the appendix was at hand): verify before quoting them.
    * The confidence term uses ln(2/delta), the standard form for empirical Rademacher
      complexity; the appendix may print ln(1/delta), which is smaller.
    * Not included: the cost of making the bound uniform over gamma and the norms
      (their Lemma A.9: a larger constant and extra logarithmic terms). The value here
      is therefore *optimistic* for data-chosen gamma and norms.
    """
    ws = check_weights(weights)
    X = check_real("X_norm_fro", X_norm_fro, minimum=0.0)
    g = check_gamma(gamma)
    m = check_m(m)
    d = check_delta(delta)
    W = _width(ws, width)
    sc = spectral_complexity(ws, reference_weights, spectral_norms=spectral_norms)
    complexity = 72.0 * X * math.log(2.0 * W) * math.log(m) * sc.R_A / (g * m)
    return make_bound("bartlett2017", {
        "empirical_margin_loss": check_loss(empirical_margin_loss),
        "offset": 8.0 / m,
        "complexity": complexity,
        "confidence": 3.0 * math.sqrt(math.log(2.0 / d) / (2.0 * m)),
    }, {"spectral_complexity": sc.R_A, "lipschitz": sc.lipschitz,
        "ratio_sum": sc.ratio_sum, "width": W, "X_norm_fro": X})


def neyshabur2018_bound(weights, input_norm: float, gamma: float, m: int,
                        delta: float = 0.05, *, empirical_margin_loss: float = 0.0,
                        width: int | None = None, constant: float = 1.0,
                        spectral_norms: Sequence[float] | None = None) -> Bound:
    """PAC-Bayes spectral bound of Neyshabur, Bhojanapalli & Srebro (ICLR 2018), Theorem 1.

    Their statement, for a depth-d ReLU network with inputs ||x||_2 <= B and at most h
    units per layer:

        L_0 <= R^_gamma + O( sqrt( (B^2 d^2 h ln(d h) prod_i ||W_i||_2^2
                                    sum_i ||W_i||_F^2 / ||W_i||_2^2 + ln(d m / delta))
                                   / (gamma^2 m) ) ).

    The statement gives no constant, so ``constant`` (default 1) multiplies the square
    root. (Their proof runs through a PAC-Bayes margin lemma with a factor 4 and a
    posterior width gamma / (42 d B beta^(d-1) sqrt(h ln(4hd))), i.e. a constant of
    several hundred in front; we do not reconstruct it.) h defaults to the largest
    dimension of any weight matrix, input included.
    """
    ws = check_weights(weights)
    B = check_real("input_norm (max ||x||_2)", input_norm, minimum=0.0)
    g = check_gamma(gamma)
    m = check_m(m)
    dl = check_delta(delta)
    c = check_real("constant", constant, minimum=0.0)
    h = _width(ws, width)
    depth = len(ws)
    s = nonzero_spectral_norms(ws, spectral_norms)
    fro = [frobenius_norm(w) for w in ws]
    spec_prod_sq = math.prod(v * v for v in s)
    ratio_sum = math.fsum((f / v) ** 2 for f, v in zip(fro, s))
    kl_part = B * B * depth * depth * h * math.log(depth * h) * spec_prod_sq * ratio_sum
    log_part = math.log(depth * m / dl)
    complexity = c * math.sqrt((kl_part + log_part) / (g * g * m))
    return make_bound("neyshabur2018", {
        "empirical_margin_loss": check_loss(empirical_margin_loss),
        "complexity": complexity,
    }, {"kl_part": kl_part, "log_part": log_part, "spectral_product_sq": spec_prod_sq,
        "frobenius_ratio_sum": ratio_sum, "width": h, "depth": depth, "constant": c})


# --------------------------------------------------------------------------------------
# The authors' simplified baselines (their code: no sqrt(m), no constants, no logs)
# --------------------------------------------------------------------------------------

def authors_neyshabur2015(weights, gamma: float) -> float:
    """The authors' "Neyshabur 2015" measure: prod_l ||A^l||_F^2 / gamma^2.

    As their code computes it (``calc_neyshabur``): no 2^L, no input norm, no sqrt(m),
    no classes. A complexity measure, not a bound on an error.
    """
    ws = check_weights(weights)
    g = check_gamma(gamma)
    return math.prod(frobenius_norm(w) ** 2 for w in ws) / (g * g)


def authors_bartlett2017(weights, gamma: float, *,
                         spectral_norms: Sequence[float] | None = None) -> float:
    """The authors' "Bartlett 2017" measure: (1/gamma^2) prod ||A||_2^2 sum ||A||_lpq^2 / ||A||_2^2.

    Transcribed from their ``calc_bartlett``: the per-layer norm is their
    ``lpq_norm(A, 1, 2)`` (:func:`authors_lpq_norm`), which equals ||A||_F, so the
    measure is (1/gamma^2) prod_l ||A_l||_2^2 sum_l ||A_l||_F^2 / ||A_l||_2^2. That is
    the Neyshabur et al. (2018) quantity without B, d, h -- not Bartlett et al.'s R_A,
    which has a (2,1) distance to a reference and exponents 2/3, 3/2.
    """
    ws = check_weights(weights)
    g = check_gamma(gamma)
    s = nonzero_spectral_norms(ws, spectral_norms)
    prod = math.prod(v * v for v in s)
    ratios = math.fsum(authors_lpq_norm(w, 1, 2) ** 2 / (v * v) for w, v in zip(ws, s))
    return prod * ratios / (g * g)


def authors_neyshabur2018(weights, gamma: float, *,
                          spectral_norms: Sequence[float] | None = None) -> float:
    """The authors' "Neyshabur 2018" measure: (1/gamma^2) prod ||A||_2^2 sum fan_in ||A||_F^2/||A||_2^2.

    Transcribed from their ``calc_second_neyshabur``: each ratio is multiplied by the
    layer's fan-in (``weight.shape[1]``, the ``in`` dimension), standing in for h.
    """
    ws = check_weights(weights)
    g = check_gamma(gamma)
    s = nonzero_spectral_norms(ws, spectral_norms)
    prod = math.prod(v * v for v in s)
    ratios = math.fsum(w.shape[1] * frobenius_norm(w) ** 2 / (v * v) for w, v in zip(ws, s))
    return prod * ratios / (g * g)
