"""An entry-script process: `python -m prefect_parallelrun.execute.child`.

Started by a worker's `ProcessSlot` (through `EntryScriptProcess`, `entry_process.py`), it
loads the user's script once (`loaded_script.py`), calls `init()` once, then serves
mini-batches one at a time until the worker asks it to shut down or goes away. A watch kills
the process group if the worker dies; how often it looks comes on the command line, so that it
watches before anything is read. The protocol is in `protocol.py`; stdout and stderr are the
user's (redirected to files).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from prefect_parallelrun.execute.loaded_script import LoadedScript
from prefect_parallelrun.execute.protocol import ProcessStart, Ready, ShutdownRequest
from prefect_parallelrun.execute.script_errors import start_failed


def main(argv: list[str] | None = None) -> int:
    """Serve one worker until it asks for a shutdown or goes away.

    The command line names the pipes to the worker and how to watch it; everything else
    (the script, its settings) comes in the `ProcessStart` message. Exceptions raised by the
    script are sent back as replies, never raised here.

    Args:
        argv: The command-line arguments; None: `sys.argv[1:]`.

    Returns:
        The exit code: 0 after a shutdown or when the worker closed the pipe, 1 when the
        script could not be imported or its init() raised.
    """
    args = _parse_args(argv)
    _exit_when_orphaned(args.parent_pid, args.orphan_check_seconds)
    requests = Connection(args.requests_fd, writable=False)
    replies = Connection(args.replies_fd, readable=False)
    script = _start(requests.recv(), replies)
    if script is None:
        return 1
    while True:
        try:
            message = requests.recv()
        except EOFError:
            return 0
        if isinstance(message, ShutdownRequest):
            replies.send(script.shutdown())
            return 0
        replies.send(script.run_mini_batch(message, replies))


def _start(start: ProcessStart, replies: Connection) -> LoadedScript | None:
    """Import the script and call its init(); say how it went."""
    try:
        script = LoadedScript.load(start)
    except (Exception, SystemExit) as exc:
        replies.send(start_failed(exc, "Importing the entry script"))
        return None
    try:
        script.init()
    except (Exception, SystemExit) as exc:
        replies.send(start_failed(exc, "init()"))
        return None
    replies.send(Ready())
    return script


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="prefect_parallelrun.execute.child")
    parser.add_argument("--job-id", required=True, help="Shown by ps; not used otherwise.")
    parser.add_argument("--process", required=True, help="Shown by ps; not used otherwise.")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--requests-fd", type=int, required=True)
    parser.add_argument("--replies-fd", type=int, required=True)
    parser.add_argument("--orphan-check-seconds", type=float, required=True)
    return parser.parse_args(argv)


def _exit_when_orphaned(parent_pid: int, check_seconds: float) -> None:
    # A worker killed outright cannot stop its processes; each one notices that it has been
    # re-parented and kills its own process group (itself and whatever the script started).
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(check_seconds)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="exit-when-orphaned", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
