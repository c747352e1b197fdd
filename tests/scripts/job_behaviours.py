"""Entry script for job tests: each item (a small file) says what run() does with it.

Item texts: "ok", "fail-times N" (raise on the first N attempts, counted in $COUNTER_DIR),
"raise", "sleep S", "sleep-once S" (sleep on the first attempt only), "exit CODE",
"skip" (no result row), "row TEXT" (that row), "worker-pid" (write the Dask worker's pid to
$WORKER_PID_FILE, then sleep a second).
Every run() call appends its item names to $CALLS_FILE, one line per call.
"""

import os
import time
from pathlib import Path


def init():
    pass


def run(mini_batch):
    names = [Path(path).name for path in mini_batch]
    with open(os.environ["CALLS_FILE"], "a") as calls:
        calls.write(" ".join(names) + "\n")
    rows = []
    for path in mini_batch:
        name = Path(path).name
        command, _, value = Path(path).read_text().strip().partition(" ")
        if command == "fail-times":
            counter = Path(os.environ["COUNTER_DIR"]) / name
            count = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(count))
            if count <= int(value):
                raise RuntimeError(f"{name} failed on purpose, attempt {count}")
        elif command == "raise":
            raise ValueError(f"cannot score {name}")
        elif command == "sleep":
            time.sleep(float(value))
        elif command == "sleep-once":
            counter = Path(os.environ["COUNTER_DIR"]) / name
            if not counter.exists():
                counter.write_text("1")
                time.sleep(float(value))
        elif command == "worker-pid":
            Path(os.environ["WORKER_PID_FILE"]).write_text(str(os.getppid()))
            time.sleep(1)
        elif command == "exit":
            os._exit(int(value))
        elif command == "skip":
            continue
        elif command == "row":
            rows.append(value)
            continue
        rows.append(f"{name} ok")
    return rows
