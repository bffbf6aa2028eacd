"""Kernels on NumPy arrays, one module per family, forward beside backward.

Each kernel is a thin Python function (contiguous inputs, the addresses of its
compiled item functions) around serial @njit code that runs its items on every
core through the one parallel loop in runtime/parallel.py. Importing this
package compiles nothing: kernels compile lazily on first call and are cached
on disk (runtime/cache.py says where), so commands that need no kernels stay fast.
"""

import os

from .runtime import cache

# LLVM's -O2 pipeline instead of Numba's default -O3, unless the user chose a
# level (NUMBA_OPT): the hot loops are BLAS calls and explicit vector code,
# which -O3's extra passes do not speed up, while they lengthen the cold compile
# (benchmarks/RESULTS.md, Design measurements). Set in the environment rather
# than on numba.config, because Numba re-reads the environment before each
# compilation and the bench's compile probe, a child process, inherits it. No
# fastmath anywhere.
os.environ.setdefault("NUMBA_OPT", "2")
cache.configure()
