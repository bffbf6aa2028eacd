"""Size caps and memory checks made before anything is allocated.

Hostile or mistaken inputs (a zip bomb, a 12,000×12,000 PNG, a config with a
billion fc units) must fail as one line *before* the work they would cause, so
every reader asks here first: how big may this be, how much memory is there.
No numba, no numpy at import: `cnn params` and the config loader use this.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

from .errors import UserError

# Hard caps, far above anything cnn-cli writes or reads legitimately.
MAX_YAML_BYTES = 1 << 20  # a config file (the shipped ones are ~1 KB)
MAX_YAML_ALIASES = 1000  # alias uses per document (billion laughs needs millions)
MAX_YAML_DEPTH = 64  # nesting of mappings/lists (a config needs 5)
MAX_YAML_NODES = 100_000  # values once every alias is expanded (a config has a few hundred)
MAX_JSON_BYTES = 1 << 20  # config.json / meta.json inside a checkpoint, summary.json
MAX_JSON_DEPTH = 64
MAX_CSV_BYTES = 16 << 20  # metrics.csv: one short line per epoch
MAX_PNG_PIXELS = 4096 * 4096  # --image: a digit photo never needs more
PNG_BYTES_PER_PIXEL = 64  # float32 RGBA from the reader, float64 copies while converting
MAX_REPR = 60  # characters of an unvalidated value shown in a message
NAME_MAX_FALLBACK = 255


def short_repr(value: Any, limit: int = MAX_REPR) -> str:
    """repr() cut to `limit` characters: values read from files go into messages only like this."""
    try:
        text = repr(value)
    except Exception:  # a hostile object's repr may itself fail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover - loop always returns


# ---------------------------------------------------------------- available memory


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> Optional[int]:
    """What RLIMIT_AS still allows this process to map, when a limit is set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            used = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        used = 0
    return max(0, soft - used)


def available_memory() -> Optional[int]:
    """Bytes this process may still allocate: free RAM, or less under an address-space limit; None if unknown."""
    override = os.environ.get("CNN_MEMORY_LIMIT")  # for tests and shared machines: a cap in bytes
    candidates = [v for v in (_meminfo_available(), _address_space_left()) if v is not None]
    if override:
        try:
            candidates.append(int(override))
        except ValueError:
            raise UserError(f"CNN_MEMORY_LIMIT={short_repr(override)}: expected a number of bytes") from None
    return min(candidates) if candidates else None


def require_memory(needed: int, what: str, fix: str) -> None:
    """UserError naming what needs `needed` bytes, how much there is, and the fix, when it does not fit."""
    available = available_memory()
    if available is not None and needed > available:
        raise UserError(f"{what} needs about {human_bytes(needed)} of memory but only {human_bytes(available)} "
                        f"is available; {fix}")


# ---------------------------------------------------------------- network memory


def network_bytes(config, batch: int, training: bool) -> int:
    """Estimate of the float32 memory a network takes at `batch` images (parameters + activations).

    Training keeps weights, gradients and two optimizer slots (4×) and, per
    layer, the output, its gradient and the cached input; conv layers add their
    unfolded (im2col) inputs. Deliberately coarse: it exists to refuse configs
    that are off by orders of magnitude, not to budget megabytes.
    """
    params = activations = columns = 0
    for layer in config.layers:
        spec = layer.spec
        out = math.prod(layer.out_shape)
        activations += out
        kind = getattr(spec, "kind", "")
        if kind == "conv":
            fh, fw = spec.kernel
            channels = layer.in_shape[0]
            params += spec.filters * channels * fh * fw + spec.filters
            columns += channels * fh * fw * layer.out_shape[1] * layer.out_shape[2]
        elif kind in ("dense", "rbf"):
            params += layer.in_shape[0] * spec.units + spec.units
        elif kind == "pool" and getattr(spec, "pool", "") == "subsample":
            params += 2 * layer.in_shape[0]
    first = math.prod(config.input.shape)
    if training:
        floats = 4 * params + batch * (first + 3 * activations + 2 * columns)
    else:
        floats = params + batch * (first + 2 * activations + columns)
    return 4 * floats


def require_network_fits(config, batch: int, training: bool, what: str) -> None:
    needed = network_bytes(config, batch, training)
    fix = ("use a smaller batch (--batch-size) or fewer filters/units, or a smaller input"
           if training else "use a smaller network")
    require_memory(needed, f"{what}: this network {'trained' if training else 'run'} at batch {batch:,}", fix)


# ---------------------------------------------------------------- paths


def name_max(path: Path) -> int:
    """The longest file name the folder holding `path` accepts (bytes)."""
    probe = path
    while True:
        try:
            return os.pathconf(probe, "PC_NAME_MAX")
        except (OSError, ValueError):
            if probe == probe.parent:
                return NAME_MAX_FALLBACK
            probe = probe.parent


def check_path(value: Any, option: str) -> None:
    """UserError when a path given on the command line cannot name a file on this system."""
    if not isinstance(value, (str, os.PathLike)):
        return
    text = os.fspath(value)
    if isinstance(text, bytes):
        return
    if "\x00" in text:
        raise UserError(f"{option} {short_repr(text)}: a path cannot hold a NUL character")
    limit = name_max(Path(".")) if text else NAME_MAX_FALLBACK
    for part in Path(text).parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise UserError(f"{option}: the path component {short_repr(part, 40)} is {size} bytes long; "
                            f"file names may have at most {limit} — choose a shorter name")
    if len(os.fsencode(text)) >= 4096:
        raise UserError(f"{option}: the path is {len(os.fsencode(text)):,} bytes long; at most 4,095 — "
                        f"choose a shorter path")


def safe_text(value: Any) -> str:
    """str(value) safe to print on any stream: undecodable file-name bytes become \\x escapes."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    return text.encode("utf-8", ESCAPE_ERRORS).decode("utf-8")


ESCAPE_ERRORS = "cnn-escape"


def _escape_unencodable(error: UnicodeError):
    """Codec error handler: a file name's undecodable byte (held as a lone surrogate U+DC80-U+DCFF by
    Python) prints as the \\xNN it was; any other unencodable character as its \\u escape."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    pieces = []
    for char in error.object[error.start:error.end]:
        code = ord(char)
        pieces.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else char.encode("ascii", "backslashreplace").decode())
    return "".join(pieces), error.end


import codecs  # noqa: E402 - registered once, at import, beside the handler

codecs.register_error(ESCAPE_ERRORS, _escape_unencodable)
