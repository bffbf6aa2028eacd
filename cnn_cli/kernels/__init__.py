"""Pure @njit kernels on NumPy arrays, one module per family.

Importing this package compiles nothing: kernels compile lazily on first call and
are cached on disk (cache=True), so commands that need no kernels stay fast.
"""
