"""Checks of prunebounds.sketching: the sketch identity, both recovery solvers, sketch sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunebounds.errors import ParameterError
from prunebounds.sketching import (
    _SketchOperator,
    bipartite_adjacency,
    default_degree,
    kron_operator,
    recover_first_order,
    recover_linprog,
    sketch,
    theory_sketch_size,
    vec,
)


def sparse_matrix(p1: int, p2: int, density: float, seed: int, offset: float = 0.0) -> np.ndarray:
    """Random sparse matrix; ``offset`` pushes non-zeros away from 0 (like pruned weights)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p1, p2)) * (rng.random((p1, p2)) < density)
    return X + offset * np.sign(X)


def instance(p1: int, p2: int, k1: int, k2: int, density: float, seed: int = 0,
             offset: float = 0.0):
    X = sparse_matrix(p1, p2, density, seed, offset)
    A = bipartite_adjacency(k1, p1, default_degree(p1), seed + 1)
    B = bipartite_adjacency(k2, p2, default_degree(p2), seed + 2)
    return X, A, B, sketch(X, A, B)


def rel(X, ref) -> float:
    X = X.numpy() if isinstance(X, torch.Tensor) else X
    return float(np.linalg.norm(X - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small solves: one torch thread avoids synchronisation costs on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def small():
    """A 30 x 30 matrix, ~3 non-zeros per row, from a 24 x 24 sketch, and its LP solution."""
    X, A, B, Y = instance(30, 30, 24, 24, 0.1)
    return X, A, B, Y, recover_linprog(Y, A, B)


# ---------------------------------------------------------------- sketch matrices


def test_bipartite_adjacency_structure():
    A = bipartite_adjacency(12, 40, 3, seed=5)
    assert A.shape == (12, 40) and A.dtype == np.float64
    assert set(np.unique(A)) == {0.0, 1.0}
    np.testing.assert_array_equal(A.sum(axis=0), 3)
    np.testing.assert_array_equal(A, bipartite_adjacency(12, 40, 3, seed=5))
    assert not np.array_equal(A, bipartite_adjacency(12, 40, 3, seed=6))
    # every row is hit about s p / k times on average
    assert A.sum() == 3 * 40


@pytest.mark.parametrize("k,p,s", [(5, 10, 6), (11, 10, 2), (0, 10, 1), (5, -3, 1),
                                   (5, 10, 0), (2.5, 10, 1)])
def test_bipartite_adjacency_bad_input(k, p, s):
    with pytest.raises(ParameterError):
        bipartite_adjacency(k, p, s, seed=0)


def test_default_degree():
    assert default_degree(784) == 7 and default_degree(1) == 1


def test_sketch_identity_vec_kron():
    rng = np.random.default_rng(1)
    X, A, B = rng.standard_normal((7, 5)), rng.standard_normal((4, 7)), rng.standard_normal((3, 5))
    Y = sketch(X, A, B)
    assert Y.shape == (4, 3)
    np.testing.assert_allclose(vec(Y), np.kron(B, A) @ vec(X), atol=1e-12)
    np.testing.assert_allclose(kron_operator(A, B).toarray(), np.kron(B, A))
    # vec is column-major: the first column of X comes first
    np.testing.assert_array_equal(vec(X)[:7], X[:, 0])


def test_sketch_torch_matches_numpy():
    X, A, B, Y = instance(9, 6, 5, 4, 0.3)
    Yt = sketch(torch.tensor(X), torch.tensor(A), torch.tensor(B))
    assert isinstance(Yt, torch.Tensor)
    np.testing.assert_allclose(Yt.numpy(), Y, atol=1e-12)


def test_sketch_shape_mismatch_raises():
    with pytest.raises(ParameterError):
        sketch(np.zeros((5, 4)), np.zeros((3, 4)), np.zeros((2, 4)))


# ----------------------------------------------------------------------- recovery


def test_linprog_recovers_a_sparse_matrix(small):
    X, A, B, Y, lp = small
    assert lp.converged and lp.method == "linprog-highs"
    assert rel(lp.X, X) < 1e-8
    assert lp.residuals[-1] < 1e-9


def test_first_order_agrees_with_linprog(small):
    X, A, B, Y, lp = small
    fo = recover_first_order(Y, A, B)
    assert fo.converged
    assert rel(fo.X, lp.X) <= 1e-6
    # the certified lower bound (1 - gap) ||X||_1 cannot exceed the LP optimum
    assert 0.0 <= fo.duality_gap <= 1e-3
    l1 = float(fo.X.abs().sum())
    assert (1 - fo.duality_gap) * l1 <= np.abs(lp.X).sum() * (1 + 1e-9)


def test_first_order_without_polish_converges(small):
    X, A, B, Y, _ = small
    fo = recover_first_order(Y, A, B, polish=False, tol=1e-9)
    assert fo.converged and not fo.polished
    assert rel(fo.X, X) < 1e-6
    assert fo.residuals[-1] <= 1e-9 and fo.iterations == len(fo.residuals)


def test_rectangular_layer_with_its_own_sketches():
    X, A, B, Y = instance(20, 30, 16, 24, 0.1, seed=3)
    lp = recover_linprog(Y, A, B)
    fo = recover_first_order(Y, A, B)
    assert fo.X.shape == (20, 30)
    assert rel(lp.X, X) < 1e-8 and rel(fo.X, lp.X) <= 1e-6


def test_first_order_recovers_100x100():
    X, A, B, Y = instance(100, 100, 50, 50, 0.05, seed=1, offset=0.5)
    fo = recover_first_order(Y, A, B)
    assert fo.converged and rel(fo.X, X) < 1e-8
    fo32 = recover_first_order(Y, A, B, dtype=torch.float32)
    assert fo32.polished and fo32.X.dtype == torch.float64 and rel(fo32.X, X) < 1e-8


def test_recovery_fails_when_the_sketch_is_too_small():
    # 64 measurements for ~90 non-zeros: basis pursuit cannot find X
    X, A, B, Y = instance(30, 30, 8, 8, 0.1)
    assert rel(recover_linprog(Y, A, B).X, X) > 0.3
    assert rel(recover_first_order(Y, A, B, max_iter=500).X, X) > 0.3


def test_projection_matches_kronecker_pseudoinverse_when_rank_deficient():
    rng = np.random.default_rng(4)
    A = bipartite_adjacency(10, 20, 3, seed=1)
    A[9] = A[0]  # A A^T is singular
    B = bipartite_adjacency(8, 15, 3, seed=2)
    Y = sketch(rng.standard_normal((20, 15)), A, B)  # consistent
    V = rng.standard_normal((20, 15))
    op = _SketchOperator(torch.tensor(A), torch.tensor(B), 1e-10)
    P = op.project(torch.tensor(V), torch.tensor(Y)).numpy()
    M = np.kron(B, A)
    ref = vec(V) - np.linalg.pinv(M) @ (M @ vec(V) - vec(Y))
    np.testing.assert_allclose(vec(P), ref, atol=1e-10)
    np.testing.assert_allclose(sketch(P, A, B), Y, atol=1e-10)
    P2 = op.project(torch.tensor(P), torch.tensor(Y)).numpy()
    np.testing.assert_allclose(P2, P, atol=1e-10)


def test_threads_argument_is_restored():
    A, B = bipartite_adjacency(5, 8, 2, 0), bipartite_adjacency(5, 8, 2, 1)
    before = torch.get_num_threads()
    recover_first_order(sketch(np.eye(8), A, B), A, B, threads=2, max_iter=5)
    assert torch.get_num_threads() == before


def test_zero_sketch_gives_zero():
    A, B = bipartite_adjacency(5, 8, 2, 0), bipartite_adjacency(5, 8, 2, 1)
    fo = recover_first_order(np.zeros((5, 5)), A, B)
    assert fo.converged and float(fo.X.abs().max()) == 0.0


@pytest.mark.parametrize("call", [
    lambda A, B: recover_first_order(np.zeros((4, 5)), A, B),
    lambda A, B: recover_first_order(np.ones((5, 5)), A, B, tol=-1.0),
    lambda A, B: recover_first_order(np.ones((5, 5)), A, B, max_iter=0),
    lambda A, B: recover_linprog(np.zeros((4, 5)), A, B),
])
def test_recovery_bad_input_raises(call):
    A, B = bipartite_adjacency(5, 8, 2, 0), bipartite_adjacency(5, 8, 2, 1)
    with pytest.raises(ParameterError):
        call(A, B)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_first_order_on_cuda_matches_cpu(small):
    X, A, B, Y, _ = small
    fo = recover_first_order(torch.tensor(Y, device="cuda"), A, B)
    assert fo.X.device.type == "cuda" and rel(fo.X.cpu(), X) < 1e-8


# ----------------------------------------------------------------- sizes and counts


def test_theory_sketch_size():
    assert theory_sketch_size(120, 784) == pytest.approx(math.sqrt(120 * 784) * math.log(784))
    assert theory_sketch_size(4, 100, c=0.5) == pytest.approx(0.5 * 20 * math.log(100))






def test_sketch_size_for_matches_sketch_sizes_and_caps():
    from prunebounds.sketching import sketch_size_for, sketch_sizes, theory_sketch_size

    rng = np.random.default_rng(0)
    W = torch.tensor(rng.normal(size=(10, 784)) * (rng.random((10, 784)) < 0.05))
    (s,) = sketch_sizes([W])
    assert sketch_size_for((10, 784), s.j) == s
    t = sketch_size_for((784, 784), 2.5)           # j rounded up to 3
    assert t.j == 3 and t.k_theory == pytest.approx(theory_sketch_size(3, 784))
    assert not t.capped and t.n_params == math.ceil(t.k_theory) ** 2
    big = sketch_size_for((10, 784), 784)           # k far beyond both sides: capped
    assert big.capped and big.n_params == 10 * 784
    with pytest.raises(ParameterError):
        sketch_size_for((10,), 3)
