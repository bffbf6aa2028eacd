"""Bombs, each in a fresh interpreter under RLIMIT_AS: a size check that went missing shows as a
MemoryError or a kill, not as a machine that swaps. Each must exit 2 with one line."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from bombs import big_png, gzip_zeros, npz_with_bomb
from hostile_kit import ADDRESS_LIMIT, TINY, read_arrays, refuses_limited, run_limited, snapshot, assert_nothing_new
from idx_fixtures import TEST_IMAGES, TRAIN_IMAGES, idx_bytes

GIB = 1 << 30


def test_control_a_normal_eval_fits_under_the_limit(trained, data_dir):
    """Without this, every case below could pass because nothing can run under the limit at all."""
    proc = run_limited(["eval", trained / "best.npz", "--data-dir", data_dir, "--offline"])
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]


def test_yaml_billion_laughs(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    refuses_limited(run_limited(["params", path], timeout=60), "YAML too large")


def test_yaml_nested_100000_deep(tmp_path, data_dir):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000)
    refuses_limited(run_limited(["train", path, "--data-dir", data_dir, "--run-dir", tmp_path / "run",
                                 "--offline"]), "nested more than")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", ["runs-on-after-header", "header-claims-terabytes", "consistent-1.25GiB"])
def test_gzip_idx_bombs(tmp_path, data_dir, trained, case):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    if case == "runs-on-after-header":  # 60 images declared, 2 GiB delivered
        content, needle = gzip_zeros(idx_bytes(2051, np.zeros((60, 28, 28), np.uint8)), 2 * GIB), "extra bytes"
    elif case == "header-claims-terabytes":
        content, needle = gzip_zeros(struct.pack(">IIII", 2051, 2 ** 31, 28, 28), 64 << 20), "memory"
    else:  # header and payload agree: 1.25 GiB of images, more than the limit leaves
        n = (5 * GIB // 4) // 784
        content, needle = gzip_zeros(struct.pack(">IIII", 2051, n, 28, 28), n * 784), "memory"
    (folder / TEST_IMAGES).write_bytes(content)
    before = snapshot(tmp_path, trained)
    line = refuses_limited(run_limited(["eval", trained / "best.npz", "--data-dir", folder, "--offline"]), needle)
    assert TEST_IMAGES in line
    assert_nothing_new(before, tmp_path, trained)


def test_gzip_bomb_in_training_data_leaves_no_run_folder(tmp_path, data_dir, tiny_yaml):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    (folder / TRAIN_IMAGES).write_bytes(gzip_zeros(idx_bytes(2051, np.zeros((200, 28, 28), np.uint8)), 2 * GIB))
    refuses_limited(run_limited(["train", tiny_yaml, "--data-dir", folder, "--run-dir", tmp_path / "run",
                                 "--offline", "--quiet"]), "extra bytes")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_npz_member_inflating_to_2gib(tmp_path, trained, data_dir, command):
    key = next(k for k in read_arrays(trained / "last.npz") if k.endswith(".weight") and not k.startswith("opt"))
    bomb = npz_with_bomb(tmp_path / "bomb.npz", trained / "last.npz", key, 2 * GIB)
    assert bomb.stat().st_size < 10 << 20
    args = ["eval", bomb] if command == "eval" else ["train", "--resume", bomb, "--quiet"]
    before = snapshot(tmp_path)
    refuses_limited(run_limited([*args, "--data-dir", data_dir, "--offline"]), "memory")
    assert_nothing_new(before, tmp_path)


def test_npz_config_json_with_a_huge_architecture(tmp_path, trained, data_dir):
    import json

    from hostile_kit import tampered

    config = json.loads(str(read_arrays(trained / "last.npz")["config.json"]))
    config["fc"][0]["units"] = 10 ** 8
    bad = tampered(trained / "last.npz", tmp_path / "big.npz", config__json=np.array(json.dumps(config)))
    refuses_limited(run_limited(["predict", bad, "--data-dir", data_dir, "--offline"]), "needs about")


@pytest.fixture(scope="module")
def png_12000(tmp_path_factory):
    path = tmp_path_factory.mktemp("png") / "huge.png"
    path.write_bytes(big_png(12_000, 12_000))
    return path


@pytest.mark.parametrize("command", ["predict", "show"])
def test_png_of_12000_by_12000(png_12000, trained, command):
    assert png_12000.stat().st_size < 1 << 20
    line = refuses_limited(run_limited([command, trained / "best.npz", "--image", png_12000]), "12,000×12,000")
    assert "scale it down" in line


def test_png_just_under_the_cap_but_over_the_memory_left(tmp_path, trained):
    path = tmp_path / "big.png"
    path.write_bytes(big_png(4096, 4096))
    refuses_limited(run_limited(["predict", trained / "best.npz", "--image", path], limit=ADDRESS_LIMIT),
                    "memory")


@pytest.mark.parametrize("args", [
    ["params", "{cfg}", "--input", "1x100000x100000", "--receptive"],
    ["train", "{cfg}", "--set", "fc.0.units=1000000000"],
    ["train", "{cfg}", "--set", "blocks.0.convs.0.filters=100000"],
    ["train", "{cfg}", "--set", "blocks.0.convs.0.padding=100000"],
    ["train", "{cfg}", "--batch-size", "10000000"],
    ["params", "{cfg}", "--input", "1x30000x30000"],
])
def test_configs_that_validate_but_cannot_run(tmp_path, tiny_yaml, data_dir, args):
    argv = [a.replace("{cfg}", str(tiny_yaml)) for a in args]
    if argv[0] == "train":
        argv += ["--data-dir", data_dir, "--run-dir", tmp_path / "run", "--offline", "--quiet"]
    proc = run_limited(argv)
    if argv[0] == "params" and "--receptive" not in argv:
        assert proc.returncode == 0, proc.stderr.decode()  # counting parameters allocates nothing
        return
    refuses_limited(proc)
    assert not (tmp_path / "run").exists()
    assert "tiny" in TINY
