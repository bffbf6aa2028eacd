"""IDX reading, split loading, preprocessing and the train/validation split."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_cli.data import (
    MNIST_MEAN,
    MNIST_STD,
    load_split,
    preprocess,
    read_idx,
    train_val_split,
)
from cnn_cli.errors import UserError

from idx_fixtures import (
    NAMES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    class_templates,
    idx_bytes,
    make_mnist_folder,
    write_idx_images,
    write_idx_labels,
)

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "mnist-sample"
REPO = Path(__file__).resolve().parents[2]


def user_error(fn, *args, **kw) -> str:
    """Run fn, expect a UserError, return its message after basic one-line checks."""
    with pytest.raises(UserError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    assert "reshape" not in msg and "buffer" not in msg
    return msg


# --------------------------------------------------------------------------- read_idx: good files


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=7)
    pi = write_idx_images(tmp_path / "i.idx", x, gz=gz)
    pl = write_idx_labels(tmp_path / "l.idx", y, gz=gz)
    got = read_idx(pi)
    assert got.dtype == np.uint8 and got.shape == (7, 5, 3) and np.array_equal(got, x)
    assert np.array_equal(read_idx(pl, kind="labels"), y)
    got[0, 0, 0] = 1  # writable, not a view of an immutable buffer


def test_gzip_is_detected_by_content_not_name(tmp_path):
    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    plain_named_gz = tmp_path / "x-idx3-ubyte.gz"
    plain_named_gz.write_bytes(idx_bytes(2051, x))
    gz_named_plain = tmp_path / "x-idx3-ubyte"
    gz_named_plain.write_bytes(gzip.compress(idx_bytes(2051, x)))
    assert np.array_equal(read_idx(plain_named_gz, kind="images"), x)
    assert np.array_equal(read_idx(gz_named_plain, kind="images"), x)


# --------------------------------------------------------------------------- read_idx: every malformed case


def _file(tmp_path, raw: bytes, gz: bool = True, name="train-images-idx3-ubyte.gz") -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(raw) if gz else raw)
    return p


IMG = idx_bytes(2051, np.zeros((3, 4, 4), np.uint8))
LBL = idx_bytes(2049, np.array([0, 1, 2], np.uint8))


@pytest.mark.parametrize(
    "raw, gz, kind, needle",
    [
        (b"", False, "images", "too short for an IDX header"),
        (b"", True, "images", "too short for an IDX header"),
        (IMG[:6], True, "images", "too short"),
        (IMG[:12], True, "images", "header cut short"),
        (IMG[:-1], True, "images", "header says 3×4×4 = 48 bytes of images but the file holds 47"),
        (IMG + b"\0", False, "images", "extra bytes"),
        (LBL, True, "images", "magic number 2049 (0x00000801), expected 2051 for images; it looks like a labels file"),
        (IMG, True, "labels", "expected 2049 for labels; it looks like an images file"),
        (b"<html><body>Not found</body></html>", False, "images", "not an MNIST IDX file"),
        (b"<html><body>Not found</body></html>", False, None, "expected 2051 (images) or 2049 (labels)"),
        (idx_bytes(2049, np.array([1, 12, 3, 200], np.uint8)), True, "labels", "label 12 at index 1 is outside 0–9 (2 bad labels)"),
        (struct.pack(">IIII", 2051, 2, 0, 28), False, "images", "images of 0×28 pixels"),
        (struct.pack(">IIII", 2051, 4_000_000_000, 28, 28), False, "images", "truncated or corrupt"),
    ],
)
def test_malformed_idx_is_one_line_naming_the_file(tmp_path, raw, gz, kind, needle):
    p = _file(tmp_path, raw, gz)
    msg = user_error(read_idx, p, kind=kind)
    assert msg.startswith(str(p) + ": ")
    assert needle in msg


def test_broken_gzip(tmp_path):
    good = gzip.compress(IMG)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(good[: len(good) // 2])
    msg = user_error(read_idx, p)
    assert msg.startswith(str(p)) and "broken gzip data" in msg and "cnn download --force" in msg
    p.write_bytes(good[:2] + b"\xff" * 30)
    assert "broken gzip data" in user_error(read_idx, p)


def test_missing_and_folder(tmp_path):
    msg = user_error(read_idx, tmp_path / "nope.gz")
    assert str(tmp_path / "nope.gz") in msg and "file not found" in msg
    assert "is a folder" in user_error(read_idx, tmp_path)


def test_name_overrides_path_in_messages(tmp_path):
    p = _file(tmp_path, b"xx", gz=False, name=".tmp123.part")
    msg = user_error(read_idx, p, name="train-labels-idx1-ubyte.gz")
    assert msg.startswith("train-labels-idx1-ubyte.gz: ") and ".part" not in msg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    gz=st.booleans(),
)
def test_any_corruption_gives_an_array_or_a_user_error(tmp_path, data, gz):
    raw = bytearray(idx_bytes(2051, np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)))
    action = data.draw(st.sampled_from(["truncate", "flip", "append"]))
    if action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif action == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    else:
        raw += bytes(data.draw(st.binary(min_size=1, max_size=8)))
    blob = gzip.compress(bytes(raw)) if gz else bytes(raw)
    if gz and data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]  # a cut download
    p = tmp_path / "h.idx"
    p.write_bytes(blob)
    try:
        arr = read_idx(p, kind=data.draw(st.sampled_from(["images", None])))
    except UserError as error:
        assert "\n" not in str(error) and str(p) in str(error)
    else:
        assert arr.dtype == np.uint8 and arr.ndim in (1, 3)


# --------------------------------------------------------------------------- load_split


def test_load_split_shapes_dtypes_and_values(tmp_path):
    info = make_mnist_folder(tmp_path, n_train=50, n_test=20, seed=1)
    x, y = load_split(tmp_path, "train")
    assert x.shape == (50, 28, 28) and x.dtype == np.uint8
    assert y.shape == (50,) and y.dtype == np.int64
    assert np.array_equal(x, info.train_images) and np.array_equal(y, info.train_labels)
    xt, yt = load_split(str(tmp_path), "test")
    assert xt.shape == (20, 28, 28) and np.array_equal(yt, info.test_labels)


def test_load_split_count_mismatch_names_both_files(tmp_path):
    make_mnist_folder(tmp_path, n_train=50, n_test=20, seed=1)
    write_idx_labels(tmp_path / TRAIN_LABELS, np.zeros(49, np.uint8))
    msg = user_error(load_split, tmp_path, "train")
    assert str(tmp_path / TRAIN_IMAGES) in msg and str(tmp_path / TRAIN_LABELS) in msg
    assert "50 images" in msg and "49 labels" in msg


def test_load_split_missing_file_says_how_to_get_it(tmp_path):
    make_mnist_folder(tmp_path, n_train=10, n_test=10, seed=1)
    (tmp_path / TEST_LABELS).unlink()
    msg = user_error(load_split, tmp_path, "test")
    assert str(tmp_path / TEST_LABELS) in msg and "cnn download" in msg
    load_split(tmp_path, "train")  # the other split is fine


def test_load_split_swapped_files(tmp_path):
    make_mnist_folder(tmp_path, n_train=10, n_test=10, seed=1)
    (tmp_path / TEST_IMAGES).write_bytes((tmp_path / TEST_LABELS).read_bytes())
    msg = user_error(load_split, tmp_path, "test")
    assert msg.startswith(str(tmp_path / TEST_IMAGES)) and "looks like a labels file" in msg


def test_load_split_empty_and_bad_split(tmp_path):
    write_idx_images(tmp_path / TRAIN_IMAGES, np.zeros((0, 28, 28), np.uint8))
    write_idx_labels(tmp_path / TRAIN_LABELS, np.zeros(0, np.uint8))
    assert "holds no images" in user_error(load_split, tmp_path, "train")
    assert "'train' or 'test'" in user_error(load_split, tmp_path, "validation")


def test_other_image_sizes_are_fine(tmp_path):
    make_mnist_folder(tmp_path, n_train=20, n_test=10, seed=2, size=16)
    x, _ = load_split(tmp_path, "train")
    assert x.shape == (20, 16, 16)


# --------------------------------------------------------------------------- preprocess


def test_preprocess_scale_only():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = preprocess(x)
    assert out.dtype == np.float32 and out.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(out[0, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)


def test_preprocess_normalize_then_zero_pad():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    out = preprocess(x, normalize=(0.5, 0.25), pad=2)
    assert out.shape == (3, 1, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 2:30, 2:30], (x / 255.0 - 0.5) / 0.25, rtol=1e-5, atol=1e-6)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(out[:, 0][:, border] == 0.0)  # padding is zero after normalisation


def test_preprocess_normalize_true_means_mnist_stats():
    x = np.full((1, 2, 2), 255, np.uint8)
    assert (MNIST_MEAN, MNIST_STD) == (0.1307, 0.3081)
    np.testing.assert_allclose(preprocess(x, normalize=True), (1 - 0.1307) / 0.3081, rtol=1e-6)
    np.testing.assert_array_equal(preprocess(x, normalize=False), 1.0)


@pytest.mark.parametrize("normalize", [(0.1, 0), (0.1, -1), (float("nan"), 1), "abc", (1, 2, 3)])
def test_preprocess_bad_normalize(normalize):
    assert "normalize" in user_error(preprocess, np.zeros((1, 2, 2), np.uint8), normalize=normalize)


@pytest.mark.parametrize("pad", [-1, 1.5, True])
def test_preprocess_bad_pad(pad):
    assert "pad" in user_error(preprocess, np.zeros((1, 2, 2), np.uint8), pad=pad)


def test_preprocess_rejects_non_uint8_and_bad_shapes():
    with pytest.raises(ValueError):
        preprocess(np.zeros((1, 2, 2), np.float64))
    # float32 in 0-255 units (distorted training batches) is read as uint8 would be.
    images = np.arange(8, dtype=np.uint8).reshape(2, 2, 2) * 30
    assert np.array_equal(preprocess(images.astype(np.float32), normalize=True), preprocess(images, normalize=True))
    with pytest.raises(ValueError):
        preprocess(np.zeros((2, 2), np.uint8))
    assert preprocess(np.zeros((4, 1, 5, 5), np.uint8)).shape == (4, 1, 5, 5)


# --------------------------------------------------------------------------- train/val split


def test_split_is_a_seeded_partition():
    tr, va = train_val_split(1000, 0.1, seed=7)
    assert tr.dtype == np.int64 and va.dtype == np.int64
    assert len(va) == 100 and len(tr) == 900
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(1000))
    tr2, va2 = train_val_split(1000, 0.1, seed=7)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    _, va3 = train_val_split(1000, 0.1, seed=8)
    assert not np.array_equal(np.sort(va), np.sort(va3))


def test_split_of_class_sorted_data_is_random():
    labels = np.repeat(np.arange(10), 400)  # like the course sample
    _, va = train_val_split(len(labels), 0.1, seed=0)
    counts = np.bincount(labels[va], minlength=10)
    assert counts.min() >= 20  # every class shows up, not just the last one


def test_split_zero_fraction_and_small_n():
    tr, va = train_val_split(50, 0.0, seed=0)
    assert len(va) == 0 and sorted(tr) == list(range(50))
    _, va = train_val_split(5, 0.01, seed=0)
    assert len(va) == 1  # asked for a validation set: never silently empty
    tr, va = train_val_split(0, 0.2, seed=0)
    assert len(tr) == len(va) == 0


@pytest.mark.parametrize("frac", [-0.1, 1.0, 1.5, "x"])
def test_split_bad_fraction(frac):
    assert "val_fraction" in user_error(train_val_split, 100, frac, 0)


def test_split_leaving_nothing_to_train_on():
    assert "nothing to train on" in user_error(train_val_split, 2, 0.9, 0)


@given(n=st.integers(0, 500), frac=st.floats(0, 0.95), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_split_property(n, frac, seed):
    try:
        tr, va = train_val_split(n, frac, seed)
    except UserError:
        assert n > 0 and round(n * frac) >= n or (n == 1 and frac > 0)
        return
    assert len(tr) + len(va) == n
    assert len(set(tr.tolist()) | set(va.tolist())) == n


# --------------------------------------------------------------------------- fixtures and the real sample


def test_fixture_folder_is_deterministic_and_learnable(tmp_path):
    a = make_mnist_folder(tmp_path / "a", n_train=500, n_test=200, seed=11)
    b = make_mnist_folder(tmp_path / "b", n_train=500, n_test=200, seed=11)
    assert a.md5 == b.md5 and sorted(a.md5) == sorted(NAMES)
    x, y = load_split(a.folder, "train")
    xt, yt = load_split(a.folder, "test")
    assert np.array_equal(np.bincount(y), [50] * 10)
    # nearest class mean: if this simple rule gets > 90 %, a tiny CNN will too
    means = np.stack([x[y == k].reshape(-1, 784).mean(0) for k in range(10)])
    d = ((xt.reshape(-1, 784)[:, None, :] - means[None]) ** 2).sum(-1)
    assert (d.argmin(1) == yt).mean() > 0.9
    assert len({t.tobytes() for t in class_templates()}) == 10


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"{SAMPLE} is not there")
def test_real_sample_loads_directly():
    x, y = load_split(SAMPLE, "train")
    assert x.shape == (4000, 28, 28) and np.array_equal(np.bincount(y), [400] * 10)
    xt, yt = load_split(SAMPLE, "test")
    assert xt.shape == (1000, 28, 28) and np.array_equal(np.bincount(yt), [100] * 10)
    assert x.max() == 255 and x.min() == 0


def test_data_and_download_do_not_import_numba():
    code = "import sys, cnn_cli.data, cnn_cli.data.download, cnn_cli.data.fetch; sys.exit('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
