"""Bounds on the spectral norm of a random matrix with independent entries (Lemma 4.1, reconstructed).

The paper bounds the spectral norm of the pruning error Delta = W - W_hat, a matrix with
independent, mean-zero, symmetric entries (see :mod:`prunebounds.pruning`), with
random-matrix theory and then turns the bound on E||Delta|| into a high-probability one
with Markov's inequality. The paper's own statement of Lemma 4.1 was not available to
this project; the bounds below are the ones it is built from, each cited to its source:

* :func:`latala_bound`: Latala (Proc. AMS 133, 2005), universal but unspecified C;
* :func:`bandeira_van_handel_bound`: Bandeira & van Handel (Ann. Probab. 44, 2016,
  arXiv:1408.6185), explicit constants;
* :func:`frobenius_bound`: the naive bound E||X||_2 <= E||X||_F <= sqrt(sum E X_ij^2),
  which a reviewer asked the random-matrix bounds to be compared with;
* :func:`markov_factor`: P(||X|| <= lambda E||X||) >= 1 - 1/lambda.

All functions take the matrix of entrywise moments (numpy array or torch tensor of the
matrix's shape) and return Python floats; ``*_iid`` variants take one value per moment.
The spectral norms these bounds are compared with are measured by
:func:`prunebounds.norms.spectral_norm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from .errors import ParameterError
from .pruning import (error_fourth_moment, error_lp_norm, error_second_moment,
                      threshold_error_abs_moment, threshold_error_lp_norm, threshold_for_keep)
from .validate import check_choice, check_int, check_real

__all__ = [
    "asymptotic_norm_iid",
    "ErrorNormBounds",
    "pruning_error_norm_bounds",
    "latala_bound",
    "latala_bound_iid",
    "bandeira_van_handel_bound",
    "bandeira_van_handel_bound_iid",
    "BVH_CONSTANT",
    "BVH_SYMMETRIC_CONSTANT",
    "frobenius_bound",
    "frobenius_bound_iid",
    "markov_factor",
    "markov_probability",
    "provable_error_norm_bound",
    "threshold_error_norm_bounds",
    "crossover_width",
]

#: The constant of Bandeira & van Handel (2016), Theorem 1.1: C(eps) = 6/sqrt(log(1+eps)).
BVH_CONSTANT = 6.0
#: The constant of Bandeira & van Handel (2016), Corollary 3.6 (symmetric entries): 14 alpha.
BVH_SYMMETRIC_CONSTANT = 14.0


# --------------------------------------------------------------------------- helpers
def _moment_matrix(name: str, x: Any) -> np.ndarray:
    """A 2-D float64 array of finite, non-negative entries."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a matrix of numbers, got {type(x).__name__}") from exc
    if a.ndim != 2 or a.size == 0:
        raise ParameterError(f"{name} must be a non-empty 2-D matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ParameterError(f"{name} must have finite, non-negative entries (moments)")
    return a


def asymptotic_norm_iid(n_rows: int, n_cols: int, m2: float) -> float:
    """sqrt(m2) (sqrt(n_rows) + sqrt(n_cols)): the large-matrix limit of ||X||_2.

    For i.i.d. mean-zero entries with variance m2 and a finite fourth moment,
    ||X||_2 / (sqrt(m2)(sqrt(n_rows) + sqrt(n_cols))) -> 1 almost surely when both sides
    grow proportionally (Yin, Bai & Krishnaiah 1988; Bai & Yin 1993). It is not a bound
    at finite size, only the value every bound is compared with.
    """
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_cols = check_int("n_cols", n_cols, minimum=1)
    m2 = check_real("m2", m2, minimum=0.0)
    return float(math.sqrt(m2) * (math.sqrt(n_rows) + math.sqrt(n_cols)))


#: alpha values over which :func:`pruning_error_norm_bounds` minimises the symmetric bound.
SYMMETRIC_ALPHAS = (3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0)


@dataclass(frozen=True)
class ErrorNormBounds:
    """The bounds of :func:`pruning_error_norm_bounds` on E||Delta||_2 (and the limit)."""

    latala_c1: float      # Latala with the unknown universal C shown as 1
    bvh_gaussian: float   # Bandeira-van Handel, Gaussian version: a heuristic for Delta
    bvh_symmetric: float  # Bandeira-van Handel for symmetric entries: a theorem for Delta
    frobenius: float      # sqrt(sum E Delta^2): a theorem for any entries
    asymptotic: float     # the large-matrix value sqrt(m2)(sqrt(n) + sqrt(m)), not a bound


def pruning_error_norm_bounds(n_rows: int, n_cols: int, d: float, psi: float) -> ErrorNormBounds:
    """Every bound of this module on E||Delta||_2 for a pruned i.i.d. N(0, psi) matrix.

    Delta = W - W_hat with W_ij ~ N(0, psi) i.i.d. pruned by the paper's rule with
    parameter d has i.i.d. symmetric entries with E Delta^2 = psi (d/(d+2))^{3/2},
    E Delta^4 = 3 psi^2 (d/(d+2))^{5/2} and E|Delta|^p from
    :func:`prunebounds.pruning.error_abs_moment`. Returns an :class:`ErrorNormBounds`:

    * ``latala_c1``: :func:`latala_bound_iid` with the unknown universal C shown as 1;
    * ``bvh_gaussian``: :func:`bandeira_van_handel_bound_iid`, ``version="gaussian"``,
      minimised over eps -- a heuristic for Delta, which is not Gaussian;
    * ``bvh_symmetric``: ``version="symmetric"`` minimised over alpha in
      :data:`SYMMETRIC_ALPHAS` -- the version that is a theorem for Delta (every alpha
      >= 3 gives a valid bound, so their minimum is one too);
    * ``frobenius``: :func:`frobenius_bound_iid`, a theorem for any entries;
    * ``asymptotic``: :func:`asymptotic_norm_iid`, the large-matrix value (not a bound).

    All are bounds on the *expectation*; Markov's inequality (:func:`markov_factor`)
    turns them into high-probability bounds.
    """
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_cols = check_int("n_cols", n_cols, minimum=1)
    d = check_real("d", d, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    return _iid_error_bounds(n_rows, n_cols, float(error_second_moment(d, psi)),
                             float(error_fourth_moment(d, psi)),
                             lambda p: error_lp_norm(d, psi, p))


def _iid_error_bounds(n_rows: int, n_cols: int, m2: float, m4: float,
                      p_norm: Callable[[int], float]) -> ErrorNormBounds:
    """Every bound of :class:`ErrorNormBounds` for i.i.d. symmetric entries with second
    and fourth moments m2, m4 and L^p norm ``p_norm(p)`` (all zero when m2 = 0)."""
    if m2 == 0.0:
        return ErrorNormBounds(latala_c1=0.0, bvh_gaussian=0.0, bvh_symmetric=0.0,
                               frobenius=0.0, asymptotic=0.0)
    return ErrorNormBounds(
        latala_c1=latala_bound_iid(n_rows, n_cols, m2, m4),
        bvh_gaussian=bandeira_van_handel_bound_iid(n_rows, n_cols, m2, eps="best"),
        bvh_symmetric=_symmetric_iid(n_rows, n_cols, m2, p_norm),
        frobenius=frobenius_bound_iid(n_rows, n_cols, m2),
        asymptotic=asymptotic_norm_iid(n_rows, n_cols, m2),
    )


# --------------------------------------------------------------------------- Latala
def latala_bound(second_moments: Any, fourth_moments: Any) -> float:
    """Latala's bound on E||X||_2 with the universal constant C shown as 1.

    Latala, "Some estimates of norms of random matrices", Proc. AMS 133 (2005), Theorem 2:
    for a matrix X with independent mean-zero entries,

        E||X|| <= C ( max_i sqrt(sum_j E X_ij^2) + max_j sqrt(sum_i E X_ij^2)
                      + (sum_ij E X_ij^4)^{1/4} ),

    with C a universal constant that the theorem does not specify. This function returns
    the bracket, i.e. the bound with C = 1, which is **not** itself a guaranteed upper
    bound: only C times it is. The paper's Lemma 4.1 (reconstructed) applies this bound
    to the pruning error, whose moments are
    :func:`prunebounds.pruning.error_second_moment` and ``error_fourth_moment``.

    Args:
        second_moments: matrix of E X_ij^2 (shape of X).
        fourth_moments: matrix of E X_ij^4 (same shape).
    """
    m2 = _moment_matrix("second_moments", second_moments)
    m4 = _moment_matrix("fourth_moments", fourth_moments)
    if m2.shape != m4.shape:
        raise ParameterError(f"second_moments {m2.shape} and fourth_moments {m4.shape} "
                             "must have the same shape (that of the matrix)")
    row = math.sqrt(m2.sum(axis=1).max())
    col = math.sqrt(m2.sum(axis=0).max())
    return float(row + col + m4.sum() ** 0.25)


def latala_bound_iid(n_rows: int, n_cols: int, m2: float, m4: float) -> float:
    """:func:`latala_bound` (C = 1) for i.i.d. entries: sqrt(n_cols m2) + sqrt(n_rows m2)
    + (n_rows n_cols m4)^{1/4}."""
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_cols = check_int("n_cols", n_cols, minimum=1)
    m2 = check_real("m2", m2, minimum=0.0)
    m4 = check_real("m4", m4, minimum=0.0)
    return float(math.sqrt(n_cols * m2) + math.sqrt(n_rows * m2) + (n_rows * n_cols * m4) ** 0.25)


# --------------------------------------------------------------------------- Bandeira & van Handel
def _bvh_c(eps: float) -> float:
    return BVH_CONSTANT / math.sqrt(math.log1p(eps))


def _bvh_gaussian(s1: float, s2: float, s_star: float, n: int, m: float, eps: float | str,
                  version: str) -> float:
    if version == "gaussian":
        lead, log_dim = s1 + s2, math.log(min(n, m))
    else:  # "dilation"
        lead, log_dim = 2.0 * max(s1, s2), math.log(n + m)

    def value(e: float) -> float:
        return (1.0 + e) * (lead + _bvh_c(e) * s_star * math.sqrt(log_dim))

    if eps == "best":
        res = minimize_scalar(value, bounds=(1e-6, 0.5), method="bounded",
                              options={"xatol": 1e-8})
        return float(min(res.fun, value(0.5)))
    return float(value(check_real("eps", eps, minimum=1e-12, maximum=0.5)))


def _bvh_symmetric(s1: float, s2: float, n: int, m: int, alpha: float,
                   abs_moment_norm: Callable[[int], float]) -> float:
    alpha = check_real("alpha", alpha, minimum=3.0)
    size = n + m  # the symmetric dilation [[0, X], [X^T, 0]]
    p = 2 * math.ceil(alpha * math.log(size))
    norm_p = float(abs_moment_norm(p))
    if not math.isfinite(norm_p) or norm_p < 0:
        raise ParameterError(f"abs_moment_norm({p}) must be a finite number >= 0, got {norm_p}")
    return float(math.exp(2.0 / alpha) * (2.0 * max(s1, s2)
                 + BVH_SYMMETRIC_CONSTANT * alpha * norm_p * math.sqrt(math.log(size))))


def _bvh_dispatch(s1: float, s2: float, s_star: float, n: int, m: int, *, eps, version: str,
                  alpha: float, abs_moment_norm) -> float:
    """The chosen version of the Bandeira--van Handel bound from sigma_1, sigma_2, sigma_*."""
    if version == "symmetric":
        if abs_moment_norm is None:
            raise ParameterError("version='symmetric' needs abs_moment_norm(p) = "
                                 "max_ij (E|X_ij|^p)^(1/p)")
        return _bvh_symmetric(s1, s2, n, m, alpha, abs_moment_norm)
    if eps != "best" and isinstance(eps, str):
        raise ParameterError(f"eps must be a number in (0, 0.5] or 'best', got {eps!r}")
    return _bvh_gaussian(s1, s2, s_star, n, m, eps, version)


def bandeira_van_handel_bound(second_moments: Any, *, eps: float | str = 0.5,
                              version: str = "gaussian", alpha: float = 3.0,
                              abs_moment_norm: Callable[[int], float] | None = None) -> float:
    """Bandeira & van Handel's explicit-constant bound on E||X||_2 (Ann. Probab. 44(4), 2016).

    Notation: b_ij^2 = E X_ij^2 (``second_moments``), sigma_1 = max_i sqrt(sum_j b_ij^2)
    (largest row), sigma_2 = max_j sqrt(sum_i b_ij^2) (largest column),
    sigma_* = max_ij b_ij, X of size n x m.

    ``version="gaussian"`` -- rectangular Gaussian matrices, X_ij = b_ij g_ij with
    independent standard Gaussians g_ij (Bandeira & van Handel, the rectangular
    corollary of their Section 3, Cor. 3.11 in the numbering the project brief cites):
    for every 0 < eps <= 1/2,

        E||X|| <= (1 + eps) { sigma_1 + sigma_2 + 6/sqrt(log(1+eps)) sigma_* sqrt(log min(n, m)) }.

    ``version="dilation"`` -- the same Gaussian hypothesis, derived from their
    Theorem 1.1 (n x n symmetric Gaussian: E||Y|| <= (1+eps){2 sigma + 6/sqrt(log(1+eps))
    sigma_* sqrt(log n)}) applied to the (n+m) x (n+m) dilation [[0, X], [X^T, 0]], whose
    norm is ||X|| and whose largest row norm is max(sigma_1, sigma_2):

        E||X|| <= (1 + eps) { 2 max(sigma_1, sigma_2) + 6/sqrt(log(1+eps)) sigma_* sqrt(log(n+m)) }.

    It is weaker than the rectangular corollary but rests only on Theorem 1.1.

    ``version="symmetric"`` -- independent **symmetric** (not necessarily Gaussian or
    bounded) entries X_ij = xi_ij b_ij with E xi_ij^2 = 1: their Corollary 3.6 (for a
    symmetric n x n matrix, every alpha >= 3:
    E||Y|| <= e^{2/alpha} [2 sigma + 14 alpha max_ij ||Y_ij||_{2 ceil(alpha log n)} sqrt(log n)],
    ||.||_p the L^p norm of an entry), applied to the dilation of size N = n + m:

        E||X|| <= e^{2/alpha} [ 2 max(sigma_1, sigma_2) + 14 alpha max_ij ||X_ij||_p sqrt(log N) ],
        p = 2 ceil(alpha log N).

    ``abs_moment_norm(p)`` must return max_ij (E|X_ij|^p)^{1/p}; for the pruning error,
    ``lambda p: error_abs_moment(d, psi, p) ** (1/p)``
    (:func:`prunebounds.pruning.error_abs_moment`).

    Which version applies to the pruning error. Delta_ij = W_ij 1[dropped] is symmetric
    and has independent entries, but it is neither Gaussian nor bounded (its law is an
    atom at zero plus a narrower Gaussian bump: sub-Gaussian, not Gaussian). So only
    ``version="symmetric"`` is a theorem for it (under the paper's Gaussian-weights
    assumption); its price is the high moment ||Delta_ij||_p with p ~ 2 alpha log N,
    which adds a factor of order sqrt(log N) to the sigma_* term. Applying
    ``"gaussian"`` or ``"dilation"`` to Delta (with b_ij^2 = E Delta_ij^2) is a heuristic:
    it treats Delta as if it were Gaussian with the same variances, which is what the
    leading term sigma_1 + sigma_2 describes well in practice but is not covered by
    the corollary's hypotheses.

    Source caveat: arXiv:1408.6185 could not be opened from this project's tools. The
    constants 6/sqrt(log(1+eps)) (Theorem 1.1) and 14 alpha, alpha >= 3 (Corollary 3.6,
    as quoted in secondary sources) are as stated there to the best of our knowledge;
    the rectangular corollary is stated with the constant of Theorem 1.1. The chapter
    should check these constants against the paper before quoting them.

    Args:
        second_moments: matrix of E X_ij^2 (shape n x m).
        eps: in (0, 1/2], or ``"best"`` to minimise the bound over eps (valid, since the
            bound holds for every eps). Ignored by ``"symmetric"``.
        version: ``"gaussian"``, ``"dilation"`` or ``"symmetric"``.
        alpha: >= 3, only for ``"symmetric"``.
        abs_moment_norm: p -> max_ij ||X_ij||_p, required for ``"symmetric"``.
    """
    version = check_choice("version", version, ("gaussian", "dilation", "symmetric"))
    b2 = _moment_matrix("second_moments", second_moments)
    n, m = b2.shape
    s1 = math.sqrt(b2.sum(axis=1).max())
    s2 = math.sqrt(b2.sum(axis=0).max())
    return _bvh_dispatch(s1, s2, math.sqrt(b2.max()), n, m, eps=eps, version=version,
                         alpha=alpha, abs_moment_norm=abs_moment_norm)


def bandeira_van_handel_bound_iid(n_rows: int, n_cols: int, m2: float, *,
                                  eps: float | str = 0.5, version: str = "gaussian",
                                  alpha: float = 3.0,
                                  abs_moment_norm: Callable[[int], float] | None = None) -> float:
    """:func:`bandeira_van_handel_bound` for i.i.d. entries with E X_ij^2 = m2."""
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_cols = check_int("n_cols", n_cols, minimum=1)
    m2 = check_real("m2", m2, minimum=0.0)
    version = check_choice("version", version, ("gaussian", "dilation", "symmetric"))
    # closed form of the row / column / entry maxima (no n_rows x n_cols array, so the
    # function also serves matrix sizes far beyond memory)
    s1, s2 = math.sqrt(n_cols * m2), math.sqrt(n_rows * m2)
    return _bvh_dispatch(s1, s2, math.sqrt(m2), n_rows, n_cols, eps=eps, version=version,
                         alpha=alpha, abs_moment_norm=abs_moment_norm)


# --------------------------------------------------------------------------- naive bound and Markov
def frobenius_bound(second_moments: Any) -> float:
    """sqrt(sum_ij E X_ij^2) >= E||X||_F >= E||X||_2 (Jensen, then ||X||_2 <= ||X||_F).

    The naive bound a reviewer asked the random-matrix bounds to be compared with: for
    i.i.d. entries it grows like sqrt(n m), against sqrt(n) + sqrt(m) for Latala's and
    Bandeira-van Handel's bounds. Unlike those it needs no independence at all.
    """
    return float(math.sqrt(_moment_matrix("second_moments", second_moments).sum()))


def frobenius_bound_iid(n_rows: int, n_cols: int, m2: float) -> float:
    """:func:`frobenius_bound` for i.i.d. entries: sqrt(n_rows n_cols m2)."""
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_cols = check_int("n_cols", n_cols, minimum=1)
    return float(math.sqrt(n_rows * n_cols * check_real("m2", m2, minimum=0.0)))


def markov_factor(prob: float) -> float:
    """The lambda with P(||X|| <= lambda E||X||) >= prob by Markov's inequality: 1/(1 - prob).

    Markov: P(||X|| > lambda E||X||) <= 1/lambda, so lambda = 1/(1 - prob) gives
    probability at least ``prob`` (the step from an expectation bound to the paper's
    high-probability Lemma 4.1, reconstructed). prob = 0.9 costs a factor 10.
    """
    prob = check_real("prob", prob, minimum=0.0)
    if prob >= 1.0:
        raise ParameterError(f"prob must be in [0, 1) (prob = 1 needs lambda = infinity), got {prob}")
    return 1.0 / (1.0 - prob)


def markov_probability(lam: float) -> float:
    """The inverse of :func:`markov_factor`: the guaranteed probability 1 - 1/lambda (lambda >= 1)."""
    lam = check_real("lam", lam, minimum=1.0)
    return 1.0 - 1.0 / lam


# --------------------------------------------------------------------------- the provable bound, threshold pruning, crossover
def _symmetric_iid(n_rows: int, n_cols: int, m2: float, p_norm: Callable[[int], float]) -> float:
    """The symmetric Bandeira-van Handel bound minimised over :data:`SYMMETRIC_ALPHAS`."""
    return float(min(bandeira_van_handel_bound_iid(n_rows, n_cols, m2, version="symmetric",
                                                   alpha=a, abs_moment_norm=p_norm)
                     for a in SYMMETRIC_ALPHAS))


def provable_error_norm_bound(n_rows: int, n_cols: int, d: float, psi: float) -> float:
    """b(d) = min(symmetric Bandeira-van Handel bound, Frobenius bound) on E||Delta||_2.

    The bound of the book's Lemma 4.1 (reconstructed) for an n_rows x n_cols layer with
    i.i.d. N(0, psi) weights pruned by the rule (R) with parameter d: both bounds are
    theorems for the pruning error (independent symmetric entries, moments from
    :mod:`prunebounds.pruning`), so their minimum is one too. Equal to
    ``min(b.bvh_symmetric, b.frobenius)`` for ``b = pruning_error_norm_bounds(...)``
    without computing the heuristic ones. Markov's inequality turns it into
    P(||Delta|| <= lambda b(d)) >= 1 - 1/lambda.
    """
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_cols = check_int("n_cols", n_cols, minimum=1)
    d = check_real("d", d, minimum=0.0)
    psi = check_real("psi", psi, minimum=0.0)
    m2 = float(error_second_moment(d, psi))
    if m2 == 0.0:
        return 0.0
    sym = _symmetric_iid(n_rows, n_cols, m2, lambda p: error_lp_norm(d, psi, p))
    return float(min(sym, frobenius_bound_iid(n_rows, n_cols, m2)))


def threshold_error_norm_bounds(n_rows: int, n_cols: int, keep: float,
                                psi: float) -> ErrorNormBounds:
    """The bounds of :func:`pruning_error_norm_bounds` for pruning at a fixed threshold.

    Deterministic magnitude pruning of an i.i.d. N(0, psi) matrix at the fixed threshold
    t = tau sqrt(psi), tau = :func:`prunebounds.pruning.threshold_for_keep` (``keep``),
    leaves the error Delta_ij = W_ij 1{|W_ij| < t}: independent, symmetric, mean-zero
    entries, bounded by t. The same theorems apply as to the random rule (R), with the
    truncated-Gaussian moments of :func:`prunebounds.pruning.threshold_error_abs_moment`
    (so ``bvh_symmetric`` and ``frobenius`` are theorems for it; ``latala_c1`` keeps
    C = 1 and ``bvh_gaussian`` stays a heuristic). At equal expected sparsity, take
    keep = chi(d).
    """
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_cols = check_int("n_cols", n_cols, minimum=1)
    tau = threshold_for_keep(keep)
    psi = check_real("psi", psi, minimum=0.0)
    return _iid_error_bounds(n_rows, n_cols, threshold_error_abs_moment(tau, psi, 2.0),
                             threshold_error_abs_moment(tau, psi, 4.0),
                             lambda p: threshold_error_lp_norm(tau, psi, p))


def _symmetric_below_frobenius(n: int, d: float) -> bool:
    m2 = float(error_second_moment(d, 1.0))
    return _symmetric_iid(n, n, m2, lambda p: error_lp_norm(d, 1.0, p)) < \
        frobenius_bound_iid(n, n, m2)


def crossover_width(d: float, n_max: int = 10 ** 7) -> int:
    """The smallest width n at which the provable random-matrix bound beats Frobenius.

    For an n x n layer of i.i.d. Gaussian weights pruned by the rule (R) with parameter
    d: the first n for which the symmetric Bandeira-van Handel bound
    (:func:`pruning_error_norm_bounds`, ``bvh_symmetric``) is below the Frobenius bound
    sqrt(n^2 E Delta^2). Both scale with sqrt(psi), so the answer does not depend on
    psi. Found by bisection on the integers in [2, n_max]: the ratio of the two bounds
    falls like log(n)^{3/2} / sqrt(n) apart from small upward steps where the moment
    order p = 2 ceil(alpha log 2n) grows, which do not move the crossing for the
    values of d in (0, 10] (checked against a linear scan in the tests).

    Raises:
        ParameterError: if d <= 0 or the bound is not below Frobenius at n_max.
    """
    d = check_real("d", d, minimum=0.0)
    if d == 0.0:
        raise ParameterError("d must be > 0: at d = 0 nothing is pruned and both bounds are 0")
    n_max = check_int("n_max", n_max, minimum=3)
    if not _symmetric_below_frobenius(n_max, d):
        raise ParameterError(f"the symmetric bound is not below the Frobenius bound at "
                             f"n_max = {n_max:,}; give a larger n_max")
    lo, hi = 2, n_max  # not below at lo (checked next), below at hi
    if _symmetric_below_frobenius(lo, d):
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _symmetric_below_frobenius(mid, d):
            hi = mid
        else:
            lo = mid
    return hi
