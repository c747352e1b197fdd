"""Entry script that writes bytes that are not text (invalid UTF-8, NUL, a lone surrogate)
to stdout and stderr, in init() and in run()."""

import os
import sys

GARBAGE = bytes(range(256)) * 4 + b"\xff\xfe\x00\x80\n"


def init():
    os.write(1, GARBAGE)


def run(mini_batch):
    sys.stdout.buffer.write(GARBAGE)
    sys.stdout.flush()
    os.write(2, GARBAGE)
    print("\udcff lone surrogate", flush=True)
    print("\udcff lone surrogate", file=sys.stderr, flush=True)
    return [f"{os.path.basename(path)} ok" for path in mini_batch]
