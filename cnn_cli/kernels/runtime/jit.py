"""Options shared by the kernels' @njit.

prange_only(): the `parallel` option that turns explicit `prange` loops into
parallel loops and nothing else. With `parallel=True` Numba also rewrites
every array expression (np.zeros, slice fills, `a += b`) into a parallel loop
of its own, each compiled as a separate gufunc, which multiplies the compile
time (benchmarks/RESULTS.md, Design measurements). Since the kernels share one
parallel loop (parallel._launch, its only user), it matters for that loop alone.

A function, not a shared dict: Numba pops the keys out of the dict it is
given, so a dict shared by two decorators would leave the second with
Numba's defaults (everything parallel).
"""


def prange_only() -> dict:
    return {
        "prange": True,
        "comprehension": False,
        "numpy": False,
        "reduction": False,
        "setitem": False,
        "stencil": False,
        "fusion": False,
        "inplace_binop": False,
    }
