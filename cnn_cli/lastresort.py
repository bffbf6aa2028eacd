"""The net under every command: what reaches the CLI uncaught still becomes one line.

Specific checks (limits.py, the readers) come first and say exactly what is
wrong; this only catches what slipped past them. OSError, MemoryError,
RecursionError and UnicodeError are the machine or the input refusing —
one line naming what the command was doing, exit 2. Anything else is a bug in
cnn-cli: one line saying so, the traceback in a log file, never on screen.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Iterator, Optional

from .limits import ESCAPE_ERRORS, check_path, safe_text, short_repr

BUG_EXIT = 70  # EX_SOFTWARE (sysexits.h): an internal error, not the user's input
_doing: list[str] = []  # what the command is doing now, innermost last
_log_dir: list[Path] = []  # where a crash log goes (the run folder once there is one)


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Name the current step, for the one line an unexpected failure prints."""
    _doing.append(what)
    try:
        yield
    finally:
        _doing.pop()


def set_log_dir(folder: Optional[Path]) -> None:
    _log_dir.clear()
    if folder is not None:
        _log_dir.append(Path(folder))


def current_run_dir() -> Optional[Path]:
    return _log_dir[0] if _log_dir else None


def check_path_arguments(kwargs: dict) -> None:
    """Every path-like argument must be able to name a file here (component and path lengths, NUL)."""
    labels = _parameter_labels()
    for key, value in kwargs.items():
        option = labels.get(key, "--" + key.rstrip("_").replace("_", "-"))
        for item in value if isinstance(value, (list, tuple)) else [value]:
            # Path-typed options, and CONFIG (a shipped name or a path); never free text such as --set.
            if isinstance(item, os.PathLike) or (key == "config" and isinstance(item, str)):
                check_path(item, option)


def _parameter_labels() -> dict:
    """Parameter name → how the user wrote it (--run-dir, CONFIG), from the running click command."""
    import typer

    # Typer may vendor its own click: reach its globals through a public Typer class.
    click_root = typer.BadParameter.__mro__[1].__module__.rsplit(".", 1)[0]
    try:
        command = sys.modules[click_root + ".globals"].get_current_context().command
    except (KeyError, RuntimeError, AttributeError):
        return {}
    labels = {}
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument":
            labels[param.name] = param.name.upper()
        elif param.opts:
            labels[param.name] = max(param.opts, key=len)
    return labels


def _activity(command: str, error: BaseException) -> str:
    """What the command was doing: the step named with doing(), else the innermost cnn-cli function."""
    where = ""
    for frame, _ in traceback.walk_tb(error.__traceback__):
        module = frame.f_globals.get("__name__", "")
        if module.startswith("cnn_cli.") and not module.startswith("cnn_cli.cli") and module != __name__:
            where = f"{module[len('cnn_cli.'):]}.{frame.f_code.co_name}"
    step = _doing[-1] if _doing else f"running {command}"
    return f"{step} (in {where})" if where else step


def describe_failure(command: str, error: BaseException) -> str:
    """One line for an OSError/MemoryError/RecursionError/UnicodeError that no specific check caught."""
    what = _activity(command, error)
    if isinstance(error, MemoryError):
        why = "out of memory"
        fix = "use a smaller batch, network or input, or free some memory"
    elif isinstance(error, RecursionError):
        why = "input nested too deeply"
        fix = "check the files this command reads"
    elif isinstance(error, UnicodeError):
        why = f"text that is not valid here ({type(error).__name__}: {short_repr(str(error), 80)[1:-1]})"
        fix = "use UTF-8 files and names, or set PYTHONIOENCODING=utf-8"
    else:
        name = getattr(error, "filename", None)
        where = f" {safe_text(name)[:200]}" if name else ""
        why = f"{error.strerror or type(error).__name__}{where}" if isinstance(error, OSError) else str(error)
        fix = "check the path, the permissions and the free space"
    return f"{command}: failed while {what}: {why}; {fix}"


def report_bug(command: str, error: BaseException) -> str:
    """Write the traceback to a log file; return the one line to print."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = None
    folders = [*_log_dir, Path(tempfile.gettempdir())]
    for folder in folders:
        try:
            candidate = folder / f"cnn-crash-{stamp}-{os.getpid()}.log"
            with open(candidate, "x", encoding="utf-8", errors="backslashreplace") as handle:
                handle.write(f"cnn-cli crash in `{command}` at {stamp}\nargv: {sys.argv!r}\n\n{text}")
            log = candidate
            break
        except OSError:
            continue
    where = f"the traceback is in {safe_text(log)}" if log else "the traceback could not be written anywhere"
    what = _activity(command, error)
    return (f"{command}: this is a bug in cnn-cli ({type(error).__name__} while {what}: "
            f"{short_repr(str(error), 100)[1:-1]}); {where} — please report it")


def make_output_safe() -> None:
    """Undecodable file names (non-UTF-8 bytes) print as \\x escapes instead of failing mid-run."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors=ESCAPE_ERRORS)
            except (ValueError, OSError):
                pass
