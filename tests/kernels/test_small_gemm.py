"""runtime/small_gemm.py against NumPy: every edge of the register blocks, both
operand orientations, offsets into larger arrays, float32 and float64, and the
narrow (AVX2) configuration as well as this machine's own."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnn_cli.kernels.runtime import small_gemm
from cnn_cli.kernels.runtime.small_gemm import small_matmul


def product(a, b, transposed=False, margin=5):
    """small_matmul's a·b, reading a (or aᵀ stored) and b at an offset inside larger
    arrays and writing into the middle of a NaN-filled one; returns (c, untouched)."""
    rows, depth = a.shape
    columns = b.shape[1]
    stored_a = np.ascontiguousarray(a.T) if transposed else a
    flat_a = np.concatenate([np.full(margin, np.nan, a.dtype), stored_a.reshape(-1)])
    flat_b = np.concatenate([np.full(margin, np.nan, a.dtype), b.reshape(-1)])
    c_row = columns + 3
    flat_c = np.full(margin + rows * c_row + margin, np.nan, a.dtype)
    a_row, a_col = (1, rows) if transposed else (depth, 1)
    small_matmul(flat_a, margin, a_row, a_col, flat_b, margin, columns, flat_c, margin, c_row, rows, columns, depth)
    c = flat_c[margin:margin + rows * c_row].reshape(rows, c_row)
    gaps = np.concatenate([flat_c[:margin], c[:, columns:].reshape(-1), flat_c[margin + rows * c_row:]])
    return c[:, :columns], gaps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, depth, columns", [
    (32, 32, 64), (4, 9, 64), (5, 7, 70), (1, 1, 1), (3, 2, 17), (7, 33, 129), (64, 128, 200), (9, 3, 8)])
@pytest.mark.parametrize("transposed", [False, True])
def test_matches_numpy(dtype, rows, depth, columns, transposed):
    rng = np.random.default_rng(rows * 1000 + depth * 10 + columns)
    a = rng.standard_normal((rows, depth)).astype(dtype)
    b = rng.standard_normal((depth, columns)).astype(dtype)
    c, gaps = product(a, b, transposed)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(c, exact, rtol=tolerance, atol=tolerance * np.sqrt(depth))
    assert np.isnan(gaps).all(), "wrote outside the result's rows and columns"


@pytest.mark.parametrize("rows, depth, columns", [(9, 33, 70), (4, 5, 16), (1, 2, 3)])
def test_accumulate_adds_the_product_to_c(rows, depth, columns):
    rng = np.random.default_rng(rows + columns)
    a, b = rng.standard_normal((rows, depth)), rng.standard_normal((depth, columns))
    c = rng.standard_normal((rows, columns))
    start = c.copy()
    small_matmul(a.reshape(-1), 0, depth, 1, b.reshape(-1), 0, columns, c.reshape(-1), 0, columns, rows, columns, depth,
                 True)
    np.testing.assert_allclose(c, start + a @ b, rtol=1e-13, atol=1e-13)


def test_an_empty_inner_dimension_gives_zeros():
    c, gaps = product(np.zeros((6, 0), np.float32), np.zeros((0, 40), np.float32))
    assert (c == 0).all() and np.isnan(gaps).all()


def test_each_product_sums_in_order_with_fused_multiply_adds():
    """c = fma(a1, b1, a0·b0) exactly: (1 + 2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴ rounds to
    1 + 2⁻¹¹ in float32 on its own, so a multiply then an add would give 0,
    while one fused multiply-add onto −(1 + 2⁻¹¹) keeps the 2⁻²⁴. The same
    sequence for every entry is what makes the bits the same whatever the
    machine's vector width."""
    a = np.array([[-(1 + 2.0 ** -11), 1 + 2.0 ** -12]], np.float32)
    b = np.array([[1.0] * 20, [1 + 2.0 ** -12] * 20], np.float32)
    c, _ = product(a, b)
    assert (c == np.float32(2.0 ** -24)).all()


NARROW_CHECK = textwrap.dedent("""
    import numpy as np
    from cnn_cli.kernels.runtime import small_gemm
    assert not small_gemm.WIDE and small_gemm.VECTORS == 2, (small_gemm.WIDE, small_gemm.VECTORS)
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        for rows, depth, columns in ((9, 33, 70), (4, 5, 16), (1, 2, 3)):
            a = rng.standard_normal((rows, depth)).astype(dtype)
            b = rng.standard_normal((depth, columns)).astype(dtype)
            c = np.full((rows, columns), np.nan, dtype)
            small_gemm.small_matmul(a.reshape(-1), 0, depth, 1, b.reshape(-1), 0, columns, c.reshape(-1), 0, columns,
                                    rows, columns, depth)
            np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    print("ok")
""")


def test_narrow_vectors_when_compiling_for_an_avx2_cpu(tmp_path):
    """Zen 3 and other AVX2 machines get 32-byte vectors and a 4 × 2 block: the
    same code, compiled for Haswell (AVX2 and FMA) in a fresh process and cache."""
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CPU_FEATURES", None)
    done = subprocess.run([sys.executable, "-c", NARROW_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_this_machine_gets_its_own_vector_width():
    assert small_gemm.VECTOR_BYTES == (64 if small_gemm.WIDE else 32)
