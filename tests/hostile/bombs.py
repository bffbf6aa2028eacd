"""Builders of decompression bombs that cost little to make: repeated compressed blocks, never the
inflated bytes themselves (a gigabyte of zeros would take seconds to compress)."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np

CHUNK = 16 << 20  # 16 MiB of zeros per repeated block


def gzip_zeros(prefix: bytes, total: int) -> bytes:
    """A multi-member gzip stream: `prefix`, then `total` zero bytes (rounded up to 16 MiB)."""
    member = gzip.compress(b"\0" * CHUNK, compresslevel=9)
    return gzip.compress(prefix) + member * -(-total // CHUNK)


def deflate_zeros(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of `prefix` + `zeros` zero bytes (a multiple of 16 MiB), built by
    repeating one fully flushed block: after Z_FULL_FLUSH each block stands alone."""
    assert zeros % CHUNK == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(b"\0" * CHUNK) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(b"\0" * CHUNK) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert again == block, "a fully flushed block must not depend on what came before"
    return head + block * (zeros // CHUNK) + compressor.flush(zlib.Z_FINISH)


def npy_header(shape, dtype="<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip written by hand: (name, data, method 0|8, crc, uncompressed size) per member. The sizes
    are whatever we claim — which is the point of a bomb."""
    out = bytearray()
    central = bytearray()
    for name, data, method, crc, size in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size,
                           len(encoded), 0) + encoded + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), start, 0)
    Path(path).write_bytes(bytes(out))
    return Path(path)


def npz_with_bomb(path: Path, checkpoint: Path, key: str, zeros: int) -> Path:
    """The checkpoint's members stored as they are, plus `key` replaced by a deflate bomb whose
    directory entry and .npy header both (consistently) claim `zeros` bytes of float32."""
    import zipfile

    members = []
    with zipfile.ZipFile(checkpoint) as source:
        for info in source.infolist():
            if info.filename == key + ".npy":
                continue
            data = source.read(info)
            members.append((info.filename, data, 0, zlib.crc32(data), len(data)))
    header = npy_header((zeros // 4,))
    # CRC 0: it is only checked once the whole member was read — which is what must never happen.
    members.append((key + ".npy", deflate_zeros(header, zeros), 8, 0, len(header) + zeros))
    return write_zip(path, members)


def big_png(width: int, height: int) -> bytes:
    """A valid black grayscale PNG of width×height; its rows compress to almost nothing."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    rows_per_piece = max(1, CHUNK // len(row))
    piece = row * rows_per_piece
    body = bytearray()
    left = height
    while left:
        n = min(left, rows_per_piece)
        body += compressor.compress(piece if n == rows_per_piece else row * n)
        left -= n
    body += compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(body)) + chunk(b"IEND", b"")
