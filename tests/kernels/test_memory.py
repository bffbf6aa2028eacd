"""runtime/memory.py: freed arrays are reused, not mapped afresh (glibc only)."""

import platform
import resource

import numpy as np
import pytest

from cnn_cli.kernels.runtime import parallel  # noqa: F401  (importing the kernels applies the setting)
from cnn_cli.kernels.runtime.memory import keep_freed_memory

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not glibc, reason="mallopt is glibc's; other C libraries keep their own policy")
def test_arrays_freed_and_allocated_again_take_no_new_pages():
    assert keep_freed_memory() is True
    size = 8 << 20  # a CIFAR-10 layer's output at batch 64
    np.ones(size // 8)  # the heap grows to hold it once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = np.empty(size // 8)
        a.fill(1.0)  # touches every page
        del a
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # glibc's defaults trim the heap's top after each free: about 500 faults here
    assert faults < 50, f"{faults} page faults: freed memory went back to the kernel"
