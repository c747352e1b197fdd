"""An entry script whose run() takes the mini-batch context and returns a DataFrame."""

import pandas as pd


def run(mini_batch, mini_batch_context):
    keys = ",".join(f"{k}={v}" for k, v in sorted(mini_batch_context.partition_key_value.items()))
    return pd.DataFrame(
        {
            "index": [mini_batch_context.minibatch_index] * len(mini_batch),
            "keys": [keys] * len(mini_batch),
            "name": [path.rsplit("/", 1)[-1] for path in mini_batch],
        }
    )
