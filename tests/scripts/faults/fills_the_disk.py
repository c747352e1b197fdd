"""Entry script for a full disk during commit. Items say "ok" or "fill".

For "fill", run() waits until $COMMITTED_BEFORE_FILL mini-batches are committed (their commit
records in $LEDGER_DIR), then, once per job ($COUNTER_DIR marker), fills the filesystem of
$FILL_PATH, leaving one page free: room for this attempt's staged rows, none for its commit.
Every run() call appends its item names to $CALLS_FILE.
"""

import os
import time
from pathlib import Path

PAGE = 4096


def run(mini_batch):
    with open(os.environ["CALLS_FILE"], "a") as calls:
        calls.write(" ".join(Path(path).name for path in mini_batch) + "\n")
    rows = []
    for path in mini_batch:
        if Path(path).read_text().strip() == "fill":
            _wait_for_earlier_commits()
            marker = Path(os.environ["COUNTER_DIR"]) / "filled"
            if not marker.exists():
                marker.write_text("1")
                _fill(os.environ["FILL_PATH"])
        rows.append(f"{Path(path).name} ok")
    return rows


def _wait_for_earlier_commits():
    ledger = Path(os.environ["LEDGER_DIR"])
    deadline = time.monotonic() + 120
    while len(list(ledger.glob("*.json"))) < int(os.environ["COMMITTED_BEFORE_FILL"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the earlier mini-batches were not committed in {ledger}")
        time.sleep(0.1)


def _fill(path):
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(b"x" * PAGE)
                filler.flush()
        except OSError:
            pass
    size = os.path.getsize(path)
    os.truncate(path, max(0, size - PAGE))
