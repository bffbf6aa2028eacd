"""BLAS runs on one thread inside this process: Numba's pool owns the cores.

The conv and dense kernels call BLAS (np.dot, through SciPy's BLAS) from inside
their own parallel loops. If BLAS kept its own thread pool, two pools would spin
against each other on the same cores: a LeNet-5 training step measured 5-20×
slower (6.8 ms per batch of 64 with one BLAS thread, 34-160 ms with two), and a
conv backward pass called outside a model 80× slower. The modules that call BLAS
apply this limit when they are imported.
"""

from threadpoolctl import threadpool_limits

_applied = False


def use_single_threaded_blas() -> None:
    """Process-wide and idempotent. SciPy's BLAS is loaded first so the limit reaches
    it as well as NumPy's."""
    global _applied
    if not _applied:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library np.dot in Numba calls)

        threadpool_limits(limits=1, user_api="blas")
        _applied = True
