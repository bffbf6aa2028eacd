"""Hostile files and paths: IDX files that lie, PNGs that explode, names the file system refuses."""

from __future__ import annotations

import gzip
import shutil
import struct
import zlib

import numpy as np
import pytest

from hostile_kit import assert_nothing_new, cli, refuses, snapshot
from idx_fixtures import NAMES, TEST_IMAGES, TEST_LABELS, idx_bytes

IMAGES = idx_bytes(2051, np.zeros((60, 28, 28), np.uint8))
LABELS = idx_bytes(2049, np.arange(60, dtype=np.uint8) % 10)

IDX_DAMAGE = {
    "empty": b"",
    "three-bytes": IMAGES[:3],
    "header-cut": IMAGES[:10],
    "payload-cut": IMAGES[:-5],
    "extra-bytes": IMAGES + b"\0" * 7,
    "labels-magic": LABELS,
    "html": b"<html>404</html>",
    "ndim-zero": struct.pack(">I", 0x00000800),
    "ndim-255": struct.pack(">I", 0x000008FF) + b"\0" * 40,
    "claims-4e9-images": struct.pack(">IIII", 2051, 4_000_000_000, 28, 28) + b"\0" * 100,
    "claims-max-dims": struct.pack(">IIII", 2051, 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1),
    "zero-width": struct.pack(">IIII", 2051, 60, 28, 0),
    "other-size": idx_bytes(2051, np.zeros((60, 20, 20), np.uint8)),
}


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("case", sorted(IDX_DAMAGE))
def test_damaged_test_images(tmp_path, data_dir, trained, case, gz):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    raw = IDX_DAMAGE[case]
    (folder / TEST_IMAGES).write_bytes(gzip.compress(raw) if gz else raw)
    before = snapshot(tmp_path, trained)
    line = refuses(cli("eval", trained / "best.npz", "--data-dir", folder, "--offline"))
    assert TEST_IMAGES in line or "expects input" in line
    assert_nothing_new(before, tmp_path, trained)


def test_typo_is_gone_from_the_extra_bytes_message(tmp_path, data_dir, trained):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    (folder / TEST_IMAGES).write_bytes(gzip.compress(IMAGES + b"\0"))
    line = refuses(cli("eval", trained / "best.npz", "--data-dir", folder, "--offline"), "the file has extra bytes")
    assert "is has" not in line


def test_gzip_that_inflates_far_beyond_its_header(tmp_path, data_dir, trained):
    """A small gzip whose data goes on for 256 MB after a 60-image header: read stops at the header's size + 1."""
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    member = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
    (folder / TEST_IMAGES).write_bytes(gzip.compress(IMAGES) + member * 16)
    refuses(cli("eval", trained / "best.npz", "--data-dir", folder, "--offline"), "extra bytes")


def test_labels_out_of_range_and_count_mismatch(tmp_path, data_dir, trained):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    (folder / TEST_LABELS).write_bytes(gzip.compress(idx_bytes(2049, np.full(60, 200, np.uint8))))
    refuses(cli("eval", trained / "best.npz", "--data-dir", folder, "--offline"), "outside 0–9")
    (folder / TEST_LABELS).write_bytes(gzip.compress(idx_bytes(2049, np.zeros(7, np.uint8))))
    refuses(cli("eval", trained / "best.npz", "--data-dir", folder, "--offline"), "labels")


@pytest.mark.parametrize("name", NAMES)
def test_training_data_replaced_by_a_folder(tmp_path, data_dir, tiny_yaml, name):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    (folder / name).unlink()
    (folder / name).mkdir()
    run_dir = tmp_path / "run"
    refuses(cli("train", tiny_yaml, "--data-dir", folder, "--run-dir", run_dir, "--offline", "--quiet"))
    assert not run_dir.exists()


# ---------------------------------------------------------------- PNG files


def png(width: int, height: int, rows: bytes | None = None, color_type: int = 0) -> bytes:
    """A real grayscale PNG; rows default to black (they compress to almost nothing)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    if rows is None:
        compressor = zlib.compressobj(9)
        line = b"\0" * (width + 1)
        body = b"".join(compressor.compress(line) for _ in range(height)) + compressor.flush()
    else:
        body = zlib.compress(rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


PNG_DAMAGE = {
    "huge-12000": png(12_000, 12_000),
    "wide-1x100M": b"\x89PNG\r\n\x1a\n" + png(100_000_000, 1)[8:41],
    "zero-size": png(1, 1)[:16] + struct.pack(">II", 0, 0) + png(1, 1)[24:],
    "signature-only": b"\x89PNG\r\n\x1a\n",
    "no-ihdr": b"\x89PNG\r\n\x1a\n" + b"\0\0\0\0IEND\xaeB`\x82",
    "truncated": png(28, 28)[:40],
    "not-png": b"GIF89a" + b"\0" * 50,
    "empty": b"",
}


@pytest.mark.parametrize("command", ["predict", "show"])
@pytest.mark.parametrize("case", sorted(PNG_DAMAGE))
def test_hostile_png(tmp_path, trained, case, command):
    path = tmp_path / "digit.png"
    path.write_bytes(PNG_DAMAGE[case])
    before = snapshot(tmp_path, trained)
    line = refuses(cli(command, trained / "best.npz", "--image", path))
    assert str(path) in line
    assert_nothing_new(before, tmp_path, trained)


def test_png_of_a_folder_and_of_nothing(tmp_path, trained):
    refuses(cli("predict", trained / "best.npz", "--image", tmp_path), "folder")
    refuses(cli("predict", trained / "best.npz", "--image", tmp_path / "none.png"), "no such image")


# ---------------------------------------------------------------- options out of range


@pytest.mark.parametrize("args", [
    ["predict", "{ckpt}", "--random", "2", "--seed", "-5"],
    ["predict", "{ckpt}", "--index", "-1"],
    ["predict", "{ckpt}", "--index", "999999999"],
    ["predict", "{ckpt}", "--random", "0"],
    ["predict", "{ckpt}", "--errors", "0"],
    ["predict", "{ckpt}", "--split", "nope"],
    ["gradcheck", "--seed", "-1"],
    ["eval", "{ckpt}", "--split", "validation"],
    ["train", "--resume", "{ckpt}", "--threads", "0"],
    ["train", "--resume", "{ckpt}", "--threads", "100000"],
    ["train", "--resume", "{ckpt}", "--epochs", "-3"],
    ["train", "--resume", "{ckpt}", "--lr", "nan"],
    ["train", "--resume", "{ckpt}", "--batch-size", "0"],
    ["train", "--resume", "{ckpt}", "--seed", "-2"],
    ["params", "--input", "1x0x28"],
    ["params", "--input", "1x" + "9" * 5000 + "x28"],
    ["params", "--sizes", "0,28"],
])
def test_options_out_of_range(tmp_path, trained, data_dir, args):
    ckpt = tmp_path / "run" / "last.npz"
    shutil.copytree(trained, tmp_path / "run")
    before = snapshot(tmp_path)
    argv = [a.replace("{ckpt}", str(ckpt)) for a in args]
    refuses(cli(*argv, "--data-dir", data_dir, "--offline") if argv[0] in ("predict", "eval", "train")
            else cli(*argv))
    assert_nothing_new(before, tmp_path)


# ---------------------------------------------------------------- paths


LONG = "n" * 300
PATH_CASES = [
    ["train", LONG + ".yaml"],
    ["train", "{cfg}", "--run-dir", "runs/" + LONG],
    ["train", "{cfg}", "--data-dir", LONG],
    ["train", "--resume", LONG + "/last.npz"],
    ["eval", LONG + ".npz"],
    ["eval", "{ckpt}", "--data-dir", "x/" + LONG],
    ["predict", LONG + ".npz"],
    ["predict", "{ckpt}", "--image", LONG + ".png"],
    ["show", "{ckpt}", "--out", LONG + ".png"],
    ["show", "{ckpt}", "--image", LONG + ".png"],
    ["plot", LONG],
    ["plot", "{run}", "--out", LONG + ".png"],
    ["params", LONG + ".yaml"],
    ["download", "--data-dir", LONG],
    ["gradcheck", LONG + ".yaml"],
    ["bench", LONG + ".yaml"],
    ["eval", "/".join(["d"] * 2100) + ".npz"],
]


@pytest.mark.parametrize("args", PATH_CASES, ids=[" ".join(a)[:40] for a in PATH_CASES])
def test_path_components_too_long(tmp_path, trained, tiny_yaml, args):
    shutil.copytree(trained, tmp_path / "run")
    argv = [a.replace("{cfg}", str(tiny_yaml)).replace("{ckpt}", str(tmp_path / "run" / "best.npz"))
            .replace("{run}", str(tmp_path / "run")) for a in args]
    before = snapshot(tmp_path)
    refuses(cli(*argv), "choose a shorter")
    assert_nothing_new(before, tmp_path)


def test_undecodable_file_name_prints_escaped(tmp_path):
    import os

    name = os.fsdecode(b"caf\xe9.npz")  # a Latin-1 name: undecodable as UTF-8
    line = refuses(cli("eval", tmp_path / name))
    assert "\\udce9" in line or "\\xe9" in line
