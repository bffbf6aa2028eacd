"""Freed arrays stay with the process: glibc's malloc told not to hand them back.

A training step allocates and frees the same arrays every time: outputs,
Winograd-domain chunks, gradient slots, a few MB each. With glibc's default
settings, arrays above a moving threshold are mapped fresh from the kernel and
unmapped when freed, and the top of the heap is trimmed, so each step touches
new pages and pays for their page faults in system time (benchmarks/RESULTS.md,
Design measurements). Fixing both
thresholds keeps freed memory in the heap, where the next step finds it: the
two cost nothing in peak memory, only in memory handed back after a peak.

Arrays above 32 MB (glibc's largest allowed threshold: datasets, batches of
thousands of images) are still mapped and unmapped. Other C libraries (macOS,
musl) keep their own policy: nothing is changed there.
"""

import ctypes

# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit machines
TRIM_THRESHOLD = 512 << 20

_applied = None


def keep_freed_memory() -> bool:
    """Process-wide and idempotent; True where glibc took both settings."""
    global _applied
    if _applied is None:
        _applied = False
        try:
            libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc: its own policy stays
            return False
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        # The mmap threshold first: setting either stops glibc moving it, and a
        # trim threshold alone would leave it at 128 KB, mapping nearly every array.
        _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
