"""BLAS runs on one thread inside this process: Numba's pool owns the cores.

The conv and dense kernels call BLAS (np.dot, through SciPy's BLAS) from inside
their own parallel loops. If BLAS kept its own thread pool, two pools would spin
against each other on the same cores and every step would slow down several
times over (benchmarks/RESULTS.md, Design measurements). The modules that call
BLAS apply this limit when they are imported.
"""

import importlib.machinery
import importlib.util
import os
import sys

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from threadpoolctl import threadpool_limits

_applied = False


def use_single_threaded_blas() -> None:
    """Process-wide and idempotent. SciPy's BLAS is loaded first so the limit reaches
    it as well as NumPy's."""
    global _applied
    if not _applied:
        _load_cython_blas()
        threadpool_limits(limits=1, user_api="blas")
        _applied = True


def _load_cython_blas() -> None:
    """Load scipy.linalg.cython_blas, the table of BLAS functions Numba's
    numba_xxgemm looks up by module name, without running scipy.linalg's
    __init__ first: that package imports many modules the kernels never use,
    the largest part of what a launch with cached kernels spends before its
    first batch (benchmarks/RESULTS.md, Design measurements). The extension
    module is loaded from its file and registered under its name, where
    Numba's lookup (a plain import) finds it; if anything about that fails, it
    is imported the usual way."""
    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        return
    try:
        import scipy

        folder = os.path.join(scipy.__path__[0], "linalg")
        path = next(os.path.join(folder, "cython_blas" + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES
                    if os.path.exists(os.path.join(folder, "cython_blas" + suffix)))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    except Exception:  # any other layout: the usual import
        sys.modules.pop(name, None)
        import scipy.linalg.cython_blas  # noqa: F401


# ---------------------------------------------------------------- one product for every kernel
#
# Every matrix product of the kernels goes through `matmul`, one compiled
# function per float type, instead of np.dot: Numba compiles np.dot once per
# combination of operand layouts and output (C, transposed views, a given out
# or not: seven copies, each adding to the cold compile), and which
# transposition BLAS is asked for decides which of OpenBLAS's kernels runs
# (see kernels/conv.py's weight gradient), so the kernels say it explicitly.

_CHAR, _SIZE, _VOID_P = ir.IntType(8), ir.IntType(64), ir.IntType(8).as_pointer()
# numba_xxgemm(kind, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
_GEMM_ARGS = (_CHAR, _CHAR, _CHAR, _SIZE, _SIZE, _SIZE, _VOID_P, _VOID_P, _SIZE, _VOID_P, _SIZE, _VOID_P, _VOID_P, _SIZE)


@intrinsic
def _column_major_gemm(typingctx, transa, transb, m, n, k, a, lda, b, ldb, c, ldc, beta):
    """BLAS ?gemm in its own column-major terms, alpha 1 and the given beta (0: c is
    overwritten, 1: the product is added to it), through the
    wrapper Numba's np.dot calls (numba_xxgemm: SciPy's BLAS). transa/transb are
    booleans; a, b and c are C-contiguous arrays of one float type, passed by
    their data pointers. Returns BLAS's status (0 when it ran)."""
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) and x.layout == "C" for x in arrays):
        return None
    if not (a.dtype == b.dtype == c.dtype and a.dtype in (types.float32, types.float64)):
        return None
    kind = ord("s" if a.dtype == types.float32 else "d")

    def codegen(context, builder, signature, args):
        ta, tb, m_v, n_v, k_v, a_v, lda_v, b_v, ldb_v, c_v, ldc_v, beta_v = args
        fnty = ir.FunctionType(ir.IntType(32), _GEMM_ARGS)
        gemm = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        char, void_p = _CHAR, _VOID_P

        def flag(value):
            return builder.select(value, ir.Constant(char, ord("t")), ir.Constant(char, ord("n")))

        def data(array_type, value):
            return builder.bitcast(cgutils.create_struct_proxy(array_type)(context, builder, value=value).data, void_p)

        def scalar(value):
            slot = cgutils.alloca_once_value(builder, context.get_constant(signature.args[5].dtype, value))
            return builder.bitcast(slot, void_p)

        beta_slot = cgutils.alloca_once_value(builder, context.cast(builder, beta_v, signature.args[11],
                                                                    signature.args[5].dtype))

        i64 = types.int64
        sizes = [context.cast(builder, v, t, i64) for v, t in
                 ((m_v, signature.args[2]), (n_v, signature.args[3]), (k_v, signature.args[4]),
                  (lda_v, signature.args[6]), (ldb_v, signature.args[8]), (ldc_v, signature.args[10]))]
        status = builder.call(gemm, (ir.Constant(char, kind), flag(ta), flag(tb), sizes[0], sizes[1], sizes[2],
                                     scalar(1.0), data(signature.args[5], a_v), sizes[3],
                                     data(signature.args[7], b_v), sizes[4], builder.bitcast(beta_slot, void_p),
                                     data(signature.args[9], c_v), sizes[5]))
        return status

    return types.int32(transa, transb, m, n, k, a, lda, b, ldb, c, ldc, beta), codegen


@njit(cache=True, error_model="numpy")
def matmul(a, a_transposed, b, b_transposed, out):
    """out = op(a)·op(b) on C-contiguous 2-D arrays, op(x) = xᵀ if x_transposed else x
    (never copied: BLAS reads the stored array either way). Shapes are the
    caller's to get right: the kernels compute them, nothing here checks them.

    Row-major out (M, N) is column-major outᵀ (N, M) = op(b)ᵀ·op(a)ᵀ, so BLAS is
    called with b first; a transposed operand is one BLAS reads transposed.
    Callers pass the flags as np.bool_(...): a literal True or False would make
    Numba compile a copy of this function per combination."""
    M = out.shape[0]
    N = out.shape[1]
    K = a.shape[0] if a_transposed else a.shape[1]
    if M == 0 or N == 0:
        return
    if K == 0:
        for i in range(M):
            for j in range(N):
                out[i, j] = 0
        return
    status = _column_major_gemm(b_transposed, a_transposed, N, M, K, b, max(1, b.shape[1]), a,
                                max(1, a.shape[1]), out, N, 0.0)
    if status != 0:
        raise RuntimeError("BLAS is not available to Numba (is SciPy installed?)")


@njit(cache=True, error_model="numpy")
def matmul_strided(a, a_transposed, lda, b, b_transposed, ldb, out, ldc, M, N, K):
    """out (M, N) = op(a)·op(b) as matmul, on flat arrays that start at each matrix's
    first number with rows lda, ldb and ldc numbers apart as stored: blocks of
    columns of larger row-major matrices, read and written in place."""
    if M == 0 or N == 0:
        return
    status = _column_major_gemm(b_transposed, a_transposed, N, M, K, b, ldb, a, lda, out, ldc, 0.0)
    if status != 0:
        raise RuntimeError("BLAS is not available to Numba (is SciPy installed?)")


@njit(cache=True, error_model="numpy")
def matmul_add(a, a_transposed, b, b_transposed, out):
    """out += op(a)·op(b), as matmul otherwise (BLAS's beta = 1)."""
    M = out.shape[0]
    N = out.shape[1]
    K = a.shape[0] if a_transposed else a.shape[1]
    if M == 0 or N == 0 or K == 0:
        return
    status = _column_major_gemm(b_transposed, a_transposed, N, M, K, b, max(1, b.shape[1]), a,
                                max(1, a.shape[1]), out, N, 1.0)
    if status != 0:
        raise RuntimeError("BLAS is not available to Numba (is SciPy installed?)")
