"""Benchmark entry script: each mini-batch costs $BUSY_SECONDS of work ($BUSY_KIND).

cpu: hashing, which releases the GIL, until this thread has used the CPU time; so two threads
     of one Dask worker and two entry-script processes both keep two cores busy.
sleep: waiting, like a call to a GPU or a remote service; the cores stay free.
"""

import hashlib
import os
import time

SECONDS = float(os.environ.get("BUSY_SECONDS", "0.1"))
KIND = os.environ.get("BUSY_KIND", "cpu")
_BLOCK = b"x" * (256 * 1024)


def busy(seconds: float, kind: str = "cpu") -> None:
    if kind == "sleep":
        time.sleep(seconds)
        return
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(_BLOCK).digest()


def run(mini_batch):
    busy(SECONDS, KIND)
    return [len(mini_batch)]
