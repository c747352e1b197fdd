"""Demo entry script: "scores" each text file by counting its words.

The same shape as an Azure ML batch-inference script: init() once per process, run() per
mini-batch, one result row per input file.
"""

import argparse
import os

from azureml_user.parallel_run import EntryScript

multiplier = 1


def init():
    global multiplier
    parser = argparse.ArgumentParser()
    parser.add_argument("--multiplier", type=int, default=1)
    args, _ = parser.parse_known_args()
    multiplier = args.multiplier
    EntryScript().logger.info("init: multiplier=%d", multiplier)


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as file:
            words = len(file.read().split())
        rows.append(f"{os.path.basename(path)} {words * multiplier}")
    return rows
