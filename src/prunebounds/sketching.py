"""Sparse matrix sketching and recovery (Dasarathy, Shah, Bhaskar & Nowak 2015).

Dasarathy et al., "Sketching sparse matrices, covariances, and graphs via tensor
products", IEEE Trans. Inf. Theory 61(3), 2015 (arXiv 1303.6544): a p1 x p2 matrix X
with at most j non-zeros in every row and column is stored as the k1 x k2 sketch

    Y = A X B^T,    A in {0,1}^{k1 x p1},  B in {0,1}^{k2 x p2},

where A and B are adjacency matrices of random left-regular bipartite graphs (every
column has the same small number s of ones), and, with high probability over the
graphs, X is the unique solution of basis pursuit

    min ||X~||_1 (entrywise)  subject to  A X~ B^T = Y                     (BP)

once k = O(sqrt(j p) log p).  With the column-major ``vec`` (the convention under
which the identity quoted by the paper holds), vec(A X B^T) = (B kron A) vec(X), so
(BP) is an ordinary l1 problem with the Kronecker product as measurement matrix.  The
pruning paper (Guha, Dubey & Huo, Theorem 5.2, whose statement we reconstruct) uses
this to describe a pruned layer by k1 k2 numbers; A and B live in the helper string
of Arora et al.'s compression framework.

Two solvers are given: :func:`recover_linprog` (exact linear program, small sizes) and
:func:`recover_first_order` (Douglas-Rachford splitting that applies A and B
separately, for layer-sized matrices).  The sketch sizes that the paper's bound counts
(:func:`theory_sketch_size`, :func:`sketch_sizes`) close the module; the counts of the
other storage schemes are in :mod:`prunebounds.counting`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sparse
import torch
from scipy.optimize import linprog

from .counting import count_sketch
from .errors import ParameterError
from .sparsity import nonzeros_per_col, nonzeros_per_row
from .validate import check_int, check_real, check_weights

Matrix = Any  # a 2-D numpy.ndarray or torch.Tensor


@dataclass
class RecoveryResult:
    """Outcome of a sketch recovery.

    Attributes:
        X: the recovered p1 x p2 matrix (NumPy for linprog, torch for first order).
        iterations: solver iterations (HiGHS iterations, or Douglas-Rachford steps).
        residuals: history of ||A X B^T - Y||_F / ||Y||_F (one entry for linprog).
        seconds: wall-clock time of the solve (set-up included).
        converged: whether the stopping rule was met (linprog: HiGHS reported optimal).
        method: ``"linprog-highs"`` or ``"douglas-rachford"``.
        polished: whether the answer came from the least-squares polish on a support.
        message: the solver's own status line.
        duality_gap: for the first-order solver, the certified relative gap
            (||X||_1 - lower bound) / ||X||_1 of the answer (up to rounding), from the
            dual certificate that Douglas-Rachford carries (see
            :func:`recover_first_order`); ``None`` for linprog (HiGHS proves
            optimality itself).
    """

    X: Matrix
    iterations: int
    residuals: list[float] = field(default_factory=list)
    seconds: float = 0.0
    converged: bool = False
    method: str = ""
    polished: bool = False
    message: str = ""
    duality_gap: float | None = None


# ------------------------------------------------------------------ sketch matrices


def default_degree(p: int) -> int:
    """Left degree s = ceil(ln p) (at least 1), the O(log p) of Dasarathy et al."""
    p = check_int("p", p, minimum=1)
    return max(1, math.ceil(math.log(p)))


def bipartite_adjacency(k: int, p: int, s: int, seed: int | None = None) -> np.ndarray:
    """Random {0,1} k x p matrix whose every column has exactly ``s`` ones.

    The adjacency matrix of a random s-left-regular bipartite graph with p left nodes
    (the matrix's columns) and k right nodes (rows): each column picks ``s`` distinct
    rows uniformly at random, independently of the other columns.  This is the
    sketching matrix of Dasarathy et al. (2015), who take s = O(log p)
    (:func:`default_degree`).  Requires 1 <= s <= k <= p (a sketch with more rows
    than the matrix has compresses nothing; use ``numpy.eye(p)`` for an unsketched
    side).  Returns float64.
    """
    p = check_int("p", p, minimum=1)
    k = check_int("k", k, minimum=1)
    s = check_int("s", s, minimum=1)
    if k > p:
        raise ParameterError(f"sketch size k must satisfy 1 <= k <= p = {p}, got k = {k}")
    if s > k:
        raise ParameterError(f"degree s must satisfy 1 <= s <= k = {k}, got s = {s}")
    rng = np.random.default_rng(seed)
    rows = np.argpartition(rng.random((k, p)), s - 1, axis=0)[:s]  # s distinct per column
    A = np.zeros((k, p))
    A[rows, np.arange(p)[None, :]] = 1.0
    return A


def _check_shapes(X_shape: tuple, A_shape: tuple, B_shape: tuple) -> None:
    if len(A_shape) != 2 or len(B_shape) != 2 or len(X_shape) != 2:
        raise ParameterError("X, A and B must all be 2-D matrices")
    if A_shape[1] != X_shape[0] or B_shape[1] != X_shape[1]:
        raise ParameterError(
            f"shapes do not fit Y = A X B^T: A is {tuple(A_shape)}, X is "
            f"{tuple(X_shape)}, B is {tuple(B_shape)}; need A.shape[1] == X.shape[0] "
            "and B.shape[1] == X.shape[1]"
        )


def sketch(X: Matrix, A: Matrix, B: Matrix) -> Matrix:
    """The sketch Y = A X B^T of Dasarathy et al. (2015), k1 x k2 for X p1 x p2.

    Works on NumPy arrays or torch tensors (all three of the same kind); X may be
    rectangular, with its own A (k1 x p1) and B (k2 x p2).
    """
    _check_shapes(tuple(X.shape), tuple(A.shape), tuple(B.shape))
    return A @ X @ B.T


def vec(X: np.ndarray) -> np.ndarray:
    """Column-major vectorisation, the ``vec`` of vec(A X B^T) = (B kron A) vec(X)."""
    return np.asarray(X).reshape(-1, order="F")


def kron_operator(A: np.ndarray, B: np.ndarray) -> sparse.csr_matrix:
    """The measurement matrix B kron A (sparse), so that vec(A X B^T) = (B kron A) vec(X)."""
    return sparse.kron(sparse.csr_matrix(B), sparse.csr_matrix(A), format="csr")


# ------------------------------------------------------------ exact solver (HiGHS)


def recover_linprog(Y: np.ndarray, A: np.ndarray, B: np.ndarray,
                    time_limit: float | None = None) -> RecoveryResult:
    """Solve basis pursuit (BP) exactly as a linear program with HiGHS.

    Writes X = U - V with U, V >= 0 and minimises sum(U) + sum(V) subject to
    (B kron A)(vec U - vec V) = vec Y, the Kronecker product kept sparse
    (``scipy.sparse.kron``).  The LP has 2 p1 p2 variables and k1 k2 equality
    constraints, so it is practical up to p of about 50-100 (seconds to minutes).
    Dasarathy et al. (2015), eq. (BP); ``scipy.optimize.linprog(method="highs")``.
    """
    Y, A, B = (np.asarray(M, dtype=float) for M in (Y, A, B))
    _check_shapes((A.shape[1], B.shape[1]), A.shape, B.shape)
    if Y.shape != (A.shape[0], B.shape[0]):
        raise ParameterError(f"Y must be {A.shape[0]} x {B.shape[0]}, got {Y.shape}")
    start = time.perf_counter()
    M = kron_operator(A, B)
    n = M.shape[1]
    options = {} if time_limit is None else {"time_limit": float(time_limit)}
    res = linprog(np.ones(2 * n), A_eq=sparse.hstack([M, -M], format="csc"),
                  b_eq=vec(Y), bounds=(0, None), method="highs", options=options)
    seconds = time.perf_counter() - start
    if res.x is None:
        X = np.full((A.shape[1], B.shape[1]), np.nan)
        return RecoveryResult(X, int(res.nit), [math.inf], seconds, False,
                              "linprog-highs", False, res.message)
    X = (res.x[:n] - res.x[n:]).reshape(A.shape[1], B.shape[1], order="F")
    residual = float(np.linalg.norm(A @ X @ B.T - Y) / max(np.linalg.norm(Y), 1e-300))
    return RecoveryResult(X, int(res.nit), [residual], seconds, res.status == 0,
                          "linprog-highs", False, res.message)


# ------------------------------------------------- first-order solver (no Kronecker)


class _SketchOperator:
    """Applies X -> A X B^T, its adjoint, and the projection onto {A X B^T = Y}.

    The projection onto the affine set is P(V) = V - A^+ (A V B^T - Y) (B^+)^T, since
    the pseudo-inverse of B kron A is B^+ kron A^+.  We use A^+ = A^T (A A^T)^+ and
    precompute the k x k matrices G_A = (A A^T)^+, G_B = (B B^T)^+ once (symmetric
    eigendecomposition), so a projection costs sparse products with A and B and two
    k x k dense products.  The pseudo-inverse handles a rank-deficient A or B
    (possible when k is close to p): eigenvalues of A A^T below ``rcond`` times the
    largest are dropped, and P is then the projection onto the least-squares
    solutions of A X B^T = Y.  ``rcond=None`` skips G_A, G_B (no projection needed).

    Sparse products use SciPy on the CPU (single-threaded, robust on a shared
    machine) and torch CSR tensors on a GPU.
    """

    def __init__(self, A: torch.Tensor, B: torch.Tensor, rcond: float | None):
        self.cpu = A.device.type == "cpu"
        self.A, self.At, self.B, self.Bt = (self._sparse(M) for M in (A, A.T, B, B.T))
        if rcond is not None:
            self.G_A = torch.linalg.pinv(A @ A.T, rtol=rcond, hermitian=True)
            self.G_B = torch.linalg.pinv(B @ B.T, rtol=rcond, hermitian=True)

    def _sparse(self, M: torch.Tensor) -> Any:
        if self.cpu:
            return sparse.csr_matrix(M.numpy())
        with warnings.catch_warnings():  # CSR tensors are "beta" in torch
            warnings.simplefilter("ignore", UserWarning)
            return M.contiguous().to_sparse_csr()

    def _mm(self, M: Any, X: torch.Tensor) -> torch.Tensor:
        """Sparse M times dense X."""
        if self.cpu:
            return torch.from_numpy(np.asarray(M @ X.numpy()))
        return M @ X

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """A X B^T (k1 x k2), via two sparse products."""
        return self._mm(self.B, self._mm(self.A, X).T).T

    def adjoint(self, R: torch.Tensor) -> torch.Tensor:
        """A^T R B (p1 x p2), via two sparse products."""
        return self._mm(self.Bt, self._mm(self.At, R).T).T

    def correction(self, residual: torch.Tensor) -> torch.Tensor:
        """A^+ R (B^+)^T for a k1 x k2 residual R = A V B^T - Y."""
        return self.adjoint(self.G_A @ residual @ self.G_B)

    def project(self, V: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection of V onto {X : A X B^T = Y}."""
        return V - self.correction(self.forward(V) - Y)


def _soft_threshold(V: torch.Tensor, t: float) -> torch.Tensor:
    """Entrywise prox of t ||.||_1: sign(v) max(|v| - t, 0) = v - clip(v, -t, t)."""
    return V - torch.clamp(V, min=-t, max=t)


def _norm(M: torch.Tensor) -> float:
    return float(torch.linalg.norm(M))


def _polish(op: _SketchOperator, X: torch.Tensor, Y: torch.Tensor, tol: float,
            max_iter: int) -> tuple[torch.Tensor, float]:
    """Least squares min ||A (S o X) B^T - Y||_F over the support S of X (CGLS from X).

    If S contains the true support and the restricted operator is injective, the
    minimiser is the exact sparse matrix (residual zero).  Stops early when the
    residual stagnates (S is wrong: the restricted system is inconsistent).
    Returns the fit and its relative residual.
    """
    mask, X, y_norm = (X != 0).to(X.dtype), X.clone(), _norm(Y)
    r = Y - op.forward(X)
    g = mask * op.adjoint(r)
    d, gg = g.clone(), float(torch.sum(g * g))
    history = [_norm(r) / y_norm]
    for it in range(max_iter):
        if history[-1] <= tol or gg == 0.0:
            break
        q = op.forward(d)
        alpha = gg / float(torch.sum(q * q))
        X += alpha * d
        r -= alpha * q
        g = mask * op.adjoint(r)
        gg, gg_old = float(torch.sum(g * g)), gg
        d = g + (gg / gg_old) * d
        history.append(_norm(r) / y_norm)
        if it >= 30 and history[-1] > 0.5 * history[-31]:
            break  # stagnation: the support is wrong
    return X, _norm(op.forward(X) - Y) / y_norm


def _as_tensor(M: Matrix, device: Any, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(M).to(device=device, dtype=dtype)


def _prepare(Y: Matrix, A: Matrix, B: Matrix, device: Any,
             dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Y, A, B as tensors on ``device`` (default: Y's device) with shapes checked."""
    if device is None:
        device = Y.device if isinstance(Y, torch.Tensor) else "cpu"
    Y, A, B = (_as_tensor(M, device, dtype) for M in (Y, A, B))
    _check_shapes((A.shape[1], B.shape[1]), tuple(A.shape), tuple(B.shape))
    if tuple(Y.shape) != (A.shape[0], B.shape[0]):
        raise ParameterError(f"Y must be {A.shape[0]} x {B.shape[0]}, got {tuple(Y.shape)}")
    return Y, A, B


def _duality_gap(X: torch.Tensor, G: torch.Tensor) -> float:
    """Relative gap 1 - <G, X> / (||G||_inf ||X||_1) of a feasible X, G in range(M^T).

    Weak duality for (BP): if G = A^T U B and ||G||_inf <= 1 then every feasible X'
    has ||X'||_1 >= <G, X'> = <U, Y>.  Scaling G by its largest entry makes it
    feasible, so <G, X> / max(1, ||G||_inf) is a lower bound on the optimal value;
    the returned gap (relative to ||X||_1) bounds how far X is from optimal.
    """
    G = G.to(X.dtype)
    l1 = float(X.abs().sum())
    if l1 == 0.0:
        return 0.0
    lower = float(torch.sum(G * X)) / max(1.0, float(G.abs().max()))
    return max(0.0, 1.0 - lower / l1)


class _Polisher:
    """Tries the float64 support-restricted least squares when the support settles."""

    def __init__(self, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor, tol: float,
                 gap_tol: float, every: int, max_iter: int):
        self.op = _SketchOperator(A, B, None)
        self.Y, self.tol, self.gap_tol = Y, tol, gap_tol
        self.every, self.max_iter = every, max_iter
        self.support: torch.Tensor | None = None

    def __call__(self, it: int, S: torch.Tensor,
                 G: torch.Tensor) -> tuple[torch.Tensor, float, float] | None:
        """Polished matrix, residual and gap if accepted at step ``it``, else None."""
        if it % self.every:
            return None
        support, previous, self.support = S != 0, self.support, S != 0
        if previous is None or not torch.equal(support, previous):
            return None
        X, res = _polish(self.op, S.to(torch.float64), self.Y, self.tol, self.max_iter)
        if res > self.tol:
            return None
        gap = _duality_gap(X, G)
        return (X, res, gap) if gap <= self.gap_tol else None


def recover_first_order(Y: Matrix, A: Matrix, B: Matrix, *, gamma: float | None = None,
                        max_iter: int = 3000, tol: float = 1e-10, polish: bool = True,
                        gap_tol: float = 1e-3, polish_every: int = 10,
                        polish_max_iter: int = 300, rcond: float = 1e-10,
                        device: Any = None, dtype: torch.dtype = torch.float64,
                        threads: int | None = None) -> RecoveryResult:
    """Solve basis pursuit (BP) by Douglas-Rachford splitting, never forming B kron A.

    Splits (BP) into f = ||X||_1 (prox: soft thresholding at ``gamma``) and the
    indicator of the affine set {A X B^T = Y} (prox: the projection
    P(V) = V - A^T (A A^T)^+ (A V B^T - Y) (B B^T)^+ B).  With Z_0 = P(0) (the
    minimum-norm solution) it iterates

        X_n = P(Z_n),   S_n = soft(2 X_n - Z_n, gamma),   Z_{n+1} = Z_n + S_n - X_n,

    and returns S_n, which is exactly sparse (Douglas & Rachford 1956; Lions & Mercier
    1979; for l1 problems see e.g. Combettes & Pesquet 2007).  Since A X_n B^T = Y, the
    sketch of Z_{n+1} is that of Z_n plus A S_n B^T - Y, so one step costs one forward
    and one adjoint application (sparse) and two k x k dense products.

    ``gamma`` defaults to the root-mean-square entry of P(0); convergence is robust to
    a factor 3 either way *when the non-zeros are not tiny* (true of magnitude-pruned
    weights, whose small entries are the ones removed).  Non-zeros far below
    ``gamma`` take many steps to appear; pass a smaller ``gamma`` for such matrices.

    The iterates carry a dual certificate: G_n = (X_n - Z_n) / gamma lies in the range
    of A^T . B, and at the fixed point it is a subgradient of ||.||_1 at the solution,
    so it gives a lower bound on the optimal l1 norm (weak duality) and hence a
    certified relative gap for the answer (``duality_gap`` of the result).

    Stopping: relative residual ||A S_n B^T - Y|| / ||Y|| and relative change
    ||S_n - S_{n-1}|| / ||S_n|| both below ``tol`` (float32: 1e-6).  With
    ``polish=True``, every ``polish_every`` steps at which the support of S_n has not
    changed since the previous check, a float64 least-squares fit restricted to that
    support (CGLS, at most ``polish_max_iter`` steps) is tried; it is accepted when its
    relative residual is below ``tol`` and its certified gap below ``gap_tol``.  It is
    then an exactly feasible matrix on the support of the iterates whose l1 norm is
    within ``gap_tol`` of the optimum; in our tests it equals the linprog solution to
    1e-10.  Polishing typically halves the iterations, and lets the iterations run in
    float32 (``dtype``, about twice as fast on a CPU) with a float64-accurate answer.

    Works on CPU or CUDA (``device``; default: Y's device).  ``threads`` sets torch's
    CPU thread count for the duration of the call (restored afterwards); on a busy
    shared machine ``threads=1`` can be several times faster than the default.
    """
    if threads is None:
        return _douglas_rachford(Y, A, B, gamma, max_iter, tol, polish, gap_tol,
                                 polish_every, polish_max_iter, rcond, device, dtype)
    previous = torch.get_num_threads()
    torch.set_num_threads(check_int("threads", threads, minimum=1))
    try:
        return _douglas_rachford(Y, A, B, gamma, max_iter, tol, polish, gap_tol,
                                 polish_every, polish_max_iter, rcond, device, dtype)
    finally:
        torch.set_num_threads(previous)


def _douglas_rachford(Y: Matrix, A: Matrix, B: Matrix, gamma: float | None,
                      max_iter: int, tol: float, polish: bool, gap_tol: float,
                      polish_every: int, polish_max_iter: int, rcond: float,
                      device: Any, dtype: torch.dtype) -> RecoveryResult:
    """The body of :func:`recover_first_order` (same arguments)."""
    tol = check_real("tol", tol, minimum=0.0)
    gap_tol = check_real("gap_tol", gap_tol, minimum=0.0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    polish_every = check_int("polish_every", polish_every, minimum=1)
    polish_max_iter = check_int("polish_max_iter", polish_max_iter, minimum=1)
    start = time.perf_counter()
    polisher = None
    if polish:  # built from the float64 inputs, whatever the working precision
        polisher = _Polisher(*_prepare(Y, A, B, device, torch.float64), tol, gap_tol,
                             polish_every, polish_max_iter)
    Y, A, B = _prepare(Y, A, B, device, dtype)
    op = _SketchOperator(A, B, rcond)
    dr_tol = tol if dtype == torch.float64 else max(tol, 1e-6)  # float32 floor
    y_norm = _norm(Y)
    Z = op.project(torch.zeros(A.shape[1], B.shape[1], device=Y.device, dtype=dtype), Y)
    done = lambda X, it, res, ok, pol, msg, gap: RecoveryResult(
        X, it, res, time.perf_counter() - start, ok, "douglas-rachford", pol, msg, gap)
    if y_norm == 0.0:
        return done(Z, 0, [0.0], True, False, "Y = 0", 0.0)
    gamma = check_real("gamma", _norm(Z) / Z.numel() ** 0.5 if gamma is None else gamma,
                       minimum=0.0)
    FZ, S_prev, residuals = op.forward(Z), torch.zeros_like(Z), []
    for it in range(1, max_iter + 1):
        X = Z - op.correction(FZ - Y)
        S = _soft_threshold(2 * X - Z, gamma)
        Z += S - X  # now X_n - Z_n = S_n - Z_{n+1}
        FS = op.forward(S)
        FZ = op.forward(Z) if it % 50 == 0 else FZ + FS - Y  # refresh against drift
        residuals.append(_norm(FS - Y) / y_norm)
        if residuals[-1] <= dr_tol and _norm(S - S_prev) <= dr_tol * _norm(S):
            gap = _duality_gap(S, (S - Z) / gamma)
            return done(S, it, residuals, True, False, "converged", gap)
        S_prev = S
        polished = polisher(it, S, (S - Z) / gamma) if polisher is not None else None
        if polished is not None:
            X_pol, res, gap = polished
            return done(X_pol, it, residuals + [res], True, True,
                        "converged after least-squares polish", gap)
    gap = _duality_gap(S, (S - Z) / gamma)
    return done(S, max_iter, residuals, False, False, "max_iter reached", gap)


# ----------------------------------------------------------------- sketch sizes
def theory_sketch_size(j: float, p: int, c: float = 1.0) -> float:
    """k = c sqrt(j p) log p, the sketch size of Dasarathy et al. (2015) (natural log).

    The theorem gives k = O(sqrt(j p) log p) for a p x p matrix with at most j
    non-zeros per row and column; the constant ``c`` is not specified there.
    """
    j = check_real("j", j, minimum=0.0)
    p = check_int("p", p, minimum=1)
    c = check_real("c", c, minimum=0.0)
    return c * math.sqrt(j * p) * math.log(p)


@dataclass(frozen=True)
class SketchSize:
    """The sketch of one pruned layer (Dasarathy et al. 2015), as the paper counts it.

    Attributes:
        shape: the layer's (out, in) shape.
        j: the largest number of non-zeros in any row or column of the pruned layer.
        p: the side of the square matrix the layer is padded to, max(out, in).
        k_theory: c sqrt(j p) ln p (:func:`theory_sketch_size`).
        k_out, k_in: the sketch's sides, ceil(k_theory) capped at out and in.
        capped: True if the cap binds on either side (the theory size exceeds the
            layer's dimension there, so that side is not compressed at all).
        n_params: k_out * k_in, the numbers stored for this layer
            (:func:`prunebounds.counting.count_sketch`).
    """

    shape: tuple[int, int]
    j: int
    p: int
    k_theory: float
    k_out: int
    k_in: int
    capped: bool
    n_params: int


def sketch_sizes(pruned_weights, c: float = 1.0) -> list[SketchSize]:
    """The sketch size of every pruned layer: k = c sqrt(j p) ln p, capped at the layer.

    Dasarathy, Shah, Bhaskar & Nowak (2015) recover a p x p matrix with at most j
    non-zeros in every row and column from a k x k sketch A X B^T once
    k = O(sqrt(j p) log p). The O(.) has no explicit constant; ``c`` (default 1) stands
    for it. A rectangular out x in layer is treated as padded with zeros to p x p,
    p = max(out, in) (padding adds no non-zeros), and j is the *realized* maximum of
    the non-zeros per row and per column of the pruned layer. A sketch side larger
    than the layer's own dimension is pointless (storing that side unsketched costs
    less), so each side is capped: k_out = min(ceil(k), out), k_in = min(ceil(k), in).
    A layer whose both sides are capped is stored densely.
    """
    ws = check_weights(pruned_weights, "pruned_weights", float64=False)  # only counts non-zeros
    c = check_real("c (sketch-size constant)", c, minimum=0.0)
    return [sketch_size_for((int(w.shape[0]), int(w.shape[1])),
                            int(max(nonzeros_per_row(w).max(), nonzeros_per_col(w).max())), c)
            for w in ws]


def sketch_size_for(shape: tuple[int, int], j: float, c: float = 1.0) -> SketchSize:
    """The :class:`SketchSize` of an (out, in) layer with at most ``j`` non-zeros per line.

    k = c sqrt(j p) ln p (:func:`theory_sketch_size`), p = max(out, in), each side
    capped at the layer's dimension, as in :func:`sketch_sizes` (which passes the
    realized maximum j of a pruned layer). ``j`` may come from a bound instead, e.g.
    the reconstructed Lemma 5.1 (:func:`prunebounds.sparsity.lemma51_bound`) or
    p chi(d) for the expected count; it is rounded up to an integer.
    """
    if len(shape) != 2:
        raise ParameterError(f"shape must be (out, in), got {shape!r}")
    n_out, n_in = (check_int("layer dimension", v, minimum=1) for v in shape)
    j = math.ceil(check_real("j (non-zeros per line)", j, minimum=0.0) - 1e-9)
    p = max(n_out, n_in)
    k = theory_sketch_size(j, p, c)
    k_int = math.ceil(k - 1e-9)
    k_out, k_in = min(k_int, n_out), min(k_int, n_in)
    return SketchSize((n_out, n_in), j, p, float(k), k_out, k_in,
                      bool(k_int > n_out or k_int > n_in), count_sketch(k_out, k_in))
