"""Matrix and data norms: THE spectral norm of the package, and the norms around it.

Every spectral norm the book reports comes from :func:`spectral_norm` (one matrix),
:func:`spectral_norms` (several, in threads) or :func:`operator_norm` (a linear map
given only by its action, e.g. a convolution on whole images); no other module computes
one. The other norms of the bounds live here too:

* :func:`frobenius_norm` ||A||_F;
* the (2,1) norm of Bartlett, Foster & Telgarsky (:func:`norm_21`, :func:`bartlett_21`)
  and the authors' ``lpq_norm`` (:func:`authors_lpq_norm`);
* norms of a data set: B = max_i ||x_i||_2 (:func:`max_input_norm`) and the summary
  :func:`input_norms` (B, ||X||_F, root mean square).

Matrices may be torch tensors (on any device) or NumPy arrays; results are Python
floats computed in float64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ParameterError
from .validate import check_choice, check_int, check_real

__all__ = [
    "spectral_norm",
    "spectral_norms",
    "batched_spectral_norms",
    "operator_norm",
    "frobenius_norm",
    "norm_21",
    "bartlett_21",
    "authors_lpq_norm",
    "max_input_norm",
    "InputNorms",
    "input_norms",
]

#: Krylov-space size of the Lanczos spectral norm (:func:`spectral_norm`).
LANCZOS_NCV = 8
#: Largest short side for which :func:`spectral_norm` uses the Gram matrix.
GRAM_MAX_SIDE = 32
#: Largest fraction of non-zeros for which :func:`spectral_norm` multiplies in CSR form
#: (measured on 784 x 784 matrices: above about 2% the dense product, at about 0.1 ms,
#: is faster than building the CSR copy and multiplying with it).
SPARSE_DENSITY = 0.02


def _as_float64(X: Any) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        X = torch.as_tensor(np.asarray(X, dtype=np.float64))
    return X.detach().to(torch.float64)


# --------------------------------------------------------------------------- the spectral norm
def spectral_norm(X: Any, method: str = "lanczos") -> float:
    """||X||_2, the largest singular value (of a torch tensor or numpy array), in float64.

    ``method="svd"`` computes all singular values (``torch.linalg.svdvals``, LAPACK or,
    for a tensor on a GPU, cuSOLVER) and returns the largest. ``method="lanczos"``
    (the default) computes only the largest one with ARPACK's Lanczos bidiagonalisation
    (``scipy.sparse.linalg.svds``, k = 1, tol = 0, a fixed start vector, so the result
    is reproducible); it agrees with ``"svd"`` to about 1e-12 relative (tested, also on
    a nearly flat spectrum) and is many times faster on the 784 x 784 layers of the
    paper's network. Two choices make it fast there: a Krylov space of ``LANCZOS_NCV``
    vectors (ARPACK's default of 20 costs more per restart than it saves in iterations
    on these matrices), and a sparse (CSR) copy as the operator when at most
    ``SPARSE_DENSITY`` of the entries are non-zero, as in a pruning error at small d. A
    matrix with a side of at most ``GRAM_MAX_SIDE`` takes the square root of the top
    eigenvalue of its small Gram matrix instead (LAPACK, exact to rounding). (scipy's
    PROPACK solver was faster still, but returned values off by up to 1e-7 relative on
    flat-topped spectra and 1e-5 on 10-column matrices without an error, so it is not
    used.) Matrices with a side below 3 and any ARPACK failure fall back to ``"svd"``;
    so does a tensor on a GPU (the dense SVD there is faster than a copy to the host).
    An empty matrix has norm 0.
    """
    method = check_choice("method", method, ("svd", "lanczos"))
    X = _as_float64(X)
    if X.ndim != 2:
        raise ParameterError(f"spectral_norm needs a 2-D matrix, got shape {tuple(X.shape)}")
    if X.numel() == 0:
        return 0.0
    if method == "lanczos" and min(X.shape) >= 3 and X.device.type == "cpu":
        from scipy.sparse.linalg import ArpackError, svds

        A = X.numpy()
        if not A.any():
            return 0.0
        if min(A.shape) <= GRAM_MAX_SIDE:   # e.g. the 10 x 784 output layer
            G = A @ A.T if A.shape[0] <= A.shape[1] else A.T @ A
            return float(math.sqrt(max(np.linalg.eigvalsh(G)[-1], 0.0)))
        if np.count_nonzero(A) <= SPARSE_DENSITY * A.size:
            from scipy.sparse import csr_matrix
            A = csr_matrix(A)
        v0 = np.random.default_rng(0).standard_normal(min(A.shape))
        ncv = LANCZOS_NCV if min(A.shape) > 2 * LANCZOS_NCV else None
        try:
            s = svds(A, k=1, tol=0, v0=v0, ncv=ncv, return_singular_vectors=False,
                     solver="arpack")
            return float(s[0])
        except (ArpackError, ValueError):  # no convergence: use the full SVD
            pass
    return float(torch.linalg.svdvals(X)[0])


def spectral_norms(matrices: Sequence[Any], method: str = "lanczos",
                   workers: int | None = None) -> list[float]:
    """:func:`spectral_norm` of each matrix, several at a time; the same values, in order.

    Each norm is an independent, deterministic computation, so running them in
    ``workers`` threads (default: as many as torch uses, at most one per matrix) changes
    only the time: the Lanczos iterations spend most of it in matrix-vector products,
    which release the GIL. While the threads run, the BLAS library is limited to one
    thread each (``threadpoolctl``), so the threads do not compete with its own. (With
    SciPy >= 1.15 ARPACK keeps its state per call; older versions serialize it with a
    lock, which is still correct.) Matrices on a GPU are done one after the other.
    """
    mats = list(matrices)
    check_choice("method", method, ("svd", "lanczos"))
    on_gpu = any(isinstance(x, torch.Tensor) and x.device.type != "cpu" for x in mats)
    n = min(len(mats), torch.get_num_threads() if workers is None
            else check_int("workers", workers, minimum=1))
    if n <= 1 or on_gpu:
        return [spectral_norm(x, method) for x in mats]
    with _blas_controller().limit(limits=1, user_api="blas"):
        return list(_thread_pool(n).map(lambda x: spectral_norm(x, method), mats))


@functools.lru_cache(maxsize=None)
def _thread_pool(n: int):
    """One pool of ``n`` threads per size, kept for the life of the process."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(n, thread_name_prefix="spectral-norm")


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (found once, a few ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def operator_norm(gram: Callable[[np.ndarray], np.ndarray], n: int, *,
                  tol: float = 1e-10) -> float:
    """||A||_2 of a linear map A on R^n given only by its Gram action v -> A^T A v.

    The square root of the largest eigenvalue of A^T A, by ARPACK's Lanczos iteration
    (``scipy.sparse.linalg.eigsh``, fixed start vector, relative tolerance ``tol``), so
    A itself is never formed: what a convolution on whole images needs
    (:func:`prunebounds.beyond.conv_operator_norm`). For n <= 2 the 2 x 2 (or 1 x 1)
    Gram matrix is built from the action and its top eigenvalue taken exactly.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = check_int("n", n, minimum=1)
    tol = check_real("tol", tol, minimum=0.0)
    if n <= 2:
        G = np.column_stack([gram(e) for e in np.eye(n)])
        return math.sqrt(max(float(np.linalg.eigvalsh((G + G.T) / 2)[-1]), 0.0))
    op = LinearOperator((n, n), matvec=gram, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    lam = eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)[0]
    return math.sqrt(max(float(lam), 0.0))


# --------------------------------------------------------------------------- Frobenius and (2,1)
def frobenius_norm(A: Any) -> float:
    """||A||_F = sqrt(sum_ij A_ij^2)."""
    return float(torch.linalg.matrix_norm(_as_float64(A), ord="fro"))


def norm_21(A: Any) -> float:
    """The (2,1) matrix norm ||A||_{2,1} = sum over the COLUMNS j of ||A[:, j]||_2.

    This is Bartlett, Foster & Telgarsky's (2017) definition ||A||_{p,q} =
    ||(||A_{:,1}||_p, ..., ||A_{:,n}||_p)||_q with p = 2, q = 1. Their bound uses it on
    the *transpose*, ||A^T||_{2,1}; see :func:`bartlett_21`.
    """
    return float(torch.linalg.vector_norm(_as_float64(A), ord=2, dim=0).sum())


def bartlett_21(A: Any, M: Any | None = None) -> float:
    """||A^T - M^T||_{2,1} as it enters Bartlett et al. (2017), Theorem 1.1.

    With A acting on column vectors (x -> A x, PyTorch's ``out x in`` weight), the
    columns of A^T are the rows of A, so this is the sum over output units of the
    2-norm of each unit's incoming weight vector (minus its reference): sum_i
    ||A[i, :] - M[i, :]||_2. ``M=None`` means the zero reference matrix.
    """
    t = _as_float64(A)
    if M is not None:
        ref = _as_float64(M).to(t.device)
        if ref.shape != t.shape:
            raise ParameterError(
                f"reference matrix has shape {tuple(ref.shape)}, weight has {tuple(t.shape)}"
            )
        t = t - ref
    return norm_21(t.T)


def authors_lpq_norm(A: Any, p: float, q: float) -> float:
    """The authors' ``lpq_norm(A, p, q)``, transcribed: (sum_j ||(|A[:, j]|^p)||_2^(q/p))^(1/q).

    It takes the Euclidean norm of each column of |A|^p (whatever p is), raises it to
    q/p, sums over columns and takes the 1/q-th root. For (p, q) = (1, 2), the call in
    the authors' Bartlett baseline, this is (sum_j ||A[:, j]||_2^2)^(1/2) = ||A||_F: the
    Frobenius norm, not Bartlett's (2,1) norm.
    """
    cols = torch.linalg.vector_norm(_as_float64(A).abs() ** p, ord=2, dim=0)
    return float((cols ** (q / p)).sum() ** (1.0 / q))


# --------------------------------------------------------------------------- norms of the data
def _sample_norms(X: Any) -> torch.Tensor:
    t = torch.as_tensor(X).detach()
    if t.ndim < 1 or t.shape[0] == 0:
        raise ParameterError("X must hold at least one sample (first axis = samples)")
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1).to(torch.float64), ord=2, dim=1)


def max_input_norm(X: Any) -> float:
    """B = max_i ||x_i||_2 over the samples of ``X`` (each flattened), in float64.

    The input radius of the perturbation lemma and of Neyshabur et al.'s bounds.
    """
    return float(_sample_norms(X).max())


@dataclass(frozen=True)
class InputNorms:
    """Norms of a data set of n samples (see :func:`input_norms`)."""

    max: float   # B = max_i ||x_i||_2
    fro: float   # ||X||_F = sqrt(sum_i ||x_i||_2^2)
    rms: float   # sqrt(mean_i ||x_i||_2^2)
    n: int


def input_norms(X: Any) -> InputNorms:
    """Norms of a data set ``X`` (n samples, any trailing shape, flattened per sample).

    B = max_i ||x_i||_2 is the input radius of Neyshabur et al. and of the perturbation
    bound; ||X||_F = sqrt(sum_i ||x_i||_2^2) is what Bartlett et al.'s bound uses.
    """
    norms = _sample_norms(X)
    sq = float((norms ** 2).sum())
    n = int(norms.numel())
    return InputNorms(max=float(norms.max()), fro=math.sqrt(sq), rms=math.sqrt(sq / n), n=n)


# --------------------------------------------------------------------------- many matrices of one shape
#: Matrices per call of the batched GPU SVD in :func:`batched_spectral_norms`.
BATCH_CHUNK = 64


def batched_spectral_norms(X: torch.Tensor, chunk: int = BATCH_CHUNK) -> list[float]:
    """||X_b||_2 for every matrix of a stack X of shape (batch, n, m), as Python floats.

    For Monte Carlo over many random matrices of one shape. On a GPU the stack is
    processed ``chunk`` matrices at a time by one batched singular-value call
    (``torch.linalg.matrix_norm(ord=2)``, in the stack's dtype) with a single transfer
    of the results to the host. On the CPU each matrix goes through
    :func:`spectral_norm` (Lanczos, float64) in threads (:func:`spectral_norms`), which
    is faster there than dense SVDs; the two agree to the stack's precision.
    """
    if not isinstance(X, torch.Tensor) or X.ndim != 3:
        raise ParameterError(f"batched_spectral_norms needs a 3-D tensor (batch, n, m), got "
                             f"{type(X).__name__} of shape {tuple(getattr(X, 'shape', ()))}")
    chunk = check_int("chunk", chunk, minimum=1)
    if X.shape[0] == 0:
        return []
    if X.device.type == "cpu":
        return spectral_norms(list(X))
    out = torch.cat([torch.linalg.matrix_norm(X[i:i + chunk], ord=2)
                     for i in range(0, X.shape[0], chunk)])
    return [float(v) for v in out.to(torch.float64).cpu()]
