"""Fashion-MNIST, KMNIST, CIFAR-10 and folder datasets: tables, readers, downloads, and the
commands end to end on small files in the official formats (no internet)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.spec.config import load_config
from cnn_cli.data import download as dl
from cnn_cli.data import fetch as fx
from cnn_cli.spec import datasets as registry
from cnn_cli.data.cifar import read_cifar10
from cnn_cli.data.idx import preprocess
from cnn_cli.errors import UserError

from cli_checks import one_error_line
from dataset_fixtures import CIFAR_NAMES, make_cifar_archive
from idx_fixtures import make_mnist_folder

runner = CliRunner()

TINY3 = """\
name: tiny3
input: {channels: 3, height: 32, width: 32}
blocks:
  - convs: [{filters: 4, kernel: 3, padding: same}]
    pools: [{kind: max, size: 2}]
  - convs: [{filters: 8, kernel: 3, padding: same}]
    pools: [{kind: max, size: 4}]
fc:
  - {units: 10}
train: {epochs: 2, batch_size: 8, optimizer: adam, lr: 0.01, seed: 0}
data: {val_split: 0.2}
"""

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    monkeypatch.setattr(dl, "DEFAULT_MIRRORS", ())
    monkeypatch.setattr(fx, "RETRIES", 0)
    for name, spec in list(registry.DATASETS.items()):
        monkeypatch.setitem(registry.DATASETS, name, replace(spec, mirrors=()))


def meta_of(checkpoint: Path) -> dict:
    with np.load(checkpoint) as data:
        return json.loads(str(data["meta.json"]))


# ---------------------------------------------------------------- the table


def test_official_tables():
    fashion, kmnist, cifar = (registry.DATASETS[n] for n in ("fashion-mnist", "kmnist", "cifar10"))
    assert [f.md5 for f in fashion.files] == ["8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                              "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"]
    assert [f.md5 for f in kmnist.files] == ["bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                                             "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"]
    assert [(f.name, f.md5, f.size) for f in cifar.files] == [
        ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", 170_052_171)]
    assert fashion.classes == FASHION and cifar.classes == CIFAR_NAMES
    assert cifar.shape == (3, 32, 32) and len(cifar.mean) == len(cifar.std) == 3
    assert [f.name for f in fashion.files] == [f.name for f in registry.DATASETS["mnist"].files]


def test_data_folders(tmp_path):
    assert registry.dataset_dir(tmp_path, "mnist") == tmp_path  # existing data/ MNIST files stay where they are
    assert registry.dataset_dir(tmp_path, "fashion-mnist") == tmp_path / "fashion-mnist"


@pytest.mark.parametrize("typo,near", [("fashion", "fashion-mnist"), ("cifar", "cifar10"), ("kmnst", "kmnist")])
def test_unknown_dataset_names_the_nearest(typo, near):
    with pytest.raises(UserError, match=f"did you mean {near}"):
        registry.get_dataset(typo)


def test_unknown_dataset_in_a_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(Path("cnn_cli/configs/lenet5.yaml").read_text() + "\n")
    with pytest.raises(UserError, match="data.dataset: unknown value 'fashon-mnist'; did you mean 'fashion-mnist'"):
        load_config(str(path), [(["data", "dataset"], "fashon-mnist")])


def test_cli_unknown_dataset_is_one_line_and_no_run_folder(tmp_path):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "cifar", "--run-dir", str(tmp_path / "run")])
    one_error_line(result, "unknown dataset 'cifar'", "did you mean cifar10")
    assert not (tmp_path / "run").exists()


def test_shipped_configs():
    assert load_config("fashion-lenet5").data["dataset"] == "fashion-mnist"
    cifar = load_config("cifar10")
    assert cifar.data["dataset"] == "cifar10" and cifar.input.shape == (3, 32, 32)
    convs = [layer for layer in cifar.layers if layer.spec.family == "conv"]
    assert [c.spec.filters for c in convs] == [32, 32, 64, 64, 128, 128]
    assert all(c.spec.kernel == (3, 3) for c in convs)


def test_per_channel_normalisation():
    images = np.array([[[[0, 255]], [[51, 102]], [[255, 255]]]], dtype=np.uint8)  # (1, 3, 1, 2)
    out = preprocess(images, normalize=((0.0, 0.2, 0.5), (1.0, 0.1, 0.25)))
    assert out.shape == (1, 3, 1, 2)
    np.testing.assert_allclose(out[0, :, 0], [[0.0, 1.0], [0.0, 2.0], [2.0, 2.0]], atol=1e-6)
    grey = preprocess(images[:, 0], normalize=(0.5, 0.5), pad=1)  # (N, H, W): one channel, padded
    assert grey.shape == (1, 1, 3, 4) and grey[0, 0, 1, 1] == pytest.approx(-1.0)


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_reader_keeps_records_in_order(tmp_path):
    made = make_cifar_archive(tmp_path, per_batch=4, test=5)
    x, y = read_cifar10(made.path, "train")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x, made.train_images) and np.array_equal(y, made.train_labels)
    xt, yt = read_cifar10(made.path, "test")
    assert np.array_equal(xt, made.test_images) and np.array_equal(yt, made.test_labels)


@pytest.mark.parametrize("kind,needle", [("drop", "no cifar-10-batches-bin/data_batch_4.bin inside"),
                                         ("cut", "not a whole number of 3,073-byte records"),
                                         ("garbage", "not a readable tar.gz archive")])
def test_cifar_reader_names_what_is_wrong(tmp_path, kind, needle):
    if kind == "garbage":
        path = tmp_path / "cifar-10-binary.tar.gz"
        path.write_bytes(b"\x1f\x8bnot really gzip")
    else:
        path = make_cifar_archive(tmp_path, drop="data_batch_4.bin" if kind == "drop" else None,
                                  cut=100 if kind == "cut" else 0).path
    with pytest.raises(UserError) as info:
        read_cifar10(path, "train")
    assert needle in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_cifar_download_from_a_folder_mirror_lands_in_its_own_folder(tmp_path):
    made = make_cifar_archive(tmp_path / "mirror")
    console_out = __import__("io").StringIO()
    from rich.console import Console

    results = dl.download_dataset("cifar10", tmp_path / "data", mirrors=[str(tmp_path / "mirror")],
                                  expected={"cifar-10-binary.tar.gz": made.md5},
                                  console=Console(file=console_out, width=80))
    target = tmp_path / "data" / "cifar10" / "cifar-10-binary.tar.gz"
    assert results["cifar-10-binary.tar.gz"].status == "fetched" and target.read_bytes() == made.path.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["cifar-10-binary.tar.gz"]
    assert "MD5 OK" in console_out.getvalue()


def test_cifar_download_rejects_a_broken_archive_even_with_no_verify(tmp_path):
    bad = make_cifar_archive(tmp_path / "mirror", drop="test_batch.bin")
    with pytest.raises(UserError) as info:
        dl.download_dataset("cifar10", tmp_path / "data", mirrors=[str(bad.path.parent)], verify=False,
                            console=__import__("rich.console").console.Console(file=__import__("io").StringIO()))
    assert "not a usable archive" in str(info.value) and "test_batch.bin" in str(info.value)
    assert list((tmp_path / "data" / "cifar10").iterdir()) == []


def test_cli_download_other_dataset_and_folder_has_nothing_to_fetch(tmp_path):
    src = make_mnist_folder(tmp_path / "src", 20, 10, seed=1)
    result = runner.invoke(app, ["download", "--dataset", "kmnist", "--data-dir", str(tmp_path / "data"),
                                 "--mirror", str(src.folder), "--no-verify"])
    assert result.exit_code == 0, result.output
    assert "Kuzushiji-MNIST ready in" in result.stdout and "4 fetched" in result.stdout
    assert sorted(p.name for p in (tmp_path / "data" / "kmnist").iterdir()) == sorted(src.md5)
    one_error_line(runner.invoke(app, ["download", "--dataset", "folder"]), "no files to download")


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar-data")
    make_cifar_archive(root / "cifar10", per_batch=16, test=12, seed=3)
    config = tmp_path_factory.mktemp("cfg") / "tiny3.yaml"
    config.write_text(TINY3)
    run = tmp_path_factory.mktemp("runs") / "cifar"
    result = runner.invoke(app, ["train", str(config), "--dataset", "cifar10", "--data-dir", str(root),
                                 "--run-dir", str(run), "--offline", "--quiet"])
    assert result.exit_code == 0, result.output
    return root, run


def test_cifar_training_saves_dataset_in_the_checkpoint(cifar_run):
    root, run = cifar_run
    meta = meta_of(run / "best.npz")["dataset"]
    assert meta["name"] == "cifar10" and meta["classes"] == list(CIFAR_NAMES)
    assert meta["mean"] == pytest.approx(list(registry.DATASETS["cifar10"].mean))
    assert json.loads((run / "summary.json").read_text())["test_samples"] == 12


def test_cifar_eval_needs_no_flags_and_shows_class_names(cifar_run):
    root, run = cifar_run
    result = runner.invoke(app, ["eval", str(run / "best.npz"), "--data-dir", str(root), "--offline"])
    assert result.exit_code == 0, result.output
    assert "airplane" in result.stdout and "truck" in result.stdout and "12" in result.stdout
    report = json.loads(runner.invoke(app, ["eval", str(run / "best.npz"), "--data-dir", str(root), "--offline",
                                            "--json"]).stdout)
    assert report["dataset"] == "cifar10" and report["classes"] == list(CIFAR_NAMES) and report["samples"] == 12


def test_eval_on_another_dataset_is_refused_with_both_names(cifar_run):
    root, run = cifar_run
    result = runner.invoke(app, ["eval", str(run / "best.npz"), "--data-dir", str(root), "--offline",
                                 "--dataset", "mnist"])
    one_error_line(result, "trained on cifar10, not mnist")


def test_cifar_predict_names_the_classes(cifar_run):
    root, run = cifar_run
    result = runner.invoke(app, ["predict", str(run / "best.npz"), "--data-dir", str(root), "--offline",
                                 "--index", "3"])
    assert result.exit_code == 0, result.output
    assert "label " + CIFAR_NAMES[int(read_cifar10(root / "cifar10" / "cifar-10-binary.tar.gz", "test")[1][3])] \
        in result.stdout
    assert sum(name in result.stdout for name in CIFAR_NAMES) >= 3  # the top 3, by name


# ---------------------------------------------------------------- Fashion-MNIST


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("fashion-data")
    make_mnist_folder(root / "fashion-mnist", n_train=300, n_test=60, seed=5)
    run = tmp_path_factory.mktemp("runs") / "fashion"
    result = runner.invoke(app, ["train", str(tiny_config), "--dataset", "fashion-mnist", "--data-dir", str(root),
                                 "--run-dir", str(run), "--offline", "--quiet"])
    assert result.exit_code == 0, result.output
    return root, run


def test_fashion_checkpoint_evaluates_without_flags(fashion_run):
    root, run = fashion_run
    assert meta_of(run / "best.npz")["dataset"]["classes"] == list(FASHION)
    report = json.loads(runner.invoke(app, ["eval", str(run / "best.npz"), "--data-dir", str(root), "--offline",
                                            "--json"]).stdout)
    assert report["dataset"] == "fashion-mnist" and report["classes"] == list(FASHION)
    assert report["samples"] == 60  # the files under data/fashion-mnist/, not MNIST's in data/
    ok = runner.invoke(app, ["eval", str(run / "best.npz"), "--data-dir", str(root), "--offline",
                             "--dataset", "fashion-mnist"])
    assert ok.exit_code == 0 and "Ankle boot" in ok.stdout
    refused = runner.invoke(app, ["predict", str(run / "best.npz"), "--data-dir", str(root), "--offline",
                                  "--dataset", "kmnist"])
    one_error_line(refused, "trained on fashion-mnist, not kmnist")


def test_fashion_offline_without_files_names_its_folder(tmp_path, tiny_config):
    result = runner.invoke(app, ["train", str(tiny_config), "--dataset", "fashion-mnist", "--data-dir",
                                 str(tmp_path), "--run-dir", str(tmp_path / "run"), "--offline", "--quiet"])
    one_error_line(result, "missing Fashion-MNIST file(s) in " + str(tmp_path / "fashion-mnist"),
                   "cnn download --dataset fashion-mnist")
    assert not (tmp_path / "run").exists()


def test_checkpoint_without_dataset_loads_as_mnist(fashion_run, tmp_path):
    from cnn_cli.commands.trained import load_trained

    _, run = fashion_run
    with np.load(run / "best.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta.json"]))
    del meta["dataset"]
    config = json.loads(str(arrays["config.json"]))
    for key in ("dataset", "folder", "fit", "test_split"):
        config["data"].pop(key)
    arrays["meta.json"], arrays["config.json"] = np.array(json.dumps(meta)), np.array(json.dumps(config))
    np.savez(tmp_path / "old.npz", **arrays)
    trained = load_trained(tmp_path / "old.npz")
    assert trained.dataset.name == "mnist" and trained.dataset.classes == tuple(str(d) for d in range(10))
    assert trained.config.data["dataset"] == "mnist" and trained.class_name(7) == "7"


def test_resume_on_another_dataset_is_refused(fashion_run, tmp_path):
    root, run = fashion_run
    result = runner.invoke(app, ["train", "--resume", str(run / "last.npz"), "--set", "data.dataset=mnist",
                                 "--data-dir", str(root), "--offline", "--quiet"])
    one_error_line(result, "data.dataset = 'fashion-mnist', not 'mnist'")


def test_cifar_predict_your_own_photo_resized(cifar_run, tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="--image on a photo dataset reads it with Pillow")
    _, run = cifar_run
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3)).astype(np.uint8), "RGB").save(photo)
    result = runner.invoke(app, ["predict", str(run / "best.npz"), "--image", str(photo)])
    assert result.exit_code == 0, result.output
    assert "note: read as 3×32×32 (resized)" in result.stdout
    assert sum(name in result.stdout for name in CIFAR_NAMES) >= 3
