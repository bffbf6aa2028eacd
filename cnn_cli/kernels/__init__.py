"""Kernels on NumPy arrays, one module per family.

Each kernel is a thin Python function (contiguous inputs, the addresses of its
compiled item functions) around serial @njit code that runs its items on every
core through the one parallel loop in parallel.py. Importing this package
compiles nothing: kernels compile lazily on first call and are cached on disk
(cache=True), so commands that need no kernels stay fast.
"""
