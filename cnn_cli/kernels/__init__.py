"""Kernels on NumPy arrays, one module per family.

Each kernel is a thin Python function (contiguous inputs, the addresses of its
compiled item functions) around serial @njit code that runs its items on every
core through the one parallel loop in parallel.py. Importing this package
compiles nothing: kernels compile lazily on first call and are cached on disk
(cache=True), so commands that need no kernels stay fast.
"""

import os

# LLVM's -O2 pipeline instead of Numba's default -O3, unless the user chose a
# level (NUMBA_OPT). The hot loops are BLAS calls and explicit vector code
# (vector.py), which -O3's extra passes do not improve: measured in one
# process against the same kernels compiled at -O3, training and inference
# ran at the same speed, while the cold compile of every kernel took ~3 s less.
# Set in the environment rather than on numba.config, because Numba re-reads
# the environment before each compilation, and the bench's compile probe, a
# child process, inherits it. No fastmath anywhere, so results are identical.
os.environ.setdefault("NUMBA_OPT", "2")
