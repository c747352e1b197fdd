"""Benchmark entry script: each mini-batch costs a fixed amount of CPU time ($BUSY_SECONDS)."""

import os
import time

SECONDS = float(os.environ.get("BUSY_SECONDS", "0.1"))


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def run(mini_batch):
    busy(SECONDS)
    return [len(mini_batch)]
