"""`cnn export`: a trained checkpoint as an ONNX model or a PyTorch state_dict.

ONNX needs only the `onnx` package (the `onnx` extra) and is built from the
checkpoint's config and arrays without the kernels (commands/onnx_graph.py).
`--format torch` fills the PyTorch twin of the network (reference/torch_model.py)
with the checkpoint's weights through `copy_weights` and saves its state_dict.
Files are written atomically: a failure never leaves a half-written model.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import __version__
from ..io import write_atomically
from ..nn.checkpoint import load_checkpoint
from ..spec.datasets import info_from_meta
from ..spec.config import validate_config
from ..errors import UserError

FORMATS = {"onnx": ".onnx", "torch": ".pt"}
ONNX_INSTALL = "pip install 'cnn-cli[onnx]' (or pip install onnx onnxruntime)"


@dataclass
class Exported:
    path: Path
    summary: str


def output_path(checkpoint: Path, fmt: str, out: Optional[Path]) -> Path:
    """--out, or <checkpoint stem>.onnx/.pt beside the checkpoint (inside --out when it is a folder)."""
    default_name = checkpoint.with_suffix(FORMATS[fmt]).name
    if out is None:
        return checkpoint.with_name(default_name)
    out = Path(out)
    if out.is_dir():
        return out / default_name
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another path")
    return out


def require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserError(f"--format onnx: the onnx package is not installed; install it with {ONNX_INSTALL}") from None


def run_export(checkpoint: Path, fmt: str = "onnx", out: Optional[Path] = None) -> Exported:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: choose onnx or torch")
    checkpoint = Path(checkpoint)
    path = output_path(checkpoint, fmt, out)
    if fmt == "onnx":
        require_onnx()
        return export_onnx(checkpoint, path)
    from ..reference.torch_model import require_torch

    require_torch("--format torch")
    return export_torch(checkpoint, path)


def export_onnx(checkpoint: Path, path: Path) -> Exported:
    from .onnx_graph import OPSET, build_onnx

    ckpt = load_checkpoint(checkpoint)
    config = validate_config(ckpt.config, f"{checkpoint} (config.json)")
    try:
        info = info_from_meta(ckpt.meta)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{checkpoint}: damaged dataset record in meta.json ({error}); train again") from None
    model = build_onnx(config, ckpt.weights, str(checkpoint), __version__, info)
    data = model.SerializeToString()
    write_atomically(path, lambda handle: handle.write(data))
    inp = config.input
    return Exported(path, f"wrote {path}: ONNX opset {OPSET}, input 'pixels' float32 N×{inp.channels}×{inp.height}"
                          f"×{inp.width} in 0-255 (normalisation and padding inside), outputs 'logits' and "
                          f"'probabilities' over {config.num_classes} classes")


def export_torch(checkpoint: Path, path: Path) -> Exported:
    import torch

    from .trained import load_trained
    from ..reference.torch_model import build_torch_model, copy_weights

    loaded = load_trained(checkpoint)
    net = build_torch_model(loaded.config)
    copy_weights(loaded.model, net)
    state = net.state_dict()
    # Serialise first, so a failing torch.save leaves no temporary file behind either.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))
    return Exported(path, f"wrote {path}: PyTorch state_dict of {len(state)} tensors for "
                          f"cnn_cli.reference.torch_model.build_torch_model(config); its input is the prepared image "
                          f"(÷255, normalised, padded to {'×'.join(map(str, loaded.config.input.shape))})")
