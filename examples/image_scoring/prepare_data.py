"""Inputs for the image scoring example: scikit-learn's digits as PNG files, and a classifier.

scikit-learn ships the 1,797 8x8 digit images with the package, so nothing is downloaded.
The images written as PNG files are held out: the classifier is trained on the others.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.svm import SVC

# load_digits' pixels run from 0 to 16; PNG grey levels from 0 to 255.
PIXEL_SCALE = 255 / 16


def write_digit_images(folder: Path, labels_file: Path, count: int) -> None:
    """Write the first `count` digits as `digit-<n>.png` and their true labels as a CSV file.

    Does nothing when the folder already holds exactly those images.
    """
    digits = load_digits()
    count = min(count, len(digits.images) // 2)
    names = [f"digit-{number:04d}.png" for number in range(count)]
    if labels_file.exists() and sorted(path.name for path in folder.glob("*.png")) == names:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):
        stale.unlink()
    for name, pixels in zip(names, digits.images[:count], strict=True):
        grey = np.rint(pixels * PIXEL_SCALE).astype(np.uint8)
        Image.fromarray(grey, mode="L").save(folder / name)
    with labels_file.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "label"])
        writer.writerows(zip(names, digits.target[:count].tolist(), strict=True))


def train_model(model_file: Path) -> None:
    """Train a support vector classifier on the second half of the digits and pickle it."""
    digits = load_digits()
    held_out = len(digits.images) // 2
    model = SVC(gamma=0.001)
    model.fit(digits.data[held_out:], digits.target[held_out:])
    model_file.parent.mkdir(parents=True, exist_ok=True)
    with model_file.open("wb") as file:
        pickle.dump(model, file)
