"""blas.matmul: the one matrix product every kernel calls (BLAS ?gemm, any transposition)."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

from cnn_cli.kernels.runtime.blas import matmul


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_t,b_t", list(itertools.product((False, True), repeat=2)))
@pytest.mark.parametrize("M,K,N", [(3, 4, 5), (16, 150, 400), (1, 7, 1), (6, 25, 1)])
def test_every_transposition_matches_numpy(dtype, a_t, b_t, M, K, N):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    a = np.ascontiguousarray(A.T) if a_t else A  # stored transposed; matmul reads it as Aᵀᵀ
    b = np.ascontiguousarray(B.T) if b_t else B
    out = np.full((M, N), np.nan, dtype=dtype)
    matmul(a, a_t, b, b_t, out)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, A @ B, rtol=tol, atol=tol * K)


@pytest.mark.parametrize("M,N", [(2, 3), (0, 3), (3, 0)])
def test_empty_inner_dimension_gives_zeros(M, N):
    out = np.full((M, N), np.nan, dtype=np.float32)
    matmul(np.empty((M, 0), np.float32), False, np.empty((0, N), np.float32), False, out)
    assert np.array_equal(out, np.zeros((M, N), np.float32))


def test_kernels_load_scipys_blas_without_scipy_linalg_and_single_threaded():
    """The kernels need only scipy.linalg.cython_blas, not the 150 ms of scipy.linalg
    around it; both BLAS libraries (NumPy's and SciPy's) are held to one thread."""
    code = (
        "import sys, numpy as np;"
        "from cnn_cli.kernels import conv;"
        "from cnn_cli.kernels.runtime.blas import matmul;"
        "from threadpoolctl import threadpool_info;"
        "out = np.empty((2, 2), np.float32);"
        "matmul(np.eye(2, dtype=np.float32), np.bool_(False), np.full((2, 2), 3, np.float32), np.bool_(False), out);"
        "assert (out == 3).all(), out;"
        "assert 'scipy.linalg.cython_blas' in sys.modules and 'scipy.linalg' not in sys.modules;"
        "blas = [i for i in threadpool_info() if i['user_api'] == 'blas'];"
        "assert len(blas) >= 2 and all(i['num_threads'] == 1 for i in blas), blas"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
