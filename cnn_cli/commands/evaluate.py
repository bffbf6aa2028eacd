"""Scoring a model on a labelled set: loss, accuracy, per-class accuracy, confusion."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..kernels.loss import softmax_cross_entropy
from .progress import compile_notice

EVAL_BATCH = 1000  # large batches: no backward pass, so memory is only activations


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    samples: int
    per_class: list[float]  # accuracy per true class (NaN-free: 0 when a class is absent)
    confusion: list[list[int]]  # confusion[true][predicted]
    dataset: Optional[str] = None  # what the checkpoint was trained on (eval_checkpoint fills these two)
    classes: Optional[list[str]] = None  # the name of each class, in label order

    def class_names(self) -> list[str]:
        n = len(self.per_class)
        given = list(self.classes or [])
        return [given[c] if c < len(given) else str(c) for c in range(n)]

    def to_json(self) -> dict:
        out = {"accuracy": self.accuracy, "loss": self.loss, "samples": self.samples,
               "per_class": self.per_class, "confusion": self.confusion}
        if self.dataset is not None:
            out.update(dataset=self.dataset, classes=self.class_names())
        return out


def evaluate(model, images: np.ndarray, labels: np.ndarray, prepare, batch_size: int = EVAL_BATCH) -> Evaluation:
    """`prepare` turns a uint8 batch of images into the model's float input."""
    classes = model.config.num_classes
    confusion = np.zeros((classes, classes), dtype=np.int64)
    loss_sum = 0.0
    for start in range(0, len(labels), batch_size):
        y = labels[start:start + batch_size]
        logits = model.forward(prepare(images[start:start + batch_size]))
        loss, _ = model.loss(logits, y) if hasattr(model, "loss") else softmax_cross_entropy(logits, y)
        loss_sum += float(loss) * len(y)
        np.add.at(confusion, (y, logits.argmax(axis=1)), 1)
    model.clear_caches()
    samples = int(len(labels))
    totals = confusion.sum(axis=1)
    per_class = [float(confusion[c, c] / totals[c]) if totals[c] else 0.0 for c in range(classes)]
    return Evaluation(
        loss=loss_sum / max(samples, 1),
        accuracy=float(np.trace(confusion) / max(samples, 1)),
        samples=samples,
        per_class=per_class,
        confusion=confusion.tolist(),
    )


def evaluate_checkpoint(path, data_dir, split: str, offline: bool, dataset: Optional[str] = None) -> Evaluation:
    """Load a checkpoint, rebuild its model from the config inside, score one split of its own dataset.

    ``dataset`` (--dataset) must name the dataset the checkpoint was trained on, else it is refused."""
    from ..data import check_same_dataset, load_split_for
    from .trained import load_trained

    trained = load_trained(path)
    check_same_dataset(trained.dataset, dataset, path)
    images, labels = load_split_for(trained.config, data_dir, split, offline, info=trained.dataset,
                                    say=lambda text: print(text, file=sys.stderr, flush=True))
    with compile_notice(lambda text: print(text, file=sys.stderr, flush=True)):
        # One image through every kernel first: loaded from Numba's cache, or
        # compiled (then said on stderr, which --json leaves alone).
        softmax_cross_entropy(trained.model.forward(trained.prepare(images[:1])), labels[:1])
    result = evaluate(trained.model, images, labels, trained.prepare)
    result.dataset, result.classes = trained.dataset.name, list(trained.dataset.classes)
    return result
