"""Entry script: one small forecasting model per store and brand.

With `partition_keys=["store", "brand"]`, each mini-batch is a DataFrame holding every row of
one store and brand, and `run()` gets a second argument telling which one. It fits a straight
line of units over weeks to that partition alone and returns each row with the line's value
and the partition it was fitted on, as the context gave it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prefect_parallelrun import EntryScript


def run(mini_batch: pd.DataFrame, mini_batch_context: Any) -> pd.DataFrame:
    partition = mini_batch_context.partition_key_value
    rows = mini_batch.sort_values("week")
    slope, intercept = np.polyfit(rows["week"], rows["units"], deg=1)
    EntryScript().logger.info(
        "run: store %s, brand %s: %d weeks, %+.1f units a week",
        partition["store"], partition["brand"], len(rows), slope,
    )
    return rows.assign(
        fitted_units=(intercept + slope * rows["week"]).round(1),
        partition=f"{partition['store']}/{partition['brand']}",
        mini_batch=mini_batch_context.minibatch_index,
    )
