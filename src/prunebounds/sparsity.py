"""Distributed sparsity of a pruned layer (the paper's Lemma 5.1, reconstructed).

Sketching (see :mod:`prunebounds.sketching`) needs a bound ``j`` on the number of
non-zeros in *every* row and column of a pruned weight matrix, not only on their total.
Under the paper's assumption that the trained weights are i.i.d. Gaussian, the pruning
rule keeps each entry independently with probability ``keep = chi(d) = 1 - sqrt(d/(d+2))``,
so a row of length ``L`` keeps ``Binomial(L, keep)`` entries and the rows (or the
columns) of one layer are independent.  The quantity to control is therefore the
maximum of ``n`` i.i.d. binomials.

This module gives that maximum four ways, from exact to loose:

* its exact expectation and quantiles (:func:`expected_max_nonzeros`,
  :func:`max_nonzeros_quantile`);
* a high-probability bound by a Chernoff or Bernstein tail and a union bound over the
  lines (:func:`max_nonzeros_tail_bound`);
* the Markov/Chebyshev-type bound that the paper's Lemma 5.1 uses
  (:func:`lemma51_bound`, *reconstructed*: the lemma's own statement was not available);
* the authors' "predicted" count ``3 * L * keep`` (:func:`authors_predicted_nonzeros`).

It also checks the *distribution* of the counts, not only their maximum
(:func:`dispersion_index`, :func:`binomial_gof`), explains a mismatch by the trained
weights themselves (:func:`conditional_count_moments`: given the weights, only the mask
is random), and counts what a pruned network loses outright: all-zero rows and columns
(:func:`dead_rows`, :func:`dead_cols`, :func:`expected_dead_lines`,
:func:`conditional_dead_lines`) and the hidden neurons they disconnect
(:func:`disconnected_neurons`).

Matrices may be NumPy arrays or PyTorch tensors in PyTorch's (out x in) layout, so a
*row* is one output neuron's incoming weights (length = fan-in) and a *column* is one
input's outgoing weights (length = fan-out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from .errors import ParameterError
from .pruning import keep_probability
from .validate import check_choice, check_int, check_real

TAIL_METHODS = ("chernoff", "bernstein")
LEMMA51_KINDS = ("chebyshev", "markov", "markov-chebyshev")


# --------------------------------------------------------------------------- counting


def _as_matrix(W: Any) -> np.ndarray:
    """``W`` (NumPy array or torch tensor) as a 2-D NumPy array; raise otherwise."""
    if hasattr(W, "detach"):  # a torch tensor, possibly on a GPU
        W = W.detach().cpu().numpy()
    W = np.asarray(W)
    if W.ndim != 2:
        raise ParameterError(f"expected a 2-D weight matrix, got shape {W.shape}")
    return W


def _count_nonzero(W: Any, axis: int) -> np.ndarray:
    """Non-zeros of the 2-D matrix ``W`` along ``axis``; a torch tensor is counted in
    torch (where it lives, without a NumPy copy), anything else by NumPy."""
    if hasattr(W, "detach") and W.ndim == 2:
        return (W.detach() != 0).sum(dim=axis).cpu().numpy().astype(np.int64)
    return np.count_nonzero(_as_matrix(W), axis=axis).astype(np.int64)


def nonzeros_per_row(W: Any) -> np.ndarray:
    """Number of non-zero entries in each row of ``W`` (the paper's ``j_r``, per row)."""
    return _count_nonzero(W, 1)


def nonzeros_per_col(W: Any) -> np.ndarray:
    """Number of non-zero entries in each column of ``W`` (the paper's ``j_c``)."""
    return _count_nonzero(W, 0)


def dead_rows(W: Any) -> int:
    """Number of all-zero rows (output neurons whose every incoming weight was pruned)."""
    return int(np.sum(nonzeros_per_row(W) == 0))


def dead_cols(W: Any) -> int:
    """Number of all-zero columns (inputs whose every outgoing weight was pruned)."""
    return int(np.sum(nonzeros_per_col(W) == 0))


def check_layer_index(value: Any, n_layers: int, name: str = "layer") -> int:
    """``value`` as a 1-based layer number in 1..``n_layers``; raise a ParameterError otherwise."""
    n = check_int("n_layers", n_layers, minimum=1)
    v = check_int(name, value, minimum=1)
    if v > n:
        raise ParameterError(f"{name} must be an integer in 1..{n} (the network has {n} "
                             f"linear layers), got {v}")
    return v


@dataclass(frozen=True)
class LineCounts:
    """Statistics of the non-zero counts of the rows (or the columns) of one matrix.

    Attributes:
        max, min, mean: of the counts; var: their unbiased sample variance.
        dead: number of all-zero lines.
        spread: max / mean, the concentration of the non-zeros on a few lines (1 for
            perfectly even lines; NaN for an all-zero matrix).
        binomial_max: the expected maximum of as many i.i.d. Binomial(length, density)
            counts, density = the matrix's fraction of non-zeros
            (:func:`expected_max_nonzeros`): what independent coin flips would give.
    """

    max: int
    min: int
    mean: float
    var: float
    dead: int
    spread: float
    binomial_max: float


@dataclass(frozen=True)
class LayerSparsity:
    """The row and column counts of one weight matrix (out x in)."""

    shape: tuple[int, int]
    rows: LineCounts
    cols: LineCounts


def _summary(counts: np.ndarray, length: int, density: float) -> LineCounts:
    mean = float(counts.mean())
    return LineCounts(max=int(counts.max()), min=int(counts.min()), mean=mean,
                      var=float(counts.var(ddof=1)) if counts.size > 1 else 0.0,
                      dead=int(np.sum(counts == 0)),
                      spread=float(counts.max() / mean) if mean > 0 else float("nan"),
                      binomial_max=expected_max_nonzeros(counts.size, length, density))


def sparsity_summary(weights: Any) -> list[LayerSparsity]:
    """Per weight matrix (out x in), the statistics of its row and column counts.

    A torch tensor is counted on its own device (only the counts come to the host)."""
    if hasattr(weights, "ndim") and getattr(weights, "ndim") == 2:
        weights = [weights]
    out = []
    for W in weights:
        M = W if hasattr(W, "detach") else _as_matrix(W)   # a tensor is counted where it is
        if M.ndim != 2:
            raise ParameterError(f"expected a 2-D weight matrix, got shape {tuple(M.shape)}")
        n_out, n_in = (int(v) for v in M.shape)
        rows, cols = nonzeros_per_row(M), nonzeros_per_col(M)
        density = float(rows.sum()) / (n_out * n_in)
        out.append(LayerSparsity(shape=(n_out, n_in),
                                 rows=_summary(rows, n_in, density),
                                 cols=_summary(cols, n_out, density)))
    if not out:
        raise ParameterError("need at least one weight matrix")
    return out


def disconnected_neurons(weights: Any) -> list[int]:
    """Per hidden layer, the neurons cut off from the network's computation.

    ``weights`` are the matrices A^1, ..., A^L of an MLP in PyTorch's (out x in)
    layout. Hidden neuron i of layer l (the output i of A^l, l < L) is disconnected when
    its row of A^l is all zero (it receives no input: its output is the constant
    relu(bias)) or its column of A^{l+1} is all zero (its output is used by nobody).
    Either way the sparsity of the surviving weights is no longer spread over all
    neurons, the "distributed sparsity" that sketching assumes. Returns L - 1 counts.
    """
    mats = [_as_matrix(W) for W in weights]
    if len(mats) < 2:
        raise ParameterError("need at least two weight matrices (one hidden layer)")
    counts = []
    for l, (A, B) in enumerate(zip(mats[:-1], mats[1:]), start=1):
        if B.shape[1] != A.shape[0]:
            raise ParameterError(f"weight matrices do not chain at layer {l}: "
                                 f"{A.shape} then {B.shape} (out x in)")
        no_input = nonzeros_per_row(A) == 0
        no_output = nonzeros_per_col(B) == 0
        counts.append(int(np.sum(no_input | no_output)))
    return counts


def expected_dead_lines(n_lines: int, line_length: int, keep: float) -> float:
    """E[number of all-zero lines] = n (1 - keep)^L for n i.i.d. Binomial(L, keep) lines.

    A line (row or column) is dead when each of its L entries is dropped, probability
    (1 - keep)^L under the Gaussian assumption (:func:`expected_max_nonzeros`); the
    expectation of the count of such lines among n is n times that.
    """
    n, length, p = _check_binomial(n_lines, line_length, keep)
    return float(n * (1.0 - p) ** length)


def conditional_count_moments(W: Any, d: float, axis: str = "rows") -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each line's count *given the trained weights* W.

    Under the paper's rule (pruning.py, (R)) entry w_ij is kept with probability
    p_ij = 1 - exp(-w_ij^2/(d Psi)), Psi the population variance of W, independently.
    Given W, a line's count is therefore a Poisson-binomial variable with mean
    sum_j p_ij and variance sum_j p_ij (1 - p_ij): no Gaussian assumption is used.
    Comparing these with Binomial(L, chi(d)) separates what the Gaussian assumption gets
    wrong (lines with different weight scales have different means) from the
    randomness of the mask. ``axis`` is ``"rows"`` or ``"cols"``.
    """
    M = _as_matrix(W).astype(np.float64)
    d = check_real("d", d, minimum=0.0)
    axis = check_choice("axis", axis, ("rows", "cols"))
    p = np.asarray(keep_probability(M, d, float(M.var())))
    ax = 1 if axis == "rows" else 0
    return p.sum(axis=ax), (p * (1.0 - p)).sum(axis=ax)


# ------------------------------------------------------- maximum of i.i.d. binomials


def _check_binomial(n_lines: Any, line_length: Any, keep: Any) -> tuple[int, int, float]:
    n = check_int("n_lines", n_lines, minimum=1)
    length = check_int("line_length", line_length, minimum=1)
    p = check_real("keep", keep, minimum=0.0, maximum=1.0)
    return n, length, p


def _log_cdf_of_max(n: int, length: int, keep: float) -> np.ndarray:
    """log P(max of n Binomial(length, keep) <= k) for k = 0, ..., length."""
    k = np.arange(length + 1)
    return n * stats.binom.logcdf(k, length, keep)


def expected_max_nonzeros(n_lines: int, line_length: int, keep: float) -> float:
    """Exact E[max_i J_i] for ``n_lines`` i.i.d. ``J_i ~ Binomial(line_length, keep)``.

    Uses E[M] = sum_{k>=0} P(M > k) = sum_{k=0}^{L-1} (1 - F(k)^n), with F the binomial
    CDF, evaluated as ``-expm1(n log F(k))`` so that tiny tails are not lost.  This is
    the exact mean of the largest row (or column) count of a layer pruned at keep
    fraction ``chi(d)`` under the Gaussian-weight assumption (PAPER.md, Lemma 5.1).
    """
    n, length, p = _check_binomial(n_lines, line_length, keep)
    log_f = _log_cdf_of_max(n, length, p)[:-1]
    return float(np.sum(-np.expm1(log_f)))


def max_nonzeros_quantile(n_lines: int, line_length: int, keep: float,
                          prob: float) -> int:
    """Smallest integer ``k`` with P(max_i J_i <= k) = F(k)^n_lines >= ``prob``.

    ``J_i ~ Binomial(line_length, keep)`` i.i.d.; ``prob`` in (0, 1].  The exact
    ``prob``-quantile of the largest per-row count (Lemma 5.1's quantity).
    """
    n, length, p = _check_binomial(n_lines, line_length, keep)
    q = check_real("prob", prob, minimum=0.0, maximum=1.0)
    if q == 0.0:
        raise ParameterError("prob must be in (0, 1], got 0")
    ok = _log_cdf_of_max(n, length, p) >= math.log(q) - 1e-12
    return int(np.argmax(ok))  # ok[-1] is always True since F(L) = 1


def _kl_bernoulli(a: float, p: float) -> float:
    """Kullback-Leibler divergence D(Ber(a) || Ber(p)) in nats."""
    out = 0.0
    if a > 0:
        out += a * math.log(a / p)
    if a < 1:
        out += (1 - a) * math.log((1 - a) / (1 - p))
    return out


def _chernoff_threshold(n: int, length: int, p: float, delta: float) -> float:
    """Solve n exp(-L D(b/L || p)) = delta for b in (Lp, L] (L if no root)."""
    log_target = math.log(delta / n)
    excess = lambda b: -length * _kl_bernoulli(b / length, p) - log_target
    if p >= 1.0 or excess(float(length)) >= 0:
        return float(length)
    if excess(length * p) <= 0:  # delta >= n: the statement is empty
        return length * p
    return float(optimize.brentq(excess, length * p, float(length), xtol=1e-9))


def _bernstein_threshold(n: int, length: int, p: float, delta: float) -> float:
    """Lp + s with exp(-s^2 / (2 (sigma^2 + s/3))) = delta / n (capped at L)."""
    u = math.log(n / delta)
    if u <= 0:
        return length * p
    var = length * p * (1 - p)
    s = u / 3 + math.sqrt(u * u / 9 + 2 * var * u)
    return min(float(length), length * p + s)


def max_nonzeros_tail_bound(n_lines: int, line_length: int, keep: float,
                            delta: float, method: str = "chernoff") -> float:
    """A value ``b`` with P(max_i J_i >= b) <= ``delta`` (union bound over the lines).

    ``J_i ~ Binomial(L, keep)``, ``L = line_length``.  A union bound over the
    ``n_lines`` lines reduces the maximum to one binomial tail at level ``delta/n``:

    * ``"chernoff"`` (relative-entropy form): P(J >= b) <= exp(-L D(b/L || keep)) for
      b >= L keep, with D the Bernoulli Kullback-Leibler divergence; ``b`` solves
      n exp(-L D(b/L || keep)) = delta.
    * ``"bernstein"``: P(J - L keep >= s) <= exp(-s^2 / (2 (sigma^2 + s/3))) with
      sigma^2 = L keep (1 - keep); ``b = L keep + s``.

    Both are standard (e.g. Boucheron, Lugosi & Massart 2013, ch. 2); Chernoff is the
    tighter.  The result is capped at ``L`` (a line never has more than ``L``
    non-zeros).  This is *our* sharp replacement for the paper's Lemma 5.1 bound.
    """
    n, length, p = _check_binomial(n_lines, line_length, keep)
    d = check_real("delta", delta, minimum=0.0, maximum=1.0)
    if d == 0.0:
        raise ParameterError("delta must be in (0, 1], got 0")
    method = check_choice("method", method, TAIL_METHODS)
    if p == 0.0:
        return 0.0
    if method == "chernoff":
        return _chernoff_threshold(n, length, p, d)
    return _bernstein_threshold(n, length, p, d)


def lemma51_bound(line_length: int, keep: float, lam: float, n_lines: int = 1,
                  kind: str = "chebyshev") -> tuple[float, float]:
    """Markov/Chebyshev bound on the non-zeros per line (Lemma 5.1, *reconstructed*).

    The paper's statement of Lemma 5.1 was not available; a reviewer quotes a failure
    probability of the form ``1/lambda + d^{-1/3}``, i.e. a Markov term plus a
    Chebyshev term.  We state the two elementary ingredients, each with an honest
    failure probability, for ``J ~ Binomial(L, keep)``, mu = L keep,
    sigma = sqrt(L keep (1 - keep)):

    * ``"chebyshev"`` (one-sided, Cantelli): P(J >= mu + lam sigma) <= 1 / (1 + lam^2);
      bound ``mu + lam sigma``.
    * ``"markov"``: P(J >= lam mu) <= 1 / lam (lam >= 1); bound ``lam mu``.  With
      ``lam = 3`` this is the authors' "predicted" count ``3 L keep``
      (:func:`authors_predicted_nonzeros`), which thus fails for a *single* row with
      probability up to 1/3.
    * ``"markov-chebyshev"``: the two together, in the form whose failure probability
      is the reviewer-quoted ``1/lam + L^{-1/3}`` (reading the reviewer's ``d`` as the
      line length L): Markov gives J < lam mu except with probability 1/lam, and
      Chebyshev with deviation L^{2/3} gives J < mu + L^{2/3} except with probability
      keep (1 - keep) L^{-1/3} <= L^{-1/3}; both hold except with probability
      1/lam + L^{-1/3}, so the bound is ``min(lam mu, mu + L^{2/3})``.

    For all ``n_lines`` lines at once a union bound multiplies the failure probability
    by ``n_lines`` (capped at 1), which makes both bounds vacuous for a 784-row layer
    unless ``lam`` is large; compare :func:`max_nonzeros_tail_bound`.

    Returns:
        ``(bound, failure_probability)``: P(some line has >= bound non-zeros) <=
        failure_probability.
    """
    n, length, p = _check_binomial(n_lines, line_length, keep)
    kind = check_choice("kind", kind, LEMMA51_KINDS)
    mu = length * p
    if kind == "chebyshev":
        lam = check_real("lam", lam, minimum=0.0)
        bound, per_line = mu + lam * math.sqrt(mu * (1 - p)), 1.0 / (1.0 + lam * lam)
    elif kind == "markov-chebyshev":
        lam = check_real("lam", lam, minimum=1.0)
        dev = length ** (2.0 / 3.0)
        bound, per_line = min(lam * mu, mu + dev), 1.0 / lam + length ** (-1.0 / 3.0)
    else:
        lam = check_real("lam", lam, minimum=1.0)
        bound, per_line = lam * mu, 1.0 / lam
    return bound, min(1.0, n * per_line)


def authors_predicted_nonzeros(line_length: int, keep: float) -> float:
    """The authors' "predicted" maximal non-zeros per row: ``3 * line_length * keep``.

    Taken from the authors' code (``compression_bounds_arxiv``,
    ``get_number_of_zeros``): ``3 * W.shape[1] * chi(d)``, where ``W.shape[1]`` is the
    *fan-in* of the layer with the largest fan-in, i.e. the length of a row in
    PyTorch's (out x in) storage.  Their figure calls this length ``d_2``: in the
    paper's notation a layer ``A`` of size d_1 x d_2 acts on vectors of R^{d_2}, so
    d_2 is the number of columns = fan-in = row length.  The numbers confirm it: at
    d -> 0 (keep -> 1) the curve starts at 2352 = 3 * 784 for MNIST (every layer has
    fan-in 784) and 9216 = 3 * 3072 for CIFAR-10 (3072 is the first layer's fan-in,
    not its fan-out 2000).  The factor 3 is a Markov bound with lambda = 3
    (:func:`lemma51_bound` with ``kind="markov"``), not a high-probability bound on
    the maximum over rows.
    """
    length = check_int("line_length", line_length, minimum=1)
    p = check_real("keep", keep, minimum=0.0, maximum=1.0)
    return 3.0 * length * p



def conditional_dead_lines(W: Any, d: float, axis: str = "rows") -> float:
    """Expected number of all-zero lines of W after the paper's rule, *given* W.

    With p_ij = 1 - exp(-w_ij^2/(d Psi)) as in :func:`conditional_count_moments`, line i
    dies with probability prod_j (1 - p_ij) = exp(-sum_j w_ij^2 / (d Psi)); the
    expectation of the number of dead lines is the sum of these. It replaces the
    Gaussian n (1 - chi(d))^L (:func:`expected_dead_lines`) by the trained weights.
    """
    M = _as_matrix(W).astype(np.float64)
    d = check_real("d", d, minimum=0.0)
    axis = check_choice("axis", axis, ("rows", "cols"))
    psi = float(M.var())
    if d == 0.0 or psi == 0.0:
        return 0.0
    ax = 1 if axis == "rows" else 0
    return float(np.exp(-(M * M).sum(axis=ax) / (d * psi)).sum())


# ------------------------------------------------- is the distribution binomial?


def _counts(counts: Any) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim != 1 or c.size < 2:
        raise ParameterError(f"counts must be a 1-D array of at least 2 counts, got shape {c.shape}")
    if not np.issubdtype(c.dtype, np.integer):
        if not np.all(np.isfinite(c)) or not np.all(c == np.round(c)):
            raise ParameterError("counts must be integers")
        c = c.astype(np.int64)
    return c


def dispersion_index(counts: Any, line_length: int, keep: float) -> tuple[float, float]:
    """Ratio of the sample variance of ``counts`` to the binomial variance L p (1 - p).

    For n i.i.d. Binomial(L, p) counts the statistic (n - 1) s^2 / (L p (1 - p)) is
    approximately chi-square with n - 1 degrees of freedom (the classical binomial
    dispersion test). Returns ``(s^2 / (L p (1 - p)), p_value)`` with the upper-tail
    p-value: a ratio well above 1 with a tiny p-value means the lines are *not*
    identically distributed (over-dispersion), e.g. rows with different weight scales.
    """
    c = _counts(counts)
    length = check_int("line_length", line_length, minimum=1)
    if np.any(c < 0) or np.any(c > length):
        raise ParameterError(f"counts must lie in [0, {length}]")
    p = check_real("keep", keep, minimum=0.0, maximum=1.0)
    if p in (0.0, 1.0):
        raise ParameterError("keep must be strictly between 0 and 1 for a dispersion test")
    n = c.size
    ratio = float(c.var(ddof=1) / (length * p * (1 - p)))
    return ratio, float(stats.chi2.sf((n - 1) * ratio, n - 1))


@dataclass(frozen=True)
class GoodnessOfFit:
    """Pearson chi-square and Kolmogorov distance against a binomial law (:func:`binomial_gof`)."""

    chi2: float
    dof: int
    p_value: float
    bins: int
    ks: float


def binomial_gof(counts: Any, line_length: int, keep: float, *, min_expected: float = 5.0,
                 estimated: bool = False) -> GoodnessOfFit:
    """Pearson chi-square and Kolmogorov distance between ``counts`` and Binomial(L, keep).

    The values 0..L are grouped into adjacent bins, from the left, until each bin's
    expected count n P(bin) is at least ``min_expected`` (a leftover tail joins the
    last bin), the usual condition for the chi-square approximation. Degrees of
    freedom: bins - 1, or bins - 2 when ``keep`` was ``estimated`` from the counts.
    ``ks`` is max_k |F_n(k) - F(k)|, the largest gap between the empirical and the
    binomial distribution functions (a descriptive distance; the KS p-value is not
    exact for a discrete law, so none is given).

    Returns:
        a :class:`GoodnessOfFit`.
    """
    c = _counts(counts)
    length = check_int("line_length", line_length, minimum=1)
    if np.any(c < 0) or np.any(c > length):
        raise ParameterError(f"counts must lie in [0, {length}]")
    p = check_real("keep", keep, minimum=0.0, maximum=1.0)
    m = check_real("min_expected", min_expected, minimum=0.0)
    n = c.size
    observed = np.bincount(c, minlength=length + 1).astype(float)
    expected = n * stats.binom.pmf(np.arange(length + 1), length, p)
    obs_bins, exp_bins, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= m:
            obs_bins.append(acc_o)
            exp_bins.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0 or acc_o > 0:
        if obs_bins:
            obs_bins[-1] += acc_o
            exp_bins[-1] += acc_e
        else:
            obs_bins, exp_bins = [acc_o], [acc_e]
    o, e = np.array(obs_bins), np.array(exp_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(e > 0, (o - e) ** 2 / e, np.where(o > 0, np.inf, 0.0))
    chi2 = float(terms.sum())
    dof = max(len(o) - (2 if estimated else 1), 1)
    ks = float(np.max(np.abs(np.cumsum(observed) / n - stats.binom.cdf(np.arange(length + 1), length, p))))
    return GoodnessOfFit(chi2=chi2, dof=int(dof), p_value=float(stats.chi2.sf(chi2, dof)),
                         bins=int(len(o)), ks=ks)
