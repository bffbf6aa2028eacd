"""Hostile checkpoints: tampered meta.json, wrong dtypes, JSON bombs, lying .npy headers, NaN weights."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from hostile_kit import TINY, assert_nothing_new, cli, meta_of, read_arrays, refuses, snapshot, tampered

# ---------------------------------------------------------------- meta.json, field by field

GOOD_RNG = {"bit_generator": "PCG64", "state": {"state": 1, "inc": 3}, "has_uint32": 0, "uinteger": 0}
META_TAMPERING = {
    "epoch-text": {"epoch": "abc"},
    "epoch-negative": {"epoch": -1},
    "epoch-float": {"epoch": 1.5},
    "epoch-huge": {"epoch": 10 ** 30},
    "epoch-bool": {"epoch": True},
    "epoch-missing": {"epoch": None},
    "batch-beyond-epoch": {"batch": 10 ** 6},
    "batch-list": {"batch": [1, 2]},
    "step-negative": {"step": -5},
    "seen-text": {"seen": "many"},
    "correct-more-than-seen": {"correct": 10 ** 9},
    "loss-sum-inf": {"loss_sum": float("inf")},
    "loss-sum-nan": {"loss_sum": float("nan")},
    "seconds-negative": {"seconds": -3.0},
    "best-val-acc-huge": {"best_val_acc": 1e300},
    "best-epoch-beyond": {"best_epoch": 99},
    "rng-state-text": {"rng_state": "seed"},
    "rng-state-other-generator": {"rng_state": {**GOOD_RNG, "bit_generator": "MT19937"}},
    "rng-state-huge": {"rng_state": {**GOOD_RNG, "state": {"state": 2 ** 200, "inc": 3}}},
    "rng-state-float": {"rng_state": {**GOOD_RNG, "state": {"state": 1.5, "inc": 3}}},
    "history-not-list": {"history": "none"},
    "history-too-long": {"history": [{}] * 5},
    "history-row-text": {"history": ["row"]},
    "history-row-nan": {"history": [{"epoch": 1, "train_loss": "x", "train_acc": 0.5, "lr": 0.1, "seconds": 1,
                                     "images_per_s": 1}]},
}


@pytest.mark.parametrize("case", sorted(META_TAMPERING))
def test_resume_from_tampered_meta_is_one_line(tmp_path, trained, data_dir, case):
    meta = meta_of(trained / "last.npz")
    for key, value in META_TAMPERING[case].items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    bad = tampered(trained / "last.npz", run_dir / "last.npz", meta__json=np.array(json.dumps(meta)))
    before = snapshot(run_dir)
    line = refuses(cli("train", "--resume", bad, "--data-dir", data_dir, "--offline", "--quiet"))
    assert "meta.json" in line and str(bad) in line
    assert len(line) < 600
    assert_nothing_new(before, run_dir)


META_NOT_JSON = {
    "not-json": "{epoch: 1",
    "nested-deep": "[" * 100_000 + "]" * 100_000,
    "a-list": "[1, 2, 3]",
    "huge": json.dumps({"pad": "x" * 2_000_000}),
}


@pytest.mark.parametrize("case", sorted(META_NOT_JSON))
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_meta_json_damage(tmp_path, trained, data_dir, case, command):
    bad = tampered(trained / "last.npz", tmp_path / "bad.npz", meta__json=np.array(META_NOT_JSON[case]))
    before = snapshot(tmp_path)
    args = (["eval", bad] if command == "eval" else ["train", "--resume", bad, "--quiet"])
    refuses(cli(*args, "--data-dir", data_dir, "--offline"), str(bad))
    assert_nothing_new(before, tmp_path)


CONFIG_DAMAGE = {
    "nested-deep": "[" * 100_000,
    "huge": json.dumps({"pad": "x" * 2_000_000}),
    "bad-json": "{",
    "billion-units": None,  # filled in below: a valid architecture too big for memory
    "not-a-mapping": json.dumps([1, 2]),
    "laughs-text": json.dumps({"name": "x" * 100_000}),
}


@pytest.mark.parametrize("case", sorted(CONFIG_DAMAGE))
@pytest.mark.parametrize("command", ["eval", "predict", "resume"])
def test_config_json_damage(tmp_path, trained, data_dir, case, command):
    text = CONFIG_DAMAGE[case]
    if text is None:
        config = json.loads(str(read_arrays(trained / "last.npz")["config.json"]))
        config["fc"][0]["units"] = 10 ** 9
        config["blocks"][0]["convs"][0]["filters"] = 10 ** 7
        text = json.dumps(config)
    bad = tampered(trained / "last.npz", tmp_path / "bad.npz", config__json=np.array(text))
    before = snapshot(tmp_path)
    args = {"eval": ["eval", bad], "predict": ["predict", bad], "resume": ["train", "--resume", bad, "--quiet"]}
    line = refuses(cli(*args[command], "--data-dir", data_dir, "--offline"), str(bad))
    assert len(line) < 600
    assert_nothing_new(before, tmp_path)


# ---------------------------------------------------------------- arrays of the wrong kind


def _weights_key(trained):
    return next(k for k in read_arrays(trained / "best.npz") if k.endswith(".weight") and not k.startswith("opt"))


ARRAY_DAMAGE = {
    "strings": lambda a: np.array(["w"] * a.size).reshape(a.shape),
    "bytes": lambda a: np.zeros(a.shape, dtype="S4"),
    "structured": lambda a: np.zeros(a.shape, dtype=[("x", "f4"), ("y", "f4")]),
    "complex": lambda a: a.astype(np.complex64),
    "nan": lambda a: np.full(a.shape, np.nan, dtype=a.dtype),
    "inf": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.inf, a).astype(a.dtype),
    "wrong-shape": lambda a: np.zeros((3, 3), dtype=a.dtype),
    "scalar": lambda a: np.array(1.0, dtype=a.dtype),
}


@pytest.mark.parametrize("case", sorted(ARRAY_DAMAGE))
@pytest.mark.parametrize("command", ["eval", "resume", "show"])
def test_weights_of_the_wrong_kind(tmp_path, trained, data_dir, case, command):
    key = _weights_key(trained)
    array = read_arrays(trained / "last.npz")[key]
    bad = tampered(trained / "last.npz", tmp_path / "bad.npz", **{key.replace(".", "__"): ARRAY_DAMAGE[case](array)})
    before = snapshot(tmp_path)
    args = {"eval": ["eval", bad], "resume": ["train", "--resume", bad, "--quiet"], "show": ["show", bad]}
    line = refuses(cli(*args[command], "--data-dir", data_dir, "--offline"), str(bad))
    if case in ("nan", "inf"):
        assert "NaN or infinite" in line and "learning rate" not in line
    assert_nothing_new(before, tmp_path)


def test_optimizer_state_of_another_shape(tmp_path, trained, data_dir):
    arrays = read_arrays(trained / "last.npz")
    key = next(k for k in arrays if k.startswith("optimizer.") and k.endswith(".weight.m"))
    bad = tampered(trained / "last.npz", tmp_path / "bad.npz", **{key.replace(".", "__"): np.zeros(3, np.float32)})
    refuses(cli("train", "--resume", bad, "--data-dir", data_dir, "--offline", "--quiet"), "optimizer state")


def test_format_version_as_text(tmp_path, trained, data_dir):
    bad = tampered(trained / "last.npz", tmp_path / "bad.npz", format_version=np.array("one"))
    refuses(cli("eval", bad, "--data-dir", data_dir, "--offline"), str(bad))


def test_pickled_member_never_runs(tmp_path, trained, data_dir):
    arrays = read_arrays(trained / "last.npz")
    arrays["payload"] = np.array([{"x": 1}], dtype=object)
    np.savez(tmp_path / "pickle.npz", **arrays)
    refuses(cli("eval", tmp_path / "pickle.npz", "--data-dir", data_dir, "--offline"), "not numbers")


# ---------------------------------------------------------------- lying zip directories and .npy headers


def _npy(shape, payload: bytes, dtype="<f4") -> bytes:
    """A .npy member whose header says `shape` whatever the payload holds."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    return header.getvalue() + payload


def _zip_with(path, trained, extra: dict, method=zipfile.ZIP_DEFLATED):
    """The trained checkpoint's members plus raw members given as name → .npy bytes."""
    with zipfile.ZipFile(trained / "last.npz") as source, zipfile.ZipFile(path, "w", method) as target:
        for info in source.infolist():
            if info.filename not in extra:
                target.writestr(info.filename, source.read(info))
        for name, data in extra.items():
            target.writestr(name, data)
    return path


def test_member_claiming_a_huge_shape(tmp_path, trained, data_dir):
    key = _weights_key(trained) + ".npy"
    bad = _zip_with(tmp_path / "claims.npz", trained, {key: _npy((100_000, 100_000, 100), b"\0" * 64)})
    line = refuses(cli("eval", bad, "--data-dir", data_dir, "--offline"), "claims shape")
    assert "truncated or corrupt" in line


def test_member_not_an_array(tmp_path, trained, data_dir):
    bad = _zip_with(tmp_path / "text.npz", trained, {"readme.txt": b"hello" * 1000})
    refuses(cli("eval", bad, "--data-dir", data_dir, "--offline"), "not a NumPy array")


def test_member_with_a_bad_npy_header(tmp_path, trained, data_dir):
    key = _weights_key(trained) + ".npy"
    bad = _zip_with(tmp_path / "header.npz", trained, {key: b"\x93NUMPY\x01\x00\x10\x00{'descr': bogus}   \n"})
    refuses(cli("eval", bad, "--data-dir", data_dir, "--offline"), "corrupt")


def test_too_many_members(tmp_path, trained, data_dir):
    extra = {f"m{i}.npy": _npy((1,), b"\0\0\0\0") for i in range(10_001)}
    bad = _zip_with(tmp_path / "many.npz", trained, extra, method=zipfile.ZIP_STORED)
    refuses(cli("eval", bad, "--data-dir", data_dir, "--offline"), "members")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04" + b"\0" * 100, b"\x93NUMPY" + b"\0" * 50, b"garbage" * 10,
                                     b"PK\x05\x06" + b"\0" * 18])
def test_files_that_are_not_checkpoints(tmp_path, data_dir, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    before = snapshot(tmp_path)
    refuses(cli("eval", path, "--data-dir", data_dir, "--offline"), str(path))
    refuses(cli("train", "--resume", path, "--data-dir", data_dir, "--offline"), str(path))
    assert_nothing_new(before, tmp_path)


def test_checkpoint_is_a_folder(tmp_path, data_dir):
    (tmp_path / "dir.npz").mkdir()
    refuses(cli("eval", tmp_path / "dir.npz", "--data-dir", data_dir, "--offline"), "no such checkpoint")


def test_truncated_at_every_tenth(tmp_path, trained, data_dir):
    data = (trained / "last.npz").read_bytes()
    for tenth in range(1, 10):
        path = tmp_path / f"cut{tenth}.npz"
        path.write_bytes(data[: len(data) * tenth // 10])
        refuses(cli("eval", path, "--data-dir", data_dir, "--offline"), str(path))


def test_unused_config_fields_do_not_matter_but_tiny_yaml_is_fine(trained):
    assert "tiny" in TINY and (trained / "best.npz").is_file()
