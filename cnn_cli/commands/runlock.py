"""One training process per run folder: a lock file, and the leftovers of killed runs.

Two `cnn train` writing one folder would mix their checkpoints (last.npz from
one, best.npz from the other), so a run holds `RUN_DIR/.lock` — created with
O_CREAT|O_EXCL, holding the owner's pid, host and start time — for as long as
it writes there. A lock whose process is gone (a SIGKILL leaves one behind) is
taken over; a live one makes the second run refuse in one line naming it.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..limits import short_repr

LOCK_NAME = ".lock"
# write_atomically's temp names: ".<target>.<random>.tmp"
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> "RunLock":
        """Take the lock, or raise UserError naming the live process that holds it."""
        for _ in range(3):  # a stale lock removed by someone else between our tries: try again
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = read_owner(self.path)
                if owner is not None and _alive(owner):
                    raise UserError(
                        f"{self.path.parent}: another cnn train (pid {owner.get('pid')} on {owner.get('host')}, "
                        f"started {owner.get('started')}) is writing this run folder; wait for it to finish or "
                        f"choose another --run-dir") from None
                _remove_stale(self.path, owner)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "ticks": _start_ticks(os.getpid()),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S")}, handle)
            self.held = True
            atexit.register(self.release)  # any normal exit, even one we did not foresee
            return self
        raise UserError(f"{self.path}: cannot take the run folder's lock (it keeps reappearing); "
                        f"make sure no other cnn train uses {self.path.parent}")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = read_owner(self.path)
        if owner is not None and owner.get("pid") == os.getpid():
            try:
                self.path.unlink()
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def read_owner(path: Path) -> Optional[dict]:
    """The lock's contents, or None when it is unreadable (half-written by a killed process)."""
    try:
        with open(path, "rb") as handle:
            owner = json.loads(handle.read(4096).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or isinstance(owner.get("pid"), bool):
        return None
    owner["host"] = short_repr(owner.get("host"), 64).strip("'\"")
    owner["started"] = short_repr(owner.get("started"), 32).strip("'\"")
    return owner


def _alive(owner: dict) -> bool:
    """Whether the lock's process still runs; a lock from another host is assumed alive (we cannot tell)."""
    if owner.get("host") != socket.gethostname():
        return True
    pid = owner["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    # A reused pid: the process running now started at another time than the lock's owner.
    ticks = owner.get("ticks")
    return not (isinstance(ticks, int) and _start_ticks(pid) not in (None, ticks))


def _start_ticks(pid: int) -> Optional[int]:
    """When a process started (clock ticks since boot, /proc/PID/stat field 22); None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _remove_stale(path: Path, owner: Optional[dict]) -> None:
    """Remove a dead process's lock; only when it still is the same file we judged (no racing a new owner)."""
    try:
        if owner is None:
            # Unreadable: give a process that is writing it right now a moment, then judge again.
            age = time.time() - path.stat().st_mtime
            if age < 2.0:
                time.sleep(2.0 - age)
                if read_owner(path) is not None:
                    return
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        if error.errno not in (errno.ENOENT,):
            raise UserError(f"{path}: a stale lock from a finished run cannot be removed ({error.strerror}); "
                            f"delete it by hand") from None


def stale_temp_files(run_dir: Path) -> list[Path]:
    """Temp files of interrupted atomic writes (checkpoints, metrics) left in a run folder."""
    try:
        return [p for p in Path(run_dir).iterdir()
                if p.name.startswith(TEMP_PREFIX) and p.name.endswith(TEMP_SUFFIX) and p.is_file()]
    except OSError:
        return []


def remove_stale_temp_files(run_dir: Path) -> int:
    """Delete them; only safe while holding the folder's lock (no live writer can own one)."""
    removed = 0
    for path in stale_temp_files(run_dir):
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed
