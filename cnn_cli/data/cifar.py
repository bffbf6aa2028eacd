"""CIFAR-10's binary version, read with NumPy straight from cifar-10-binary.tar.gz.

The archive holds cifar-10-batches-bin/data_batch_1.bin … data_batch_5.bin (the
training split) and test_batch.bin. Each record is 3,073 bytes: one label byte
(0-9), then 1,024 red, 1,024 green and 1,024 blue bytes of a 32×32 image, row
by row. Only those six members are read (never extracted, never unpickled).
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from ..errors import UserError

__all__ = ["RECORD", "MEMBERS", "read_cifar10", "cifar_problem"]

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE
FOLDER = "cifar-10-batches-bin"
MEMBERS = {
    "train": tuple(f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6)),
    "test": (f"{FOLDER}/test_batch.bin",),
}
_REFETCH = "fetch it again (`cnn download --dataset cifar10 --force`) or replace it"


def _records(raw: bytes, member: str, display: str) -> Tuple[np.ndarray, np.ndarray]:
    if len(raw) == 0 or len(raw) % RECORD:
        raise UserError(f"{display}: {member} holds {len(raw):,} bytes, not a whole number of {RECORD:,}-byte "
                        f"records; the archive is truncated or not CIFAR-10's binary version, {_REFETCH}")
    table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    labels = table[:, 0].astype(np.int64)
    if labels.size and int(labels.max()) > 9:
        i = int(np.flatnonzero(labels > 9)[0])
        raise UserError(f"{display}: {member} record {i:,} has label {int(labels[i])}, outside 0–9; "
                        f"is this CIFAR-100? cnn reads CIFAR-10's binary version")
    return table[:, 1:].reshape(-1, 3, SIDE, SIDE), labels


def read_cifar10(path: Union[Path, str], split: str, *, name: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, 32, 32) and int64 labels (N,) of ``split`` from the archive."""
    path = Path(path)
    display = name or str(path)
    if split not in MEMBERS:
        raise UserError(f"split must be 'train' or 'test', not {split!r}")
    try:
        with tarfile.open(path, "r:gz") as archive:
            infos = [_member(archive, member, display) for member in MEMBERS[split]]
            # One array for the whole split, filled member by member: the 50,000
            # training images never exist twice in memory.
            total = sum(info.size // RECORD for info in infos)
            images = np.empty((total, 3, SIDE, SIDE), dtype=np.uint8)
            labels = np.empty(total, dtype=np.int64)
            start = 0
            for info in infos:
                x, y = _records(archive.extractfile(info).read(), info.name, display)
                images[start:start + len(y)] = x
                labels[start:start + len(y)] = y
                start += len(y)
    except FileNotFoundError:
        raise UserError(f"{display}: file not found; run `cnn download --dataset cifar10` "
                        f"or copy cifar-10-binary.tar.gz there") from None
    except IsADirectoryError:
        raise UserError(f"{display}: is a folder, not cifar-10-binary.tar.gz") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{display}: not a readable tar.gz archive ({why}); the file is truncated or "
                        f"corrupt, {_REFETCH}") from None
    return images, labels


def _member(archive: tarfile.TarFile, member: str, display: str) -> tarfile.TarInfo:
    try:
        info = archive.getmember(member)
    except KeyError:
        raise UserError(f"{display}: no {member} inside; this is not CIFAR-10's binary version "
                        f"(cifar-10-binary.tar.gz), {_REFETCH}") from None
    if not info.isfile():
        raise UserError(f"{display}: {member} is not a regular file inside the archive; {_REFETCH}")
    return info


def cifar_problem(path: Union[Path, str], name: str) -> Optional[str]:
    """None when ``path`` is a readable CIFAR-10 binary archive, else why not (for the downloader)."""
    try:
        for split in MEMBERS:
            read_cifar10(path, split, name=name)
    except UserError as error:
        return str(error)
    return None
