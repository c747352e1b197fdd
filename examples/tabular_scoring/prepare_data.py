"""Inputs for the tabular scoring example: scikit-learn's iris as CSV files, and a classifier.

scikit-learn ships the 150 iris flowers with the package, so nothing is downloaded. The CSV
files repeat them to the number of rows asked for, each row with its own `row_id`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_table() -> pd.DataFrame:
    """The 150 flowers: the four measurements in centimetres and the species name."""
    iris = load_iris()
    table = pd.DataFrame(iris.data, columns=FEATURES)
    table["species"] = iris.target_names[iris.target]
    return table


def write_iris_files(folder: Path, rows: int, files: int) -> None:
    """Write `rows` rows, cycling through the flowers, split evenly over `files` CSV files.

    Does nothing when the folder already holds exactly those rows.
    """
    if _holds(folder, rows, files):
        return
    flowers = iris_table()
    table = flowers.iloc[[row % len(flowers) for row in range(rows)]].reset_index(drop=True)
    table.insert(0, "row_id", range(rows))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.csv"):
        stale.unlink()
    per_file = -(-rows // files)
    for number in range(files):
        part = table.iloc[number * per_file : (number + 1) * per_file]
        part.to_csv(folder / f"iris-{number}.csv", index=False)


def _holds(folder: Path, rows: int, files: int) -> bool:
    existing = sorted(folder.glob("*.csv"))
    if len(existing) != files:
        return False
    return sum(len(pd.read_csv(path)) for path in existing) == rows


def train_model(model_file: Path) -> None:
    """Train a logistic regression on the flowers and pickle it."""
    flowers = iris_table()
    model = LogisticRegression(max_iter=1000)
    model.fit(flowers[FEATURES], flowers["species"])
    model_file.parent.mkdir(parents=True, exist_ok=True)
    with model_file.open("wb") as file:
        pickle.dump(model, file)
