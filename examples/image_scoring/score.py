"""Entry script: predict the digit in each PNG image of a mini-batch.

Written as for Azure ML: `init()` loads the model once per process, `run()` returns one
line per image, "<file name> <predicted digit>".
"""

from __future__ import annotations

import argparse
import os
import pickle
from typing import Any

import numpy as np
from azureml_user.parallel_run import EntryScript
from PIL import Image

# The model was trained on pixels from 0 to 16; the PNG files hold grey levels from 0 to 255.
PIXEL_SCALE = 16 / 255

model: Any = None


def init() -> None:
    global model
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="The pickled classifier.")
    args, _ = parser.parse_known_args()
    with open(args.model, "rb") as file:
        model = pickle.load(file)
    EntryScript().logger.info("init: loaded the model from %s", args.model)


def run(mini_batch: list[str]) -> list[str]:
    pixels = np.stack(
        [np.asarray(Image.open(path).convert("L"), dtype=float).ravel() for path in mini_batch]
    )
    predictions = model.predict(pixels * PIXEL_SCALE)
    EntryScript().logger.info("run: %d images", len(mini_batch))
    return [
        f"{os.path.basename(path)} {int(digit)}"
        for path, digit in zip(mini_batch, predictions, strict=True)
    ]
