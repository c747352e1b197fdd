"""Benchmark entry script for start-up: run() returns its mini-batch, and the first call of the
whole job writes the time it finished into the file named by $BENCH_FIRST_RESULT (created
once: later calls, in any process, find it there). The references call run_marked() with
that file's path, the same way."""

import os
import time


def mark_first_result(marker: str) -> None:
    try:
        handle = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    with os.fdopen(handle, "w") as file:
        file.write(repr(time.time()))


def run(mini_batch: list) -> list:
    mark_first_result(os.environ["BENCH_FIRST_RESULT"])
    return mini_batch


def run_marked(mini_batch: list, marker: str) -> list:
    mark_first_result(marker)
    return mini_batch
