"""Tests of prunebounds.norms: the one spectral norm, the other norms, input norms.

Expected values come from the matrices' structure (diagonal, rank one) or from an
independent full SVD (``torch.linalg.matrix_norm(ord=2)``, ``numpy.linalg.norm``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from prunebounds.errors import ParameterError
from prunebounds.norms import (authors_lpq_norm, bartlett_21, frobenius_norm, input_norms,
                               max_input_norm, norm_21, operator_norm, spectral_norm,
                               spectral_norms)


def approx(x, rel=1e-12):
    return pytest.approx(x, rel=rel)


# A1 = diag(3, 4): ||A1||_2 = 4, ||A1||_F = 5; A2 = [[6, 8], [0, 0]]: rank one, row norm 10.
A1 = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
A2 = torch.tensor([[6.0, 8.0], [0.0, 0.0]])


def test_21_norm_convention_columns_vs_rows():
    # M = [[3, 4], [0, 12]]
    #   columns: (3, 0) -> 3, (4, 12) -> sqrt(16 + 144) = 4 sqrt(10)
    #   rows:    (3, 4) -> 5, (0, 12) -> 12
    #   Frobenius: sqrt(9 + 16 + 144) = 13
    M = torch.tensor([[3.0, 4.0], [0.0, 12.0]])
    assert norm_21(M) == approx(3 + 4 * math.sqrt(10))           # sum of column norms
    assert bartlett_21(M) == approx(5 + 12)                       # ||M^T||_{2,1}: rows
    assert norm_21(M.T) == approx(17)
    assert authors_lpq_norm(M, 1, 2) == approx(13)                # = Frobenius
    assert frobenius_norm(M) == approx(13)
    # with a reference matrix: rows of M - R = (3, 4) - (3, 0) = (0, 4) -> 4; (0, 12) -> 12
    R = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    assert bartlett_21(M, R) == approx(16)


def test_simple_norms_closed_form():
    assert spectral_norm(A1) == approx(4)
    assert spectral_norm(A2) == approx(10)
    assert frobenius_norm(A1) == approx(5)
    # input norms: rows (3, 4) -> 5 and (0, 0) -> 0 ... of a 2-sample data set
    X = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    n = input_norms(X)
    assert n.max == approx(5) and n.fro == approx(math.sqrt(26))
    assert n.rms == approx(math.sqrt(13)) and n.n == 2
    assert max_input_norm(X) == approx(5)
    assert max_input_norm(torch.ones(3, 2, 2)) == approx(2)          # samples are flattened


def test_spectral_norm_helper():
    A = torch.diag(torch.tensor([3.0, -5.0, 1.0]))
    assert spectral_norm(A) == pytest.approx(5.0)
    assert spectral_norm(np.array([[3.0, 4.0]])) == pytest.approx(5.0)


def test_spectral_norm_lanczos_matches_svd():
    g = torch.Generator().manual_seed(11)
    for shape in ((784, 784), (300, 120), (10, 784), (2, 5), (50, 3)):
        W = torch.randn(shape, generator=g, dtype=torch.float64)
        W = W * (torch.rand(shape, generator=g, dtype=torch.float64) < 0.4)
        exact = float(torch.linalg.matrix_norm(W, ord=2))
        assert spectral_norm(W, "lanczos") == pytest.approx(exact, rel=1e-10)
        assert spectral_norm(W.numpy(), "lanczos") == pytest.approx(exact, rel=1e-10)
    assert spectral_norm(W, "lanczos") == spectral_norm(W, "lanczos")   # reproducible
    with pytest.raises(ParameterError):
        spectral_norm(W, "power")


@pytest.mark.parametrize("density", [0.0, 1e-4, 0.02, 0.1, 0.11, 0.9])
def test_spectral_norm_lanczos_sparse_and_dense_paths(density):
    """The CSR path (density <= 10 %) and the dense path agree with the full SVD."""
    g = torch.Generator().manual_seed(5)
    W = torch.randn(400, 250, generator=g, dtype=torch.float64)
    W = W * (torch.rand(W.shape, generator=g, dtype=torch.float64) < density)
    exact = float(torch.linalg.matrix_norm(W, ord=2))
    assert spectral_norm(W, "lanczos") == pytest.approx(exact, rel=1e-10, abs=1e-300)


def test_spectral_norm_lanczos_clustered_spectrum():
    """A spectrum with a tiny top gap (slow Lanczos convergence) is still exact."""
    g = torch.Generator().manual_seed(6)
    Q1, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    Q2, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    s = torch.linspace(1.0, 0.999, 300, dtype=torch.float64)
    W = Q1 @ torch.diag(s) @ Q2.T
    assert spectral_norm(W, "lanczos") == pytest.approx(1.0, rel=1e-10)


def test_spectral_norms_in_threads_equal_the_serial_values():
    """Several norms at once (threads, BLAS limited to one thread each): the serial values.

    Equal to 1e-12 relative, not bitwise: with torch < 2.5 or numpy < 2 (the lowest versions
    pyproject.toml allows) a threaded Lanczos run can differ in the last bit."""
    g = torch.Generator().manual_seed(5)
    mats = [torch.randn(300, 200, generator=g, dtype=torch.float64),
            torch.randn(250, 250, generator=g, dtype=torch.float64)
            * (torch.rand(250, 250, generator=g) < 0.01),          # sparse path
            torch.randn(10, 300, generator=g, dtype=torch.float64),   # Gram path
            torch.zeros(40, 40, dtype=torch.float64)]
    serial = [spectral_norm(m) for m in mats]
    assert spectral_norms(mats, workers=2) == pytest.approx(serial, rel=1e-12, abs=0)
    assert spectral_norms(mats, workers=1) == pytest.approx(serial, rel=1e-12, abs=0)
    assert spectral_norms(mats, "svd", workers=3) == pytest.approx(
        [spectral_norm(m, "svd") for m in mats], rel=1e-12, abs=0)
    assert serial[0] == pytest.approx(float(torch.linalg.matrix_norm(mats[0], ord=2)), rel=1e-12)
    with pytest.raises(ParameterError):
        spectral_norms(mats, workers=0)


def test_empty_and_bad_matrices():
    assert spectral_norm(torch.zeros(0, 5)) == 0.0
    with pytest.raises(ParameterError, match="2-D"):
        spectral_norm(torch.ones(3))


@pytest.mark.parametrize("n", [1, 2, 12])
def test_operator_norm_of_an_explicit_matrix(n):
    """The Gram-action form agrees with the full SVD of the matrix itself."""
    A = np.random.default_rng(n).standard_normal((n + 3, n))
    exact = float(np.linalg.norm(A, 2))
    assert operator_norm(lambda v: A.T @ (A @ v), n) == pytest.approx(exact, rel=1e-8)


def test_operator_norm_of_a_convolution_without_forming_it():
    """A 3 x 3 convolution on 6 x 6 images: the action only, against its explicit matrix."""
    torch.manual_seed(0)
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    basis = torch.eye(36, dtype=torch.float64).reshape(36, 1, 6, 6)
    A = F.conv2d(basis, w, padding=1).reshape(36, -1).T          # column j: image of e_j

    def gram(v):
        x = torch.from_numpy(v).reshape(1, 1, 6, 6)
        return F.conv_transpose2d(F.conv2d(x, w, padding=1), w, padding=1).reshape(-1).numpy()

    exact = float(np.linalg.norm(A.numpy(), 2))
    assert operator_norm(gram, 36) == pytest.approx(exact, rel=1e-8)


def test_batched_spectral_norms_match_one_at_a_time():
    from prunebounds.norms import batched_spectral_norms, spectral_norm
    X = torch.randn(5, 40, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert batched_spectral_norms(X) == pytest.approx([spectral_norm(x) for x in X], rel=1e-10)
    assert batched_spectral_norms(X[:0]) == []
    with pytest.raises(ParameterError, match="3-D"):
        batched_spectral_norms(X[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_spectral_norms_on_cuda_match_the_cpu():
    from prunebounds.norms import batched_spectral_norms
    X = torch.randn(70, 50, 60, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert batched_spectral_norms(X.cuda(), chunk=16) == pytest.approx(batched_spectral_norms(X),
                                                                      rel=1e-9)
