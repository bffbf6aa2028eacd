"""One file from one mirror, through pooch, with Rich progress and one-line reasons.

pooch does the parts every downloader must get right: the file is streamed to a
temporary file in the target folder, its hash is checked against the known MD5,
and only then is it moved onto its final name (a half or wrong file never
carries it; the temporary file goes on every failure, Ctrl-C included); a
transfer cut by the network is retried (``RETRIES`` times). What stays ours:
mirrors that are folders or ``file://`` URLs (pooch speaks HTTP/FTP only), the
short reason for each failure ("HTTP 404 Not Found", "connection refused",
"transfer cut after 5 of 10 bytes", "wrong MD5"), fsync before the rename, and
the structure check that tells a corrupt payload from a well-formed file that is
just not the official one (``--no-verify`` accepts only the latter).
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..errors import UserError

DEFAULT_TIMEOUT = 30.0  # seconds, for the connect and for each read
CHUNK = 64 * 1024
RETRIES = 1  # extra attempts of a transfer the network cut; read at call time (tests set 0)
USER_AGENT = "cnn-cli (dataset downloader; pooch)"


# --------------------------------------------------------------------------- console


def default_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def say(console, message: str) -> None:
    # soft_wrap: never wrap at the console width, so output does not depend on it.
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def human(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n}"  # pragma: no cover


class Reporter:
    """Progress bars on a terminal; short plain lines otherwise (pipes, logs, tests)."""

    def __init__(self, console):
        self.console = console
        self.progress = None
        self.task = None
        if getattr(console, "is_terminal", False):
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False)

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def say(self, message: str) -> None:
        say(self.progress.console if self.progress is not None else self.console, message)

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


class _PoochBar:
    """The progress-bar object pooch's HTTPDownloader drives (total, update, reset, close), drawn by Rich."""

    def __init__(self, reporter: Reporter, name: str, size_hint: Optional[int]):
        self.reporter, self.name, self.size_hint = reporter, name, size_hint
        self._total = None

    @property
    def total(self):
        return self._total

    @total.setter
    def total(self, value):  # pooch sets it from Content-Length (0 when absent)
        self._total = int(value) if value else None
        self.reporter.start(self.name, self._total or self.size_hint)

    def update(self, n):
        self.reporter.advance(n)

    def reset(self):
        if self.reporter.progress is not None and self.reporter.task is not None:
            self.reporter.progress.reset(self.reporter.task, total=self._total)

    def close(self):
        pass


# --------------------------------------------------------------------------- mirrors


@dataclass(frozen=True)
class Mirror:
    text: str  # as given, for messages
    kind: str  # "http" | "file"
    base: str  # URL ending in "/" (http) or a folder path (file)

    def location(self, name: str) -> str:
        if self.kind == "http":
            return self.base + urllib.parse.quote(name)
        return str(Path(self.base) / name)


def parse_mirror(text: str, names: Iterable[str] = ()) -> Mirror:
    """An http(s):// URL, a file:// URL or a folder; a URL or path of one of ``names`` means its folder."""
    text = str(text).strip()
    if not text:
        raise UserError("--mirror: empty value; give an http(s):// URL, a file:// URL or a folder")
    names = tuple(names)
    if "://" in text:
        for name in names:
            if text.endswith("/" + name):
                text = text[: -len(name)]
        parts = urllib.parse.urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.netloc:
                raise UserError(f"--mirror {text}: the URL has no host; write it like https://host/path/")
            return Mirror(text, "http", text if text.endswith("/") else text + "/")
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise UserError(f"--mirror {text}: file:// URLs must name a local path, like file:///home/me/mnist/")
            return Mirror(text, "file", urllib.request.url2pathname(parts.path))
        raise UserError(f"--mirror {text}: unsupported scheme {parts.scheme!r}; use http(s)://, file:// or a plain folder")
    folder = Path(text).expanduser()
    if folder.name in names and not folder.is_dir():  # a path of one of the files
        folder = folder.parent
    return Mirror(text, "file", str(folder))


def all_mirrors(user_mirrors: Iterable[str], defaults: Iterable[str], names: Iterable[str] = ()) -> list[Mirror]:
    """The user's mirrors first, then the defaults, each once."""
    mirrors: list[Mirror] = []
    seen: set[str] = set()
    names = tuple(names)
    for text in list(user_mirrors) + list(defaults):
        m = parse_mirror(text, names)
        if m.base not in seen:
            seen.add(m.base)
            mirrors.append(m)
    return mirrors


class MirrorFailed(Exception):
    """This mirror could not deliver this file; try the next one."""

    def __init__(self, reason: str, unreachable: bool = False, mismatch: bool = False, short: Optional[str] = None):
        super().__init__(reason)
        self.reason = reason
        self.short = short or reason  # for the final summary line
        self.unreachable = unreachable  # host down: skip it for the remaining files
        self.mismatch = mismatch  # delivered a complete, well-formed file with another checksum


class WriteFailed(Exception):
    """Writing into the data folder failed (disk full, permissions): no mirror can help."""


# --------------------------------------------------------------------------- failure reasons


def _chain(error: BaseException):
    seen = []
    stack = [error]
    while stack:
        e = stack.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        stack += [getattr(e, "reason", None) if isinstance(getattr(e, "reason", None), BaseException) else None,
                  e.__cause__, e.__context__]
    return seen


def network_failure(error: BaseException, timeout: float, got: int, total: Optional[int]) -> MirrorFailed:
    """A requests/urllib3 exception as a MirrorFailed with a few words ("connection refused", ...)."""
    import requests

    if isinstance(error, requests.exceptions.HTTPError) and error.response is not None:
        return MirrorFailed(f"HTTP {error.response.status_code} {error.response.reason or ''}".strip())
    chain = _chain(error)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if isinstance(error, requests.exceptions.ConnectTimeout) or "ConnectTimeoutError" in names:
        return MirrorFailed(f"timed out after {timeout:g} s", unreachable=True)
    if names & {"ReadTimeoutError", "ReadTimeout", "TimeoutError", "timeout"} or "timed out" in text:
        return MirrorFailed(f"timed out after {timeout:g} s after {got:,} bytes" if got else f"timed out after {timeout:g} s")
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return MirrorFailed("connection refused", unreachable=True)
    if any(isinstance(e, socket.gaierror) for e in chain) or "NameResolutionError" in names:
        return MirrorFailed("host not found, no network?", unreachable=True)
    if total and got < total:
        return MirrorFailed(f"transfer cut after {got:,} of {total:,} bytes")
    if isinstance(error, requests.exceptions.ConnectionError) and got == 0 and not (
            names & {"ProtocolError", "IncompleteRead", "ChunkedEncodingError"}):
        return MirrorFailed(str(error).splitlines()[0][:120] or "connection failed", unreachable=True)
    return MirrorFailed(f"connection closed by the server after {got:,} bytes")


class _Retry(Exception):
    """Raised inside pooch's download loop for a transfer worth another attempt."""


# --------------------------------------------------------------------------- downloaders


def copy_stream(src, dst, reporter: Reporter) -> int:
    got = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            return got
        try:
            dst.write(chunk)
        except OSError as error:
            raise WriteFailed(str(error)) from None
        got += len(chunk)
        reporter.advance(len(chunk))


def _from_folder(mirror: Mirror, name: str, out, reporter: Reporter) -> None:
    if not Path(mirror.base).is_dir():
        raise MirrorFailed("folder does not exist", unreachable=True)
    try:
        src = open(mirror.location(name), "rb")
    except FileNotFoundError:
        raise MirrorFailed("file not found") from None
    except OSError as error:
        raise MirrorFailed(error.strerror or str(error)) from None
    with src:
        reporter.start(name, os.fstat(src.fileno()).st_size)
        copy_stream(src, out, reporter)


def _from_http(mirror: Mirror, name: str, out, reporter: Reporter, timeout: float, size_hint) -> None:
    import pooch
    import requests

    bar = _PoochBar(reporter, name, size_hint)
    # identity: a server must not gzip the .gz again (requests would undo one layer and the MD5 would differ).
    http = pooch.HTTPDownloader(progressbar=bar, chunk_size=CHUNK, timeout=timeout,
                                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    try:
        http(mirror.location(name), out, None)
    except requests.exceptions.RequestException as error:
        failure = network_failure(error, timeout, out.tell(), bar.total)
        if "cut" in failure.reason or "closed by the server" in failure.reason:
            raise _Retry(failure) from None
        raise failure from None
    except OSError as error:
        raise WriteFailed(str(error)) from None
    got = out.tell()
    if bar.total and got != bar.total:
        raise _Retry(MirrorFailed(f"transfer cut after {got:,} of {bar.total:,} bytes"))


def fetch_one(mirror: Mirror, name: str, final: Path, want: str, verify: bool, reporter: Reporter,
              timeout: float, size_hint: Optional[int], problem: Callable[[Path, str], Optional[str]]) -> tuple[str, int]:
    """Fetch ``name`` onto ``final`` through pooch; returns (md5, bytes). Raises MirrorFailed or WriteFailed."""
    import pooch
    import pooch.core
    import requests

    pooch.get_logger().setLevel("WARNING")  # our lines say what happens; pooch's INFO lines would repeat it
    got = {}

    def download(url, tmp, _pooch):  # pooch's downloader protocol; tmp is its temporary file
        with open(tmp, "wb") as out:
            if mirror.kind == "file":
                _from_folder(mirror, name, out, reporter)
            else:
                _from_http(mirror, name, out, reporter, timeout, size_hint)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as error:
                raise WriteFailed(str(error)) from None
        got_md5 = got["md5"] = pooch.file_hash(tmp, alg="md5")
        if got_md5 != want:
            bad = problem(Path(tmp), name)
            if bad is not None:  # cut, corrupt or another format: no flag can accept it
                raise MirrorFailed(f"not a usable {_what(name)}: {bad}")
            if verify:  # complete and well-formed, just not the expected file: retrying cannot help
                raise MirrorFailed(f"wrong MD5 {got_md5}, expected {want}", mismatch=True, short="wrong MD5")

    class _AsRequestError(requests.exceptions.RequestException):
        pass

    def retrying(url, tmp, _pooch):
        try:
            download(url, tmp, _pooch)
        except _Retry as retry:  # pooch retries RequestExceptions
            raise _AsRequestError(retry.args[0]) from None

    known = f"md5:{want}" if verify else None
    try:
        pooch.core.stream_download(mirror.location(name), final, known, retrying, pooch=None,
                                   retry_if_failed=RETRIES)
    except _AsRequestError as error:
        raise error.args[0] from None
    except ValueError as error:  # pooch's own hash gate; our check above normally speaks first
        raise MirrorFailed(str(error).splitlines()[0], mismatch=True, short="wrong MD5") from None
    try:
        os.chmod(final, 0o644 & ~_umask())  # pooch's temporary file was 0600
    except OSError:  # pragma: no cover
        pass
    return got["md5"], final.stat().st_size


def _what(name: str) -> str:
    return "archive" if name.endswith((".tar.gz", ".tgz")) else "IDX file"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
