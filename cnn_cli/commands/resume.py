"""Resuming a run: which settings a checkpoint fixes, and the config it resumes with."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..limits import short_repr
from ..nn.checkpoint import load_checkpoint
from ..spec.config import Config, validate_config


RESUME_INVARIANTS = (("train", "seed"), ("train", "batch_size"), ("data", "val_split"), ("data", "dataset"))
SAVED_DEFAULTS = {("data", "dataset"): "mnist"}  # checkpoints written before the key existed


def check_resume_compatible(config: Config, saved: dict, path: Path) -> None:
    """The settings that fix the data order or split must be the checkpoint's own."""
    for section, key in RESUME_INVARIANTS:
        part = saved.get(section) if isinstance(saved, dict) else None
        before = part.get(key, SAVED_DEFAULTS.get((section, key))) if isinstance(part, dict) else None
        now = config.resolved[section][key]
        if before != now:
            shown = short_repr(before)
            raise UserError(f"{path}: was trained with {section}.{key} = {shown}, not {short_repr(now)}; resuming with another "
                            f"value would change the data order or split — keep {shown}, or start a new run")


def config_for_resume(checkpoint_path: Path, sets) -> Config:
    """The config a checkpoint was trained with, plus any command-line overrides."""
    from ..spec.config import apply_overrides

    checkpoint = load_checkpoint(checkpoint_path)
    resolved = apply_overrides(checkpoint.config, sets) if sets else checkpoint.config
    return validate_config(resolved, f"{checkpoint_path} (config.json)")
