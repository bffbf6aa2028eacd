"""Fetch a dataset's official files, check them and store them atomically.

The transfers go through pooch (cnn_cli/data/fetch.py: temporary file in the
target folder, known MD5, atomic move, retries of cut transfers). This module
decides what to fetch and from where, and how failures are told:

* Mirrors are tried in order (the user's ``--mirror``s first, then the
  dataset's defaults) until one delivers the file with the right MD5; a mirror
  fails over not only on network errors but also on an HTTP error status, a cut
  transfer and a checksum mismatch. A mirror whose host is unreachable is
  skipped for the remaining files.
* Every network operation has a timeout (``timeout`` seconds for the connect
  and for each read, so a stalled server cannot hang the command).
* When every mirror fails, one :class:`UserError` line lists what was tried and
  how to place the files by hand; files fetched before that are kept, nothing
  half-written remains.

Mirrors are ``http(s)://`` URLs, ``file://`` URLs or plain folders.

Testing hook: tests serve small generated files, whose MD5s are not the
official ones. Pass ``expected={name: md5}`` (it overrides the official MD5
for those names; sizes are then taken from the transfer only), or monkeypatch
:data:`OFFICIAL_FILES` (MNIST's table). Tests should also monkeypatch
:data:`DEFAULT_MIRRORS` to ``()`` (and ``registry.DATASETS`` for the other
datasets) so that nothing ever reaches the internet; both are read at call time.

No NumPy or numba at import time; the structure checks import them lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from ..errors import UserError
from . import fetch
from .fetch import DEFAULT_TIMEOUT
from ..spec.datasets import DATASETS, DataFile, DatasetSpec, dataset_dir, file_name  # noqa: F401  (file_name: re-exported)

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
    "download_files",
    "download_dataset",
    "download_mnist",
    "ensure_dataset",
    "ensure_mnist",
]

MnistFile = DataFile  # the name tests and older code use for one official file

OFFICIAL_FILES: dict[str, DataFile] = {f.name: f for f in DATASETS["mnist"].files}
DEFAULT_MIRRORS: tuple[str, ...] = DATASETS["mnist"].mirrors

ENV_DATA_DIR = "CNN_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")
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


def missing_files(data_dir: Union[Path, str], names: Optional[Iterable[str]] = None) -> list[str]:
    """Names (official order) of the MNIST files that are not regular files in ``data_dir``."""
    data_dir = Path(data_dir)
    wanted = list(OFFICIAL_FILES) if names is None else list(names)
    return [n for n in wanted if not (data_dir / n).is_file()]


def md5_of(path: Union[Path, str]) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="md5")


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class _Tables:
    """What to fetch for one dataset, read at call time (tests replace MNIST's)."""

    title: str
    format: str
    files: dict[str, DataFile]
    mirrors: tuple[str, ...]


def _tables(dataset: str) -> _Tables:
    if dataset == "mnist":
        return _Tables("MNIST", "idx", dict(OFFICIAL_FILES), tuple(DEFAULT_MIRRORS))
    spec: DatasetSpec = DATASETS[dataset]
    if not spec.files:
        raise UserError(f"--dataset {dataset}: has no files to download; point data.folder at your images")
    return _Tables(spec.title, spec.format, {f.name: f for f in spec.files}, spec.mirrors)


def _structure_problem(tables: _Tables):
    """A check(path, name) -> None | why-not for files of this dataset's format."""
    def check(path: Path, name: str) -> Optional[str]:
        if tables.format == "cifar":
            from .cifar import cifar_problem

            return cifar_problem(path, name)
        from .idx import read_idx

        kind = tables.files[name].kind if name in tables.files else None
        try:
            read_idx(path, kind=kind if kind in ("images", "labels") else None, name=name)
        except UserError as error:
            return str(error)
        return None

    return check


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


def download_dataset(dataset: str = "mnist", data_dir: Union[Path, str, None] = None, **options) -> dict[str, FetchResult]:
    """Make ``dataset``'s files present and valid under the data folder (MNIST in it, others in
    ``<data folder>/<name>/``). Options as :func:`download_files`."""
    folder = dataset_dir(resolve_data_dir(data_dir), dataset)
    return download_files(_tables(dataset), folder, **options)


def download_mnist(data_dir: Union[Path, str, None] = None, mirrors: Sequence[str] = (), force: bool = False,
                   verify: bool = True, console=None, names: Optional[Iterable[str]] = None,
                   timeout: float = DEFAULT_TIMEOUT,
                   expected: Optional[Mapping[str, str]] = None) -> dict[str, FetchResult]:
    """:func:`download_files` for the MNIST files ``names`` (default: all four) in ``data_dir``."""
    return download_files(_tables("mnist"), resolve_data_dir(data_dir), mirrors=mirrors, force=force,
                          verify=verify, console=console, names=names, timeout=timeout, expected=expected)


def download_files(tables: _Tables, data_dir: Path, mirrors: Sequence[str] = (), force: bool = False,
                   verify: bool = True, console=None, names: Optional[Iterable[str]] = None,
                   timeout: float = DEFAULT_TIMEOUT,
                   expected: Optional[Mapping[str, str]] = None) -> dict[str, FetchResult]:
    """Make the files ``names`` (default: all) of one dataset present and valid in ``data_dir``.

    ``mirrors`` are tried first, then the dataset's defaults. A file already present
    with the right MD5 is skipped unless ``force``. ``verify=False`` accepts files
    whose MD5 differs from the official one (a class sample, another digit set) as
    long as they are complete and well-formed, and says so. ``expected``
    overrides the expected MD5 per name (tests use it for generated files).

    Returns ``{name: FetchResult}``. Raises :class:`UserError` (one line listing
    every mirror tried and how to place the files by hand) when a file cannot be
    fetched; files fetched before that are kept, nothing half-written remains.
    """
    files = tables.files
    wanted = list(files) if names is None else list(dict.fromkeys(names))
    for n in wanted:
        if n not in files:
            raise UserError(f"unknown {tables.title} file {n!r}; expected one of: {', '.join(files)}")
    if timeout is None or timeout <= 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {timeout}")
    expected_md5 = {n: files[n].md5 for n in wanted}
    if expected:
        expected_md5.update({n: str(v).lower() for n, v in expected.items() if n in expected_md5})
    mirror_list = fetch.all_mirrors(mirrors, tables.mirrors, files)
    console = console if console is not None else fetch.default_console()
    problem = _structure_problem(tables)
    _prepare_dir(data_dir)

    results: dict[str, FetchResult] = {}
    failures: list[str] = []
    any_mismatch = False
    unreachable: dict[str, str] = {}  # mirror base -> reason, skipped for later files

    with fetch.Reporter(console) as rep:
        for name in wanted:
            final = data_dir / name
            want = expected_md5[name]
            present = _present(final, name, want, force, verify, rep, problem)
            if present is not None:
                results[name] = present
                continue
            size_hint = files[name].size if want == files[name].md5 else None
            fetched, where, tried, mismatch = _from_mirrors(mirror_list, unreachable, name, final, want, verify, rep,
                                                            timeout, size_hint, problem)
            any_mismatch |= mismatch
            if fetched is None:
                failures.append(f"{name}: " + ("; ".join(tried) if tried else "no mirror given"))
                continue
            got_md5, nbytes = fetched
            ok = got_md5 == want
            if ok:
                rep.say(f"{name}: {fetch.human(nbytes)}, MD5 OK, saved to {final}")
            else:
                rep.say(f"{name}: {fetch.human(nbytes)}, MD5 {got_md5} is not the official {want}; "
                        f"accepted because of --no-verify, saved to {final}")
            results[name] = FetchResult(name, final, "fetched", where, got_md5, ok)

    if failures:
        hint = (f" (a mirror holding files other than the official {tables.title}, e.g. a class sample, "
                f"needs --no-verify)" if any_mismatch and verify else "")
        raise UserError(
            f"could not fetch {len(failures)} of {len(wanted)} {tables.title} file(s) into {data_dir}: tried "
            + " | ".join(failures)
            + f". Nothing half-written was left. Copy the files into {data_dir} by hand ({README_HINT}) "
            f"or add --mirror URL|FOLDER{hint}"
        )
    return results


def _from_mirrors(mirror_list, unreachable: dict, name: str, final: Path, want: str, verify: bool, rep, timeout,
                  size_hint, problem):
    """Try each mirror in turn for one file: ((md5, bytes) or None, where from, what was tried, any MD5 mismatch).
    A mirror whose host is unreachable goes into ``unreachable`` and is skipped for the later files."""
    tried: list[str] = []
    mismatch = False
    for i, mirror in enumerate(mirror_list):
        where = mirror.location(name)
        last = i == len(mirror_list) - 1
        if mirror.base in unreachable:
            tried.append(f"{mirror.text} (skipped: {unreachable[mirror.base]} for an earlier file)")
            continue
        rep.say(f"{name}: fetching {where}")
        try:
            fetched = fetch.fetch_one(mirror, name, final, want, verify, rep, timeout, size_hint, problem)
        except fetch.MirrorFailed as failure:
            rep.done(ok=False)
            rep.say(f"{name}: {where} failed: {failure.reason}" + ("" if last else "; trying the next mirror"))
            tried.append(f"{where} ({failure.short})")
            mismatch |= failure.mismatch
            if failure.unreachable:
                unreachable[mirror.base] = failure.reason
            continue
        except fetch.WriteFailed as error:
            rep.done(ok=False)
            raise UserError(f"cannot write {final}: {error}; free some space or pass another --data-dir") from None
        rep.done(ok=True)
        return fetched, where, tried, mismatch
    return None, None, tried, mismatch


def _present(final: Path, name: str, want: str, force: bool, verify: bool, rep, problem) -> Optional[FetchResult]:
    """The result for a file already in place that needs no fetching, else None (saying why it is fetched)."""
    if final.exists() and not final.is_file():
        raise UserError(f"{final} exists but is not a regular file; remove it or pass another --data-dir")
    if not final.is_file() or force:
        return None
    got_md5 = md5_of(final)
    if got_md5 == want:
        rep.say(f"{name}: already present, MD5 OK, skipped (--force fetches it again)")
        return FetchResult(name, final, "present", None, got_md5, True)
    if not verify:
        bad = problem(final, name)
        if bad is None:
            rep.say(f"{name}: already present, MD5 not the official one, accepted (--no-verify), skipped")
            return FetchResult(name, final, "present", None, got_md5, False)
        rep.say(f"{name}: present but unreadable ({bad}); fetching it again")
    else:
        rep.say(f"{name}: present but its MD5 {got_md5} is not {want}; fetching it again")
    return None


# --------------------------------------------------------------------------- train/eval


def ensure_mnist(data_dir: Union[Path, str, None] = None, offline: bool = False, console=None,
                 mirrors: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT,
                 names: Optional[Iterable[str]] = None) -> Path:
    """:func:`ensure_dataset` for MNIST, whose files sit directly in ``data_dir``."""
    return _ensure(_tables("mnist"), resolve_data_dir(data_dir), offline, console, mirrors, timeout, names, "")


def ensure_dataset(dataset: str, data_root: Union[Path, str, None] = None, offline: bool = False, console=None,
                   names: Optional[Iterable[str]] = None) -> Path:
    """Make sure a built-in dataset's files exist before train/eval; return their folder.

    ``names`` limits the check to some files (eval of the test split needs only
    the two test files); by default all. Present files are used as they are
    (their *structure* is checked when they are loaded, not their checksums:
    users may train on their own files). Missing files are downloaded with a
    line saying so, unless ``offline``, in which case a :class:`UserError` names
    exactly which files are missing and how to get them.
    """
    root = resolve_data_dir(data_root)
    flag = "" if dataset == "mnist" else f" --dataset {dataset}"
    return _ensure(_tables(dataset), dataset_dir(root, dataset), offline, console, (), DEFAULT_TIMEOUT, names, flag,
                   root)


def _ensure(tables: _Tables, data_dir: Path, offline: bool, console, mirrors, timeout, names, flag: str,
            root: Optional[Path] = None) -> Path:
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} is a file, not a folder; pass another --data-dir")
    wanted = list(tables.files) if names is None else list(names)
    missing = [n for n in wanted if not (data_dir / n).is_file()]
    if not missing:
        return data_dir
    where = f"{data_dir}" if data_dir.is_dir() else f"{data_dir} (the folder does not exist)"
    if offline:
        raise UserError(
            f"--offline: missing {tables.title} file(s) in {where}: {', '.join(missing)}; "
            f"run `cnn download{flag} --data-dir {root or data_dir}` while online, or copy the files there by hand "
            f"({README_HINT})"
        )
    console = console if console is not None else fetch.default_console()
    fetch.say(console, f"{tables.title} file(s) missing in {where}: {', '.join(missing)}; downloading them")
    download_files(tables, data_dir, mirrors=mirrors, console=console, names=missing, timeout=timeout)
    return data_dir
