"""Fetch the four MNIST files, check them and store them atomically.

Design (the parts torchvision gets wrong):

* Every file is written to a hidden temporary file in the *same* folder
  (``.<name>.<random>.part``) and renamed onto its final name only after it is
  complete and its MD5 matches, so a half file never carries the final name.
  The temporary file is removed on every failure, including Ctrl-C.
* A mirror fails over to the next one not only on network errors but also on
  an HTTP error status, a cut transfer (fewer bytes than Content-Length) and a
  checksum mismatch.
* Every network operation has a timeout (``timeout`` seconds for the connect
  and for each read, so a stalled server cannot hang the command).
* When every mirror fails, one :class:`UserError` line lists what was tried and
  how to place the files by hand.

Mirrors are ``http(s)://`` URLs, ``file://`` URLs or plain folders.

Testing hook: tests serve small generated files, whose MD5s are not the
official ones. Pass ``expected={name: md5}`` to :func:`download_mnist` (it
overrides the official MD5 for those names; sizes are then taken from the
transfer only), or monkeypatch :data:`OFFICIAL_FILES`. Tests should also
monkeypatch :data:`DEFAULT_MIRRORS` to ``()`` so that nothing ever reaches the
internet; it is read at call time.

This module must not import numpy-heavy or numba code at import time; the IDX
structure check used with ``verify=False`` imports :mod:`cnn_cli.data` lazily.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from .errors import UserError

__all__ = [
    "MnistFile",
    "OFFICIAL_FILES",
    "DEFAULT_MIRRORS",
    "ENV_DATA_DIR",
    "DEFAULT_DATA_DIR",
    "DEFAULT_TIMEOUT",
    "FetchResult",
    "resolve_data_dir",
    "file_name",
    "missing_files",
    "md5_of",
    "download_mnist",
    "ensure_mnist",
]


@dataclass(frozen=True)
class MnistFile:
    """One official MNIST file: its name, MD5, size in bytes, split and kind."""

    name: str
    md5: str
    size: int
    split: str  # "train" | "test"
    kind: str  # "images" | "labels"


OFFICIAL_FILES: dict[str, MnistFile] = {
    f.name: f
    for f in (
        MnistFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422, "train", "images"),
        MnistFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881, "train", "labels"),
        MnistFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877, "test", "images"),
        MnistFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542, "test", "labels"),
    )
}

DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch project's S3 mirror
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # Google's CVDF mirror
    "http://yann.lecun.com/exdb/mnist/",  # the original
)

ENV_DATA_DIR = "CNN_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")
DEFAULT_TIMEOUT = 30.0  # seconds, for the connect and for each read
CHUNK = 64 * 1024
USER_AGENT = "cnn-cli (MNIST downloader; python-urllib)"
README_HINT = "see data/README.md"


# --------------------------------------------------------------------------- paths


def resolve_data_dir(option: Union[Path, str, None] = None) -> Path:
    """The data folder: the ``--data-dir`` option, else ``$CNN_DATA_DIR``, else ``data/``."""
    if option is not None and str(option) != "":
        return Path(option).expanduser()
    env = os.environ.get(ENV_DATA_DIR, "")
    if env.strip():
        return Path(env.strip()).expanduser()
    return DEFAULT_DATA_DIR


def file_name(split: str, kind: str) -> str:
    """The official file name for ``split`` ("train"/"test") and ``kind`` ("images"/"labels")."""
    for f in OFFICIAL_FILES.values():
        if f.split == split and f.kind == kind:
            return f.name
    raise ValueError(f"unknown MNIST split/kind {split!r}/{kind!r}")


def missing_files(data_dir: Union[Path, str], names: Optional[Iterable[str]] = None) -> list[str]:
    """Names (official order) of the MNIST files that are not regular files in ``data_dir``."""
    data_dir = Path(data_dir)
    wanted = list(OFFICIAL_FILES) if names is None else list(names)
    return [n for n in wanted if not (data_dir / n).is_file()]


def md5_of(path: Union[Path, str]) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- console


def _default_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _say(console, message: str) -> None:
    # soft_wrap: never wrap at the console width, so output does not depend on it.
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _human(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n}"  # pragma: no cover


class _Reporter:
    """Progress bars on a terminal; short plain lines otherwise (pipes, logs, tests)."""

    def __init__(self, console):
        self.console = console
        self.progress = None
        self.task = None
        if getattr(console, "is_terminal", False):
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def say(self, message: str) -> None:
        _say(self.progress.console if self.progress is not None else self.console, message)

    def start(self, name: str, total: Optional[int]) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task(name, total=total)
        else:
            self.progress.reset(self.task, total=total, description=name, visible=True)

    def advance(self, n: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=n)

    def done(self, ok: bool) -> None:
        if self.progress is not None and self.task is not None:
            if ok:
                self.task = None  # keep the finished bar on screen; next file gets a new one
            else:
                self.progress.update(self.task, visible=False)


# --------------------------------------------------------------------------- mirrors


@dataclass(frozen=True)
class _Mirror:
    text: str  # as given, for messages
    kind: str  # "http" | "file"
    base: str  # URL ending in "/" (http) or a folder path (file)

    def location(self, name: str) -> str:
        if self.kind == "http":
            return self.base + urllib.parse.quote(name)
        return str(Path(self.base) / name)


def _parse_mirror(text: str) -> _Mirror:
    text = str(text).strip()
    if not text:
        raise UserError("--mirror: empty value; give an http(s):// URL, a file:// URL or a folder")
    if "://" in text:
        for name in OFFICIAL_FILES:  # a URL of one of the files: use its folder
            if text.endswith("/" + name):
                text = text[: -len(name)]
        parts = urllib.parse.urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.netloc:
                raise UserError(f"--mirror {text}: the URL has no host; write it like https://host/path/")
            base = text if text.endswith("/") else text + "/"
            return _Mirror(text, "http", base)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise UserError(f"--mirror {text}: file:// URLs must name a local path, like file:///home/me/mnist/")
            return _Mirror(text, "file", urllib.request.url2pathname(parts.path))
        raise UserError(
            f"--mirror {text}: unsupported scheme {parts.scheme!r}; use http(s)://, file:// or a plain folder"
        )
    folder = Path(text).expanduser()
    if folder.name in OFFICIAL_FILES and not folder.is_dir():  # a path of one of the files
        folder = folder.parent
    return _Mirror(text, "file", str(folder))


def _all_mirrors(user_mirrors: Iterable[str]) -> list[_Mirror]:
    mirrors: list[_Mirror] = []
    seen: set[str] = set()
    for text in list(user_mirrors) + list(DEFAULT_MIRRORS):
        m = _parse_mirror(text)
        if m.base not in seen:
            seen.add(m.base)
            mirrors.append(m)
    return mirrors


class _MirrorFailed(Exception):
    """This mirror could not deliver this file; try the next one."""

    def __init__(self, reason: str, unreachable: bool = False, mismatch: bool = False, short: Optional[str] = None):
        super().__init__(reason)
        self.reason = reason
        self.short = short or reason  # for the final summary line
        self.unreachable = unreachable  # host down: skip it for the remaining files
        self.mismatch = mismatch  # delivered a complete file with another checksum


class _WriteFailed(Exception):
    """Writing into the data folder failed (disk full, permissions): no mirror can help."""


def _network_reason(error: BaseException, timeout: float) -> str:
    """A few words for a network failure: "HTTP 404 Not Found", "connection refused", ..."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}".strip()
    if isinstance(error, urllib.error.URLError):
        if not isinstance(error.reason, BaseException):
            return str(error.reason)
        error = error.reason
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host not found, no network?"
    if isinstance(error, (ConnectionResetError, http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return "connection closed by the server"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _copy_stream(src, dst, reporter: _Reporter, hasher, timeout: float) -> int:
    got = 0
    while True:
        try:
            chunk = src.read(CHUNK)
        except (OSError, http.client.HTTPException) as error:
            raise _MirrorFailed(f"{_network_reason(error, timeout)} after {got:,} bytes") from None
        if not chunk:
            return got
        try:
            dst.write(chunk)
        except OSError as error:
            raise _WriteFailed(str(error)) from None
        hasher.update(chunk)
        got += len(chunk)
        reporter.advance(len(chunk))


def _fetch_to(mirror: _Mirror, name: str, tmp, reporter: _Reporter, hasher, timeout: float, size_hint) -> int:
    """Copy ``name`` from ``mirror`` into the open file ``tmp``; return the byte count."""
    where = mirror.location(name)
    if mirror.kind == "file":
        folder = Path(mirror.base)
        if not folder.is_dir():
            raise _MirrorFailed("folder does not exist", unreachable=True)
        try:
            src = open(where, "rb")
        except FileNotFoundError:
            raise _MirrorFailed("file not found") from None
        except OSError as error:
            raise _MirrorFailed(error.strerror or str(error)) from None
        with src:
            total = os.fstat(src.fileno()).st_size
            reporter.start(name, total)
            got = _copy_stream(src, tmp, reporter, hasher, timeout)
        if got != total:  # pragma: no cover - file changed while copying
            raise _MirrorFailed(f"file changed while copying ({got:,} of {total:,} bytes)")
        return got

    request = urllib.request.Request(where, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        raise _MirrorFailed(_network_reason(error, timeout)) from None
    except (OSError, http.client.HTTPException) as error:
        # refused, DNS, TLS, timeout while connecting: the host is not usable now
        raise _MirrorFailed(_network_reason(error, timeout), unreachable=True) from None
    with response:
        length = response.headers.get("Content-Length")
        try:
            total = int(length) if length is not None else None
        except ValueError:
            total = None
        reporter.start(name, total if total is not None else size_hint)
        got = _copy_stream(response, tmp, reporter, hasher, timeout)
    if total is not None and got != total:
        raise _MirrorFailed(f"transfer cut after {got:,} of {total:,} bytes")
    return got


def _idx_problem(path: Path, name: str) -> Optional[str]:
    """None when ``path`` is a readable MNIST IDX file of the kind ``name`` implies, else why not."""
    from . import data  # lazy: numpy only when needed

    kind = OFFICIAL_FILES[name].kind if name in OFFICIAL_FILES else None
    try:
        data.read_idx(path, kind=kind, name=name)
    except UserError as error:
        return str(error)
    return None


# --------------------------------------------------------------------------- download


@dataclass(frozen=True)
class FetchResult:
    """What happened to one file: ``status`` is "present" (skipped) or "fetched"."""

    name: str
    path: Path
    status: str
    source: Optional[str]  # the URL/path it came from ("fetched" only)
    md5: str
    verified: bool  # MD5 matched the expected one


def _prepare_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} is a file, not a folder; pass another --data-dir")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create data folder {data_dir}: {error.strerror or error}; pass a writable --data-dir"
        ) from None
    if not os.access(data_dir, os.W_OK):
        raise UserError(f"data folder {data_dir} is not writable; pass a writable --data-dir")


def download_mnist(
    data_dir: Union[Path, str, None] = None,
    mirrors: Sequence[str] = (),
    force: bool = False,
    verify: bool = True,
    console=None,
    names: Optional[Iterable[str]] = None,
    timeout: float = DEFAULT_TIMEOUT,
    expected: Optional[Mapping[str, str]] = None,
) -> dict[str, FetchResult]:
    """Make the MNIST files ``names`` (default: all four) present and valid in ``data_dir``.

    ``mirrors`` are tried first, then :data:`DEFAULT_MIRRORS`. A file already present
    with the right MD5 is skipped unless ``force``. ``verify=False`` accepts files
    whose MD5 differs from the official one (a class sample, another digit set) as
    long as they are complete, well-formed IDX files, and says so. ``expected``
    overrides the expected MD5 per name (tests use it for generated files).

    Returns ``{name: FetchResult}``. Raises :class:`UserError` (one line listing
    every mirror tried and how to place the files by hand) when a file cannot be
    fetched; files fetched before that are kept, nothing half-written remains.
    """
    data_dir = resolve_data_dir(data_dir)
    wanted = list(OFFICIAL_FILES) if names is None else list(dict.fromkeys(names))
    for n in wanted:
        if n not in OFFICIAL_FILES:
            raise UserError(f"unknown MNIST file {n!r}; expected one of: {', '.join(OFFICIAL_FILES)}")
    if timeout is None or timeout <= 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {timeout}")
    expected_md5 = {n: OFFICIAL_FILES[n].md5 for n in wanted}
    if expected:
        expected_md5.update({n: str(v).lower() for n, v in expected.items() if n in expected_md5})
    mirror_list = _all_mirrors(mirrors)
    console = console if console is not None else _default_console()
    _prepare_dir(data_dir)

    results: dict[str, FetchResult] = {}
    failures: list[str] = []
    any_mismatch = False
    unreachable: dict[str, str] = {}  # mirror base -> reason, skipped for later files

    with _Reporter(console) as rep:
        for name in wanted:
            final = data_dir / name
            want = expected_md5[name]
            official = OFFICIAL_FILES[name]
            size_hint = official.size if want == official.md5 else None

            if final.is_file() and not force:
                got_md5 = md5_of(final)
                if got_md5 == want:
                    rep.say(f"{name}: already present, MD5 OK, skipped (--force fetches it again)")
                    results[name] = FetchResult(name, final, "present", None, got_md5, True)
                    continue
                if not verify:
                    problem = _idx_problem(final, name)
                    if problem is None:
                        rep.say(f"{name}: already present, MD5 not the official one, accepted (--no-verify), skipped")
                        results[name] = FetchResult(name, final, "present", None, got_md5, False)
                        continue
                    rep.say(f"{name}: present but unreadable ({problem}); fetching it again")
                else:
                    rep.say(f"{name}: present but its MD5 {got_md5} is not {want}; fetching it again")
            elif final.exists() and not final.is_file():
                raise UserError(f"{final} exists but is not a regular file; remove it or pass another --data-dir")

            tried: list[str] = []
            fetched = None
            for i, mirror in enumerate(mirror_list):
                where = mirror.location(name)
                last = i == len(mirror_list) - 1
                if mirror.base in unreachable:
                    tried.append(f"{mirror.text} (skipped: {unreachable[mirror.base]} for an earlier file)")
                    continue
                rep.say(f"{name}: fetching {where}")
                try:
                    fetched = _fetch_one(mirror, name, final, want, verify, rep, timeout, size_hint)
                except _MirrorFailed as failure:
                    rep.done(ok=False)
                    rep.say(f"{name}: {where} failed: {failure.reason}" + ("" if last else "; trying the next mirror"))
                    tried.append(f"{where} ({failure.short})")
                    any_mismatch |= failure.mismatch
                    if failure.unreachable:
                        unreachable[mirror.base] = failure.reason
                    continue
                except _WriteFailed as error:
                    rep.done(ok=False)
                    raise UserError(
                        f"cannot write {final}: {error}; free some space or pass another --data-dir"
                    ) from None
                rep.done(ok=True)
                break
            if fetched is None:
                failures.append(f"{name}: " + ("; ".join(tried) if tried else "no mirror given"))
                continue
            got_md5, nbytes = fetched
            ok = got_md5 == want
            if ok:
                rep.say(f"{name}: {_human(nbytes)}, MD5 OK, saved to {final}")
            else:
                rep.say(
                    f"{name}: {_human(nbytes)}, MD5 {got_md5} is not the official {want}; "
                    f"accepted because of --no-verify, saved to {final}"
                )
            results[name] = FetchResult(name, final, "fetched", where, got_md5, ok)

    if failures:
        hint = (
            " (a mirror holding files other than the official MNIST, e.g. a class sample, needs --no-verify)"
            if any_mismatch and verify
            else ""
        )
        raise UserError(
            f"could not fetch {len(failures)} of {len(wanted)} MNIST file(s) into {data_dir}: tried "
            + " | ".join(failures)
            + f". Nothing half-written was left. Copy the files into {data_dir} by hand ({README_HINT}) "
            f"or add --mirror URL|FOLDER{hint}"
        )
    return results


def _fetch_one(mirror, name, final: Path, want: str, verify: bool, rep, timeout, size_hint):
    """Fetch into a temp file next to ``final``, check it, rename. Returns (md5, bytes)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=final.parent)
    tmp = Path(tmp_name)
    try:
        hasher = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            nbytes = _fetch_to(mirror, name, out, rep, hasher, timeout, size_hint)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as error:
                raise _WriteFailed(str(error)) from None
        got_md5 = hasher.hexdigest()
        if got_md5 != want:
            problem = _idx_problem(tmp, name)
            if problem is not None:  # cut, corrupt or not IDX at all: no flag can accept it
                raise _MirrorFailed(f"not a usable IDX file: {problem}")
            if verify:  # a complete, well-formed IDX file, just not the expected one
                raise _MirrorFailed(f"wrong MD5 {got_md5}, expected {want}", mismatch=True, short="wrong MD5")
        try:
            os.chmod(tmp, 0o644 & ~_umask())
        except OSError:  # pragma: no cover
            pass
        os.replace(tmp, final)
        return got_md5, nbytes
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:  # pragma: no cover
                pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- train/eval


def ensure_mnist(
    data_dir: Union[Path, str, None] = None,
    offline: bool = False,
    console=None,
    mirrors: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    names: Optional[Iterable[str]] = None,
) -> Path:
    """Make sure the files exist in ``data_dir`` before train/eval; return the folder.

    ``names`` limits the check to some files (eval of the test split needs only
    the two test files); by default all four.

    Present files are used as they are (their *structure* is checked when they are
    loaded, not their checksums: users may train on their own IDX files). Missing
    files are downloaded with a line saying so, unless ``offline``, in which case a
    :class:`UserError` names exactly which files are missing and how to get them.
    """
    data_dir = resolve_data_dir(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} is a file, not a folder; pass another --data-dir")
    missing = missing_files(data_dir, names)
    if not missing:
        return data_dir
    where = f"{data_dir}" if data_dir.is_dir() else f"{data_dir} (the folder does not exist)"
    if offline:
        raise UserError(
            f"--offline: missing MNIST file(s) in {where}: {', '.join(missing)}; "
            f"run `cnn download --data-dir {data_dir}` while online, or copy the files there by hand ({README_HINT})"
        )
    console = console if console is not None else _default_console()
    _say(console, f"MNIST file(s) missing in {where}: {', '.join(missing)}; downloading them")
    download_mnist(data_dir, mirrors=mirrors, console=console, names=missing, timeout=timeout)
    return data_dir
