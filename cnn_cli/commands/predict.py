"""`cnn predict`: a checkpoint's guesses, drawn in the terminal.

A digit is drawn with Unicode half blocks — two pixel rows per character row,
so 28×28 pixels take 14 lines of 28 characters — beside its top-3
probabilities. The drawing functions are pure (array in, list of strings out)
so tests compare them with stored expectations.

Images come from an MNIST split (`--index`, `--random`, `--errors`) or from a
PNG of your own (`--image`), converted to MNIST's form: grayscale, white digit
on black, cropped to the ink, fitted into 20×20 and centred by mass in the
model's input size (mnist_style.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import UserError
from ..data.mnist_style import area_resize, mnist_style  # noqa: F401  (area_resize: re-exported)

# Index = top pixel on (1) + bottom pixel on (2).
BLOCKS = (" ", "▀", "▄", "█")
BAR_EIGHTHS = " ▏▎▍▌▋▊▉"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INSTALL_HINT = "pip install 'cnn-cli[plot]' (or pip install matplotlib)"
TOP = 3
BATCH = 1000

# ---------------------------------------------------------------- pure drawing


def digit_lines(image: np.ndarray, threshold: int = 128) -> list[str]:
    """A grayscale uint8 (H, W) image as ceil(H/2) strings of W half-block characters.

    A pixel is on when ≥ threshold; each character shows two pixel rows
    (▀ top only, ▄ bottom only, █ both, space neither). An odd last row is
    paired with an off row.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"digit_lines expects a 2-D image, got shape {image.shape}")
    on = image >= threshold
    if on.shape[0] % 2:
        on = np.vstack([on, np.zeros((1, on.shape[1]), dtype=bool)])
    codes = on[0::2].astype(np.int64) + 2 * on[1::2].astype(np.int64)
    return ["".join(BLOCKS[c] for c in row) for row in codes]


def framed(lines: Sequence[str]) -> list[str]:
    """Draw a box around equally wide lines, so the digit's blank margins show."""
    width = max((len(line) for line in lines), default=0)
    return ["┌" + "─" * width + "┐", *("│" + line.ljust(width) + "│" for line in lines), "└" + "─" * width + "┘"]


def bar(fraction: float, width: int = 20) -> str:
    """A horizontal bar of `width` characters at full scale, to the eighth of a character."""
    eighths = int(round(max(0.0, min(1.0, float(fraction))) * width * 8))
    full, rest = divmod(eighths, 8)
    return ("█" * full + (BAR_EIGHTHS[rest] if rest else "")).rstrip()


def class_label(c: int, names: Optional[Sequence[str]] = None) -> str:
    """Output unit ``c`` as shown: its class name when known (a checkpoint's dataset), else the number."""
    return str(names[c]) if names is not None and 0 <= c < len(names) else str(int(c))


def probability_lines(probs: np.ndarray, top: int = TOP, width: int = 20,
                      names: Optional[Sequence[str]] = None) -> list[str]:
    """The `top` most probable classes: class, percentage, bar (ties: lower class first)."""
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")[:top]
    shown = [class_label(int(c), names) for c in order]
    pad = max(len(t) for t in shown) if shown else 0
    return [f"{t.ljust(pad)}  {100 * probs[c]:5.1f}%  {bar(probs[c], width)}".rstrip() for t, c in zip(shown, order)]


def drawable(image: np.ndarray) -> np.ndarray:
    """A 2-D grayscale view of an (H, W) or (C, H, W) image: colour images are drawn by their luminance."""
    image = np.asarray(image)
    if image.ndim == 3:
        if image.shape[0] == 3:
            return np.round(image.astype(np.float64).transpose(1, 2, 0) @ [0.299, 0.587, 0.114]).astype(np.uint8)
        return image[0]
    return image


def side_by_side(left: Sequence[str], right: Sequence[str], gap: int = 3, top: int = 1) -> list[str]:
    """Right lines beside left lines (starting at left line `top`); trailing spaces stripped."""
    width = max((len(line) for line in left), default=0)
    rows = max(len(left), top + len(right))
    out = []
    for i in range(rows):
        l = left[i] if i < len(left) else ""
        r = right[i - top] if 0 <= i - top < len(right) else ""
        out.append((l.ljust(width) + " " * gap + r).rstrip() if r else l.rstrip())
    return out


def prediction_panel(image: np.ndarray, probs: np.ndarray, heading: str,
                     label: Optional[int] = None, threshold: int = 128,
                     names: Optional[Sequence[str]] = None) -> list[str]:
    """The framed image with heading, verdict and top-3 probabilities (class names when given) beside it."""
    probs = np.asarray(probs, dtype=np.float64)
    guess = int(np.argmax(probs))
    shown = class_label(guess, names)
    if label is None:
        verdict = f"predicted {shown}"
    elif guess == int(label):
        verdict = f"predicted {shown}  ✓ right"
    else:
        verdict = f"predicted {shown}  ✗ wrong (true {class_label(int(label), names)})"
    right = [heading, verdict, "", f"top {min(TOP, len(probs))}:", *probability_lines(probs, names=names)]
    return side_by_side(framed(digit_lines(drawable(image), threshold)), right)


# ---------------------------------------------------------------- PNG files → MNIST-like digits


def to_digit(pixels: np.ndarray, height: int = 28, width: int = 28) -> tuple[np.ndarray, list[str]]:
    """Any grayscale/RGB/RGBA image with values in [0, 1] → uint8 (height, width), white on black.

    Returns the digit and notes on what was done. Transparent images are
    composited over a background that contrasts with their strokes; a light
    border means a dark digit on paper, which is inverted. Then MNIST's own
    preprocessing (mnist_style.py): crop to the ink, fit into 20×20 keeping the
    aspect ratio, centre by mass in 28×28 — a digit filling its photo would
    otherwise come out larger than any MNIST digit.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    notes: list[str] = []
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        colour, alpha = pixels[:, :, :-1], pixels[:, :, -1]
        gray = _luminance(colour)
        if alpha.min() < 1.0:
            ink = alpha.sum()
            mean_ink = float((gray * alpha).sum() / ink) if ink > 0 else 0.0
            background = 1.0 if mean_ink < 0.5 else 0.0  # dark strokes over white, light over black
            gray = alpha * gray + (1.0 - alpha) * background
            notes.append("transparent pixels filled")
        pixels = gray
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = _luminance(pixels)
    elif pixels.ndim != 2:
        raise UserError(f"an image of shape {pixels.shape} is not a picture with 1–4 channels")
    if pixels.size == 0:
        raise UserError("the image has no pixels")
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 0.5:
        pixels = 1.0 - pixels
        notes.append("inverted (dark on light → white on black, as in MNIST)")
    styled = mnist_style(pixels, height, width)
    if styled.box is None:
        notes.append("no ink found: the image is blank")
    else:
        top, left, bottom, right = styled.box
        notes.append(f"cropped to the ink ({right - left}×{bottom - top} of {pixels.shape[1]}×{pixels.shape[0]}), "
                     f"fitted into {styled.fitted[1]}×{styled.fitted[0]} and centred by mass in {width}×{height}, "
                     f"as MNIST digits were made")
    return styled.digit, notes


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])[: rgb.shape[2]] / np.array([0.299, 0.587, 0.114])[: rgb.shape[2]].sum()


def read_png(path: Path) -> np.ndarray:
    """Pixels of a PNG file as floats in [0, 1], shape (H, W) or (H, W, C); every failure a UserError."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file; give the path of a PNG") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give the path of a PNG file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror or error})") from None
    if head != PNG_SIGNATURE:
        raise UserError(f"{path}: not a PNG file (no PNG signature); save the digit as .png")
    check_png_size(path)
    try:
        reader = _png_reader()
        pixels = np.asarray(reader(path))
    except UserError:
        raise
    except Exception as error:  # matplotlib/PIL raise many kinds for a damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path}: damaged or unsupported PNG ({reason}); save it again as an 8-bit PNG") from None
    if np.issubdtype(pixels.dtype, np.integer):
        pixels = pixels / float(np.iinfo(pixels.dtype).max)
    return pixels.astype(np.float64)


def check_png_size(path: Path) -> None:
    """Read the IHDR chunk ourselves and refuse pixel counts no digit needs, before any decoder
    allocates them (matplotlib opens PNGs without Pillow's decompression-bomb guard)."""
    import struct

    from ..limits import MAX_PNG_PIXELS, PNG_BYTES_PER_PIXEL, require_memory

    try:
        with open(path, "rb") as handle:
            chunk = handle.read(8 + 25)[8:]
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror or error})") from None
    if len(chunk) < 25 or chunk[4:8] != b"IHDR":
        raise UserError(f"{path}: damaged PNG (no IHDR header after the signature); save it again as a PNG")
    width, height = struct.unpack(">II", chunk[8:16])
    if width == 0 or height == 0:
        raise UserError(f"{path}: the PNG header says {width}×{height} pixels; an image needs at least 1×1")
    if width * height > MAX_PNG_PIXELS:
        raise UserError(f"{path}: {width:,}×{height:,} pixels, more than the {MAX_PNG_PIXELS:,} a digit image "
                        f"may have; scale it down (a digit needs about 28×28)")
    require_memory(width * height * PNG_BYTES_PER_PIXEL, f"{path}: decoding {width:,}×{height:,} pixels",
                   "scale the image down")


def _png_reader():
    try:
        import matplotlib.image as mpimg

        return mpimg.imread
    except ImportError:
        pass
    try:
        from PIL import Image

        def read(path):
            with Image.open(path) as img:
                return np.asarray(img.convert("RGBA" if "A" in img.getbands() else "RGB"))

        return read
    except ImportError:
        raise UserError(f"--image needs matplotlib (or Pillow) to read PNG files; {INSTALL_HINT}") from None


def load_digit_png(path: Path, height: int = 28, width: int = 28) -> tuple[np.ndarray, list[str]]:
    return to_digit(read_png(path), height, width)


# ---------------------------------------------------------------- model and data


def load_model(checkpoint: Path):
    """A checkpoint's model rebuilt from the config stored inside it (model.TrainedModel)."""
    from .trained import load_trained

    return load_trained(checkpoint)


PHOTO_DATASETS = ("cifar10", "folder")  # --image converts like their loader, not into an MNIST-like digit


def load_own_image(loaded, path: Path) -> tuple[np.ndarray, list[str]]:
    """(uint8 image the model takes, notes) for --image: an MNIST-like digit for the digit and
    clothing datasets; for photo datasets (cifar10, folder) what their loader would have made of it."""
    inp = loaded.config.input
    name = loaded.dataset.name if loaded.dataset is not None else "mnist"
    if name in PHOTO_DATASETS:
        from ..data.folder import read_image

        fit = loaded.config.data.get("fit", "pad") if name == "folder" else "resize"
        image = read_image(path, inp.channels, inp.height, inp.width, fit)
        return image, [f"read as {inp.channels}×{inp.height}×{inp.width} ({'resized' if fit == 'resize' else 'padded'})"]
    if inp.channels != 1:
        raise UserError(f"{loaded.source}: the model takes {inp.channels}-channel images; "
                        f"--image only makes grayscale digits")
    read_png(path)
    return load_digit_png(path, inp.height, inp.width)


def load_images(loaded, data_dir: Path, split: str, offline: bool,
                dataset: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    from ..data import check_same_dataset, load_split_for

    check_same_dataset(loaded.dataset, dataset, loaded.source)
    return load_split_for(loaded.config, data_dir, split, offline, info=loaded.dataset,
                          say=lambda text: print(text, file=sys.stderr))


def probabilities(loaded, images: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Softmax of the logits, (N, classes) float64, for uint8 images (N, H, W)."""
    out = []
    for start in range(0, len(images), batch):
        probs = loaded.model.predict_proba(loaded.prepare(images[start:start + batch]))
        out.append(probs.astype(np.float64))
    loaded.model.clear_caches()
    if not out:
        return np.zeros((0, loaded.config.num_classes))
    return np.concatenate(out)


def find_errors(loaded, images: np.ndarray, labels: np.ndarray, k: int) -> tuple[list[int], np.ndarray, int]:
    """(first k misclassified indices, their probabilities, total misclassified) over the whole split."""
    wrong: list[int] = []
    kept: list[np.ndarray] = []
    total = 0
    for start in range(0, len(labels), BATCH):
        probs = probabilities(loaded, images[start:start + BATCH])
        bad = np.flatnonzero(probs.argmax(axis=1) != labels[start:start + BATCH])
        total += len(bad)
        for i in bad:
            if len(wrong) < k:
                wrong.append(start + int(i))
                kept.append(probs[i])
    return wrong, (np.array(kept) if kept else np.zeros((0, loaded.config.num_classes))), total


# ---------------------------------------------------------------- the command


@dataclass
class PredictRequest:
    checkpoint: Path
    data_dir: Path
    split: str = "test"
    offline: bool = False
    index: Optional[int] = None
    random: Optional[int] = None
    image: Optional[Path] = None
    errors: Optional[int] = None
    seed: Optional[int] = None
    dataset: Optional[str] = None  # --dataset: must be the checkpoint's own
    notes: list[str] = field(default_factory=list)


def choose_mode(req: PredictRequest) -> str:
    given = [name for name, value in (("--index", req.index), ("--random", req.random),
                                      ("--image", req.image), ("--errors", req.errors)) if value is not None]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)}: choose one of --index, --random, --image, --errors")
    return given[0] if given else "--index"


def run_predict(req: PredictRequest) -> list[str]:
    """Everything `cnn predict` prints, as lines."""
    mode = choose_mode(req)
    if req.seed is not None and not 0 <= req.seed < 2 ** 63:
        raise UserError(f"--seed {req.seed}: must be a whole number from 0 to 2^63-1")
    if mode == "--image":
        image_path = Path(req.image)
        if not image_path.is_file():  # fails before the model is built
            raise UserError(f"{image_path}: no such image file; give the path of a PNG")
    loaded = load_model(req.checkpoint)
    if mode == "--image":
        digit, notes = load_own_image(loaded, image_path)
        probs = probabilities(loaded, digit[None])[0]
        lines = prediction_panel(digit, probs, str(image_path),
                                 names=loaded.dataset.classes if loaded.dataset is not None else None)
        if notes:
            lines.append("note: " + "; ".join(notes))
        return lines

    images, labels = load_images(loaded, req.data_dir, req.split, req.offline, req.dataset)
    names = loaded.dataset.classes if loaded.dataset is not None else None
    n = len(labels)
    if n == 0:
        raise UserError(f"{req.data_dir}: the {req.split} split has no images")
    lines: list[str] = []
    if mode == "--errors":
        wrong, probs, total = find_errors(loaded, images, labels, req.errors)
        if total == 0:
            return [f"no misclassified digits: all {n:,} {req.split} images are right"]
        for i, p in zip(wrong, probs):
            lines += prediction_panel(images[i], p, f"{req.split} #{i}: label {class_label(int(labels[i]), names)}",
                                      int(labels[i]), names=names)
            lines.append("")
        more = f"; showing the first {len(wrong)}" if total > len(wrong) else ""
        lines.append(f"{total:,} of {n:,} {req.split} images misclassified "
                     f"({100 * total / n:.2f}%){more}")
        return lines
    if mode == "--random":
        seed = req.seed if req.seed is not None else int(np.random.SeedSequence().entropy % 1_000_000)
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(n, size=min(req.random, n), replace=False).tolist())
        note = f"{len(chosen)} random {req.split} digits (--seed {seed})"
    else:
        index = 0 if req.index is None else req.index
        if not 0 <= index < n:
            raise UserError(f"--index {index}: the {req.split} split has {n:,} images (0–{n - 1:,})")
        chosen, note = [index], None
    probs = probabilities(loaded, images[chosen])
    right = 0
    for i, p in zip(chosen, probs):
        lines += prediction_panel(images[i], p, f"{req.split} #{i}: label {class_label(int(labels[i]), names)}",
                                  int(labels[i]), names=names)
        right += int(np.argmax(p)) == int(labels[i])
        if len(chosen) > 1:
            lines.append("")
    if note:
        lines.append(f"{note}: {right} of {len(chosen)} right")
    return lines


# ---------------------------------------------------------------- feature maps (for `cnn show`)


def feature_maps(loaded, digit: np.ndarray) -> tuple[np.ndarray, list[tuple[str, str, np.ndarray]], np.ndarray]:
    """(model input (H, W), [(layer name, kind, maps (C, H, W)) for conv/pool layers], probabilities).

    Runs one uint8 digit (H, W) through the layers one by one.
    """
    x = loaded.prepare(digit[None])
    model_input = x[0, 0].astype(np.float64)
    maps = []
    for layer in loaded.model.layers:
        x = layer.forward(x)
        if layer.family in ("conv", "pool", "subsample"):
            maps.append((layer.name, layer.family, np.asarray(x[0], dtype=np.float64).copy()))
    loaded.model.clear_caches()
    from ..kernels.loss import softmax

    return model_input, maps, softmax(x).astype(np.float64)[0]


def first_conv_filters(loaded) -> tuple[str, list[tuple[str, np.ndarray]]]:
    """(layer name, [(label, 2-D kernel)]) of the first conv layer (input channel 0 of each filter)."""
    layer = next((l for l in loaded.model.layers if l.family == "conv"), None)
    if layer is None:
        raise UserError(f"{loaded.source}: the network has no conv layer to show")
    weight = np.asarray(layer.params["weight"], dtype=np.float64)
    if weight.ndim == 4:  # (filters, channels, kh, kw)
        kernels = [(f"{f}" if weight.shape[1] == 1 else f"{f}·c0", weight[f, 0]) for f in range(weight.shape[0])]
    else:  # connection table: (connections, kh, kw) in filter-major order
        kernels = [(f"#{i}", weight[i]) for i in range(weight.shape[0])]
    return layer.name, kernels
