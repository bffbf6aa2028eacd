"""The run folder a training writes: may this run use it, and taking it (lock, leftovers).

A folder is usable when it is new or empty, when a run killed before its first
checkpoint left only config.yaml (plus its lock and temp files) — refusing it
would strand the user — or, resuming, when it is the checkpoint's own folder.
Another live run's lock is refused in every case (runlock.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..io import write_text_atomically
from .runlock import LOCK_NAME, RunLock, read_owner, remove_stale_temp_files, stale_temp_files


def take_run_dir(run_dir: Path, resuming: bool):
    """Lock the folder, check it again (a run that just finished may have filled it), clear dead runs' temp files."""
    lock = RunLock(run_dir).acquire()
    try:
        check_run_dir(run_dir, resuming)
        remove_stale_temp_files(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def _remove_if_empty(run_dir: Path) -> None:
    try:
        run_dir.rmdir()
    except OSError:
        pass


# What a run killed before its first checkpoint leaves: such a folder may be reused.
REUSABLE_LEFTOVERS = ("config.yaml",)


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """A new or empty folder, one a run left before its first checkpoint, or (resuming=True) the
    folder of the checkpoint being resumed. Another live run's lock is refused in either case."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir {run_dir}: is a file, not a folder; choose another --run-dir")
    if not run_dir.is_dir():
        return
    lock = run_dir / LOCK_NAME
    owner = read_owner(lock) if lock.exists() else None
    if owner is not None and owner.get("pid") != os.getpid():
        RunLock(run_dir).acquire().release()  # refuses in one line when that process still runs
    if resuming:
        return
    leftovers = {LOCK_NAME, *REUSABLE_LEFTOVERS} | {p.name for p in stale_temp_files(run_dir)}
    if any(entry.name not in leftovers for entry in run_dir.iterdir()):
        # A kill between the first epoch's two saves leaves best.npz alone; it holds a full state too.
        latest = run_dir / "last.npz" if (run_dir / "last.npz").exists() or not (run_dir / "best.npz").exists() \
            else run_dir / "best.npz"
        raise UserError(f"--run-dir {run_dir}: already holds files; choose an empty or new folder, or continue "
                        f"that run with --resume {latest}")


# The columns of metrics.csv, one row per epoch.
METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")
TEST_FIELDS = ("test_loss", "test_acc")  # train.track_test only


def choose_run_dir(config, run_dir: Optional[Path]) -> Path:
    """--run-dir, else runs/<config name>, numbered when that exists."""
    if run_dir is not None:
        return Path(run_dir)
    base = Path("runs") / config.name
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{config.name}-{n}")
    return candidate


def write_metrics(path: Path, history: list[dict]) -> None:
    """metrics.csv: one row per epoch (test columns only when the run tracks the test set)."""
    fields = METRIC_FIELDS + (TEST_FIELDS if any("test_acc" in row for row in history) else ())
    lines = [",".join(fields)]
    for row in history:
        lines.append(",".join("" if row.get(k) is None else repr(row[k]) for k in fields))
    write_text_atomically(path, "\n".join(lines) + "\n")
