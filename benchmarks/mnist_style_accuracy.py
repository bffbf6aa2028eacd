"""Accuracy on test digits that fill their picture: resized whole (the old `cnn predict --image`)
against MNIST-style preprocessing (cnn_cli/mnist_style.py).

    python benchmarks/mnist_style_accuracy.py CHECKPOINT DATA_DIR

Each test digit is cropped to its ink, padded to a square and enlarged to 84×84:
a digit that fills its photo. Not a timing: an accuracy experiment.
"""

import sys

import numpy as np

from cnn_cli.data import load_split
from cnn_cli.data.mnist_style import area_resize, ink_box, mnist_style
from cnn_cli.commands.trained import load_trained
from cnn_cli.commands.predict import probabilities


def filling(image: np.ndarray, size: int = 84) -> np.ndarray:
    top, left, bottom, right = ink_box(image / 255.0)
    crop = image[top:bottom, left:right] / 255.0
    side = max(crop.shape)
    square = np.zeros((side, side))
    y, x = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
    return area_resize(square, size, size)


def main(checkpoint: str, data_dir: str) -> None:
    loaded = load_trained(checkpoint)
    images, labels = load_split(data_dir, "test")
    photos = [filling(image) for image in images]
    resized = np.array([np.clip(np.rint(area_resize(p, 28, 28) * 255), 0, 255).astype(np.uint8) for p in photos])
    styled = np.array([mnist_style(p).digit for p in photos])
    for name, x in [("test digits as they are", images), ("filling the picture, resized whole", resized),
                    ("filling the picture, MNIST-style", styled)]:
        print(f"{name}: {100 * (probabilities(loaded, x).argmax(1) == labels).mean():.1f} %")


if __name__ == "__main__":
    main(*sys.argv[1:3])
