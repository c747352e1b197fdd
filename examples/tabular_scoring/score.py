"""Entry script: predict the species of each iris flower in a mini-batch of rows.

A tabular input gives `run()` a pandas DataFrame; the DataFrame it returns becomes the output
file's lines, one per row, values separated by spaces.
"""

from __future__ import annotations

import argparse
import pickle
from typing import Any

import pandas as pd

from prefect_parallelrun import EntryScript

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

model: Any = None


def init() -> None:
    global model
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="The pickled classifier.")
    args, _ = parser.parse_known_args()
    with open(args.model, "rb") as file:
        model = pickle.load(file)
    EntryScript().logger.info("init: loaded the model from %s", args.model)


def run(mini_batch: pd.DataFrame) -> pd.DataFrame:
    predicted = model.predict(mini_batch[FEATURES])
    return mini_batch.assign(predicted_species=predicted)
