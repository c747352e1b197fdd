"""Inputs for the partition-per-column example: weekly orange juice sales of a few stores and
brands, generated with a fixed seed, in CSV files that each hold a range of weeks.

Every file mixes all stores and brands, so each (store, brand) partition gathers its rows
from every file.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

STORES = [1001, 1002, 1003]
BRANDS = ["dominicks", "minute.maid", "tropicana"]


def sales_table(weeks: int) -> pd.DataFrame:
    """One row per week, store and brand: units sold around a trend of the pair's own."""
    generator = random.Random(7)
    trends = {
        (store, brand): (generator.uniform(200, 400), generator.uniform(-4, 4))
        for store in STORES
        for brand in BRANDS
    }
    rows = [
        (week, store, brand, max(0, round(base + slope * week + generator.gauss(0, 10))))
        for week in range(1, weeks + 1)
        for (store, brand), (base, slope) in trends.items()
    ]
    return pd.DataFrame(rows, columns=["week", "store", "brand", "units"])


def write_sales_files(folder: Path, weeks: int, files: int) -> None:
    """Write `weeks` weeks of sales split by week range over `files` CSV files.

    Does nothing when the folder already holds exactly those weeks.
    """
    table = sales_table(weeks)
    if _holds(folder, len(table), files):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.csv"):
        stale.unlink()
    per_file = -(-weeks // files)
    for number in range(files):
        first, last = number * per_file + 1, (number + 1) * per_file
        part = table[table["week"].between(first, last)]
        part.to_csv(folder / f"sales-{number}.csv", index=False)


def _holds(folder: Path, rows: int, files: int) -> bool:
    existing = sorted(folder.glob("*.csv"))
    if len(existing) != files:
        return False
    return sum(len(pd.read_csv(path)) for path in existing) == rows
