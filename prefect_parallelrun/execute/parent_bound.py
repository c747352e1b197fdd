"""Run a Python module for as long as the process that started it lives.

`python -m prefect_parallelrun.execute.parent_bound --parent-pid PID MODULE ARGS...` runs
MODULE as `python -m MODULE ARGS...` would, in this same process (same PID, same exit code),
with a thread that checks every `CHECK_SECONDS` that PID is still this process's parent. Once
it is not (the parent exited, or was killed outright by SIGKILL or the out-of-memory killer,
and this process was adopted by init or a subreaper), the thread sends this process SIGTERM,
which a server such as uvicorn takes as the order to shut down cleanly, and kills it if it is
still there `SHUTDOWN_GRACE_SECONDS` later.

Prefect's embedded API server is started this way (dispatch/embedded_api.py). It runs in a
session of its own, so that Ctrl-C in a terminal does not stop it mid-job; without this, a
script killed outright would leave it running for ever. A thread in the server itself, not a
watcher process beside it: nothing else to stop, and nothing that a kill of the watcher would
leave behind. The parent is compared with the PID it was given, not with the parent seen at
start, so a parent that died before the check began is noticed too.

The module lives in the execute stage, whose package imports nothing: the server process
pays for no more than this file before the module it runs.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

MODULE = "prefect_parallelrun.execute.parent_bound"
CHECK_SECONDS = 1.0
SHUTDOWN_GRACE_SECONDS = 10.0


def parent_bound_command(command: list[str], parent_pid: int) -> list[str]:
    """The same `python [options] -m MODULE ARGS...` command, bound to `parent_pid`.

    Args:
        command: The command line, as for `subprocess.Popen`.
        parent_pid: The process whose end should end the command's process: the one that
            starts it.

    Returns:
        The command run through this module; a command that runs no module (no `-m`) is
        returned as it is.
    """
    if "-m" not in command:
        return command
    at = command.index("-m")
    return [*command[:at], "-m", MODULE, "--parent-pid", str(parent_pid), *command[at + 1:]]


def main(arguments: list[str]) -> None:
    """Start the parent check, then run the module with its arguments.

    Args:
        arguments: `--parent-pid PID MODULE ARGS...`, as `parent_bound_command` writes them.

    Raises:
        SystemExit: The arguments are not of that form; or as the module itself exits.
    """
    if len(arguments) < 3 or arguments[0] != "--parent-pid" or not arguments[1].isdigit():
        raise SystemExit(f"usage: python -m {MODULE} --parent-pid PID MODULE [ARGS...]")
    parent_pid, module = int(arguments[1]), arguments[2]
    threading.Thread(
        target=_stop_when_orphaned, args=(parent_pid,), name="parent-check", daemon=True
    ).start()
    sys.argv = [module, *arguments[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _stop_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(SHUTDOWN_GRACE_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1:])
