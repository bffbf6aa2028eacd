"""`data.dataset: folder`: class sub-folders of PNG/JPEG files, read with Pillow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.errors import UserError

pytest.importorskip("PIL", reason="folder datasets read images with Pillow (the 'images' extra)")

from PIL import Image  # noqa: E402

from cnn_cli.data.folder import channel_stats, load_folder_split, scan_folder  # noqa: E402
from cli_checks import one_error_line  # noqa: E402
from dataset_fixtures import make_image_folder  # noqa: E402

runner = CliRunner()

FOLDER_CONFIG = """\
name: pets
input: {{channels: {channels}, height: 16, width: 16}}
blocks:
  - convs: [{{filters: 4, kernel: 3, padding: same}}]
    pools: [{{kind: max, size: 2}}]
fc:
  - {{units: 3}}
train: {{epochs: 2, batch_size: 8, optimizer: adam, lr: 0.02, seed: 0}}
data: {{dataset: folder, folder: {folder}, val_split: 0.2, fit: {fit}}}
"""


def write_config(tmp_path: Path, folder: Path, channels: int = 3, fit: str = "pad") -> Path:
    path = tmp_path / "pets.yaml"
    path.write_text(FOLDER_CONFIG.format(channels=channels, folder=json.dumps(str(folder)), fit=fit))
    return path


def train(config: Path, run: Path, *extra: str):
    return runner.invoke(app, ["train", str(config), "--run-dir", str(run), "--offline", "--quiet", *extra])


# ---------------------------------------------------------------- layouts


def test_split_fraction_holds_out_each_class_deterministically(tmp_path):
    root = make_image_folder(tmp_path / "pets", per_class=10)
    scan = scan_folder(root, 0.2)
    assert scan.classes == ("cat", "dog", "owl")
    test = scan.files["test"]
    assert len(test) == 6 and sorted({label for _, label in test}) == [0, 1, 2]
    assert len(scan.files["train"]) == 24
    assert not {f for f, _ in test} & {f for f, _ in scan.files["train"]}
    assert scan_folder(root, 0.2).files == scan.files  # same files every time: eval scores the same test split


def test_train_and_test_sub_folders(tmp_path):
    root = make_image_folder(tmp_path / "pets", per_class=6, split_folders=True)
    scan = scan_folder(root, 0.2)
    assert scan.classes == ("cat", "dog", "owl")
    assert all("/train/" in str(f) for f, _ in scan.files["train"])
    assert all("/test/" in str(f) for f, _ in scan.files["test"]) and len(scan.files["test"]) == 6


def test_images_converted_to_channels_and_padded(tmp_path):
    root = make_image_folder(tmp_path / "pets", per_class=4, size=(10, 12))
    scan = scan_folder(root, 0.25)
    rgb = load_folder_split(scan, "train", 3, 16, 16, "pad")
    assert rgb.images.shape == (9, 3, 16, 16) and rgb.images.dtype == np.uint8
    assert rgb.images[:, :, :3].max() == 0 and rgb.images[:, :, 3:13, 2:14].max() > 200  # centred, black border
    grey = load_folder_split(scan, "train", 1, 8, 8, "resize")
    assert grey.images.shape == (9, 8, 8)
    mean, std = channel_stats(rgb.images)
    assert len(mean) == 3 and mean[0] == pytest.approx(rgb.images[:, 0].mean() / 255, abs=1e-6)


@pytest.mark.parametrize("layout,needle", [("files-only", "holds no class sub-folders"),
                                           ("one-class", "only one class (cat)"),
                                           ("missing", "no such folder")])
def test_bad_layouts_are_one_line_and_leave_no_run_folder(tmp_path, layout, needle):
    root = tmp_path / "pets"
    if layout == "files-only":
        root.mkdir()
        Image.new("RGB", (16, 16)).save(root / "a.png")
    elif layout == "one-class":
        make_image_folder(root, classes=("cat",), per_class=3)
    result = train(write_config(tmp_path, root), tmp_path / "run")
    one_error_line(result, f"data.folder {root}", needle)
    assert not (tmp_path / "run").exists()


def test_mixed_sizes_the_config_cannot_take(tmp_path):
    root = make_image_folder(tmp_path / "pets", per_class=4)
    big = root / "dog" / "big.png"
    Image.new("RGB", (40, 30)).save(big)
    result = train(write_config(tmp_path, root, fit="pad"), tmp_path / "run")
    one_error_line(result, str(big), "40×30", "data.fit: resize")
    assert not (tmp_path / "run").exists()
    resized = train(write_config(tmp_path, root, fit="resize"), tmp_path / "run2")
    assert resized.exit_code == 0, resized.output


def test_folder_needs_its_path(tmp_path):
    result = train(Path("cnn_cli/configs/lenet5.yaml"), tmp_path / "run", "--dataset", "folder")
    one_error_line(result, "data.folder", "must be the path of a folder")


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pets")
    root = make_image_folder(tmp / "pets", per_class=12, seed=4)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a picture")
    (root / "owl" / "notes.txt").write_text("taken at dusk")
    run = tmp / "run"
    result = train(write_config(tmp, root), run)
    assert result.exit_code == 0, result.output
    return root, run, result


def test_unreadable_files_are_named_once_and_skipped(pets_run):
    root, run, result = pets_run
    lines = [l for l in result.output.splitlines() if "unreadable" in l]
    assert len(lines) == 1, result.output
    assert str(root / "cat" / "broken.png") in lines[0] and str(root / "owl" / "notes.txt") in lines[0]
    assert "skipped 2 unreadable file(s)" in lines[0]


def test_checkpoint_carries_classes_and_training_statistics(pets_run):
    root, run, _ = pets_run
    with np.load(run / "best.npz") as data:
        meta = json.loads(str(data["meta.json"]))["dataset"]
    assert meta["name"] == "folder" and meta["classes"] == ["cat", "dog", "owl"]
    scan = scan_folder(root, 0.2)
    train_images = load_folder_split(scan, "train", 3, 16, 16, "pad").images
    assert meta["mean"] == pytest.approx(list(channel_stats(train_images)[0]))
    assert meta["std"] == pytest.approx(list(channel_stats(train_images)[1]))


def test_eval_and_predict_use_the_class_names(pets_run):
    root, run, _ = pets_run
    report = json.loads(runner.invoke(app, ["eval", str(run / "best.npz"), "--json"]).stdout)
    held_out = load_folder_split(scan_folder(root, 0.2), "test", 3, 16, 16, "pad")
    assert report["classes"] == ["cat", "dog", "owl"] and report["samples"] == len(held_out.labels) >= 8
    assert report["accuracy"] > 0.5  # quarter-bright patterns: learnable in two epochs
    table = runner.invoke(app, ["eval", str(run / "best.npz")])
    assert table.exit_code == 0 and "owl" in table.stdout
    shown = runner.invoke(app, ["predict", str(run / "best.npz"), "--index", "0"])
    assert shown.exit_code == 0, shown.output
    assert "label cat" in shown.stdout  # test split, class by class: the first test image is a cat


def test_eval_refuses_a_folder_whose_classes_changed(pets_run, tmp_path):
    root, run, _ = pets_run
    with np.load(run / "best.npz") as data:
        arrays = {k: data[k] for k in data.files}
    other = make_image_folder(tmp_path / "other", classes=("ant", "bee", "cow"), per_class=4)
    config = json.loads(str(arrays["config.json"]))
    config["data"]["folder"] = str(other)
    arrays["config.json"] = np.array(json.dumps(config))
    np.savez(tmp_path / "moved.npz", **arrays)
    one_error_line(runner.invoke(app, ["eval", str(tmp_path / "moved.npz")]),
                   "classes ant, bee, cow are not the cat, dog, owl the checkpoint was trained on")


def test_scan_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="is a file"):
        (tmp_path / "f").write_text("x")
        scan_folder(tmp_path / "f", 0.2)


def test_predict_and_show_your_own_photo_like_the_folder_loader(pets_run, tmp_path):
    root, run, _ = pets_run
    photo = next((root / "owl").glob("*.jpg"))
    shown = runner.invoke(app, ["predict", str(run / "best.npz"), "--image", str(photo)])
    assert shown.exit_code == 0, shown.output
    assert "note: read as 3×16×16 (padded)" in shown.stdout and "owl" in shown.stdout
    too_big = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(too_big)
    one_error_line(runner.invoke(app, ["predict", str(run / "best.npz"), "--image", str(too_big)]),
                   str(too_big), "40×30", "data.fit: resize")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    one_error_line(runner.invoke(app, ["predict", str(run / "best.npz"), "--image", str(not_image)]),
                   "Pillow cannot read it as an image")
    pytest.importorskip("matplotlib")
    drawn = runner.invoke(app, ["show", str(run / "best.npz"), "--image", str(photo), "--out", str(tmp_path / "s.png")])
    assert drawn.exit_code == 0, drawn.output
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
