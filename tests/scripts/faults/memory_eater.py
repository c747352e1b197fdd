"""Entry script whose run() allocates memory until it cannot, for items that say "eat";
init() caps this process's address space (RLIMIT_AS) first, so the machine is never at risk.
Other items succeed."""

import resource
from pathlib import Path

LIMIT_BYTES = 1024 * 1024 * 1024


def init():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def run(mini_batch):
    rows = []
    for path in mini_batch:
        if Path(path).read_text().strip() == "eat":
            hoard = []
            while True:
                hoard.append(bytearray(16 * 1024 * 1024))
        rows.append(f"{Path(path).name} ok")
    return rows
