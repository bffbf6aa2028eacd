"""A trained model ready for images: a checkpoint's network, rebuilt from the config
stored inside it, with the preparation its training data had and the dataset it
knows (what eval, predict, show, serve and export start from)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data import info_from_meta, make_preparer
from ..errors import UserError
from ..limits import require_network_fits
from ..nn.checkpoint import load_checkpoint
from ..nn.model import Model
from ..spec.config import Config, validate_config


@dataclass
class TrainedModel:
    model: Model
    config: Config
    prepare: Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W) or (N, C, H, W) → the model's float input
    source: str
    dataset: Any = None  # data.registry.DatasetInfo: what it was trained on (old checkpoints: MNIST)

    def class_name(self, index: int) -> str:
        """The label shown for output unit ``index``: the dataset's class name, else the number."""
        classes = self.dataset.classes if self.dataset is not None else ()
        return classes[index] if 0 <= index < len(classes) else str(index)


def load_trained(checkpoint: str | Path) -> TrainedModel:
    """A checkpoint's model, rebuilt from the config stored inside it, weights loaded."""
    ckpt = load_checkpoint(checkpoint)
    config = validate_config(ckpt.config, f"{checkpoint} (config.json)")
    require_network_fits(config, 1000, False, f"{checkpoint}: the network in config.json")  # predict's batch
    model = Model(config)
    model.load_state_dict(ckpt.weights, str(checkpoint))
    try:
        info = info_from_meta(ckpt.meta)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{checkpoint}: damaged dataset record in meta.json ({error}); train again") from None
    return TrainedModel(model, config, make_preparer(config, info), str(checkpoint), info)
