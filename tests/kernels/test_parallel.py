"""The shared parallel loop (cnn_cli/kernels/runtime/parallel.py): items called by address."""

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

from cnn_cli.kernels.runtime.parallel import c_array, item_args, launch_address, native_item, parallel_for

I64 = types.int64


@native_item(lambda f: (c_array(f, 1), c_array(I64, 1), f))
@njit
def _square_plus(i, context):
    """out[i] = x[i]² + shift, and count[i] += 1 (so a doubled or missed index shows)."""
    x, count, shift = item_args(context)
    x[i] = x[i] * x[i] + shift
    count[i] += 1


@njit
def _square_all(launch, item, x, count, shift):
    parallel_for(_square_plus, launch, item, x.size, (x, count, shift))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_every_index_runs_once(dtype, n):
    x = np.arange(n, dtype=dtype)
    count = np.zeros(n, dtype=np.int64)
    shift = dtype(0.5)
    _square_all(launch_address(), _square_plus.native.address(np.dtype(dtype)), x, count, shift)
    np.testing.assert_array_equal(count, np.ones(n, dtype=np.int64))
    np.testing.assert_array_equal(x, np.arange(n, dtype=dtype) ** 2 + shift)
    assert x.dtype == dtype


@native_item(lambda f: (c_array(f, 1),))
@njit
def _fill_index(i, context):
    (out,) = item_args(context)
    out[i] = i


@njit
def _fill_wrong(launch, item, out):
    parallel_for(_fill_index, launch, item, out.size, (out, np.int64(1)))  # one argument too many


def test_a_tuple_that_does_not_match_the_declared_signature_fails_to_compile():
    out = np.zeros(3)
    with pytest.raises(TypingError, match="_fill_index given arguments .* but compiled for"):
        _fill_wrong(launch_address(), _fill_index.native.address(out.dtype), out)


@native_item(lambda f: (c_array(f, 1),))
@njit
def _fail_on_negative(i, context):
    (x,) = item_args(context)
    if x[i] < 0:
        raise ValueError("negative input")


@njit
def _check_all(launch, item, x):
    parallel_for(_fail_on_negative, launch, item, x.size, (x,))


def test_an_item_exception_makes_the_kernel_raise():
    x = np.ones(16)
    _check_all(launch_address(), _fail_on_negative.native.address(x.dtype), x)  # no exception
    x[11] = -1.0
    with pytest.raises(RuntimeError, match="parallel kernel item raised"):
        _check_all(launch_address(), _fail_on_negative.native.address(x.dtype), x)


def test_addresses_are_per_dtype_and_stable():
    a32 = _square_plus.native.address(np.dtype(np.float32))
    a64 = _square_plus.native.address(np.dtype(np.float64))
    assert a32 != a64 and a32 == _square_plus.native.address(np.dtype(np.float32))
    assert launch_address() == launch_address()
