"""Where compiled kernels are cached, and why a cache can never go stale or stop a run.

Numba invalidates a cached kernel only when the kernel's own source file
changes, but our kernels inline helpers from other files (activations, the
vector intrinsics, the parallel loop): edit one of those and Numba would keep
running the old machine code. So the cache lives in a folder named after a hash
of every kernel source file (and the Numba version): any edit anywhere gives a
new folder, and the package can be installed read-only. A user's own
NUMBA_CACHE_DIR is respected as it is.

A cache fault is never fatal: an entry that cannot be read (truncated, garbage)
is ignored and the kernel recompiled, an entry that cannot be written is
skipped, and with no writable folder at all the kernels compile in memory —
each said once on stderr. Compiled code is the same either way, so the weights
are too.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2]  # cnn_cli/
# Every file whose code or constants end up inside a compiled kernel.
KERNEL_SOURCES = ("kernels", "spec/activations.py")

_said: set[str] = set()


def notice(key: str, message: str) -> None:
    """One line on stderr, once per kind of fault."""
    if key not in _said:
        _said.add(key)
        print(f"cnn: {message}", file=sys.stderr)


def sources_hash() -> str:
    digest = hashlib.sha256()
    for entry in KERNEL_SOURCES:
        root = PACKAGE / entry
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path.relative_to(PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnn-cli" / "numba"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def kernel_cache_dir() -> Path | None:
    """The keyed cache folder, in the user's cache, else the temp folder; None if neither is writable."""
    import numba

    key = f"numba-{numba.__version__}-{sources_hash()}"
    for root in (default_cache_root(), Path(tempfile.gettempdir()) / f"cnn-cli-{os.getuid()}" / "numba"):
        if _writable(root / key):
            return root / key
    return None


def configure() -> None:
    """Point Numba at the keyed folder and make cache faults non-fatal. Call before any kernel is defined."""
    from numba import config
    from numba.core import caching, dispatcher

    if not os.environ.get("NUMBA_CACHE_DIR"):
        folder = kernel_cache_dir()
        if folder is None:
            _compile_in_memory(dispatcher, caching)
        else:
            config.CACHE_DIR = str(folder)
    _guard_cache_io(caching)


def _compile_in_memory(dispatcher, caching) -> None:
    """No writable cache folder: our kernels get Numba's null cache instead of an import error."""
    enable_caching = dispatcher.Dispatcher.enable_caching

    def enable_or_skip(self):
        if not self.py_func.__module__.startswith("cnn_cli."):
            return enable_caching(self)
        notice("no-cache", "no writable cache folder (set NUMBA_CACHE_DIR to one): "
                           "kernels compile in memory, every run")
        self._cache = caching.NullCache()

    dispatcher.Dispatcher.enable_caching = enable_or_skip


def _guard_cache_io(caching) -> None:
    if getattr(caching.Cache, "_cnn_guarded", False):
        return
    load, save = caching.Cache.load_overload, caching.Cache.save_overload

    def guarded_load(self, sig, target_context):
        try:
            return load(self, sig, target_context)
        except Exception:  # any unreadable entry: a miss, so the kernel recompiles
            notice("bad-entry", f"ignoring an unreadable kernel cache entry in {self.cache_path}; recompiling")
            return None

    def guarded_save(self, sig, data):
        try:
            save(self, sig, data)
        except Exception:
            notice("no-save", f"could not write to the kernel cache {self.cache_path}; "
                              "compiled kernels are kept for this run only")

    caching.Cache.load_overload, caching.Cache.save_overload = guarded_load, guarded_save
    caching.Cache._cnn_guarded = True
