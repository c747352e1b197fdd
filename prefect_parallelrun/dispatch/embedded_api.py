"""Prefect's embedded API server, started with settings that suit many short task runs.

When no `PREFECT_API_URL` is set, Prefect starts a temporary API server in a subprocess at
the first API call, with the environment and settings of that moment. Its task-run recorder
writes each state change in a transaction of its own by default, which caps one server near
20 task runs a second; batched, the same server records several times more. A job started
from `ParallelRunStep.run()` or the command line starts that server itself, first, with
these settings; a value the user set (environment, profile) is never overridden.

The server runs in a process group of its own. Ctrl-C in a terminal signals the whole
foreground process group; a server that stopped with it would leave the flow process, which
ends the job in order on that Ctrl-C, retrying for minutes to record the job's final state.
Prefect still stops the server when the process exits; and a process killed outright (SIGKILL,
the out-of-memory killer), which runs no exit handler, leaves no server behind either: the
server runs bound to it (execute/parent_bound.py) and shuts down within seconds of its end.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import time
import types
from typing import Any

import prefect.server.api.server as prefect_server_module
import prefect.settings
from prefect.settings import get_current_settings, temporary_settings

from prefect_parallelrun.execute.parent_bound import parent_bound_command

EMBEDDED_SERVER_SETTINGS: dict[str, Any] = {
    # Batch the recorder's writes: 100 task-run events per transaction, flushed every second
    # (a flush interval below 1 s is truncated to 0 by the recorder, a busy loop).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": 100,
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": 1,
    # A temporary server has no one to report to; offline, each try logs an ERROR line.
    "PREFECT_SERVER_ANALYTICS_ENABLED": False,
    # Its first start creates the database, which takes a while on a small, busy machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": 120,
}


def start_embedded_api() -> bool:
    """Start Prefect's embedded API server now, with `EMBEDDED_SERVER_SETTINGS` where the user
    set nothing. Does nothing when a server URL is set or the embedded server already runs.

    Returns:
        Whether this call started it.
    """
    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return False
    # The one embedded server of this process: Prefect's own calls find this instance.
    server = OwnProcessGroupServer()
    if server.running:
        return False
    chosen = settings.to_environment_variables(exclude_unset=True)
    updates = {
        getattr(prefect.settings, name): value
        for name, value in EMBEDDED_SERVER_SETTINGS.items()
        if name not in chosen
    }
    with temporary_settings(updates=updates):
        server.start()
    # Prefect stops the server at exit (an atexit handler, registered by start()). Handlers run
    # last-registered first, so this one runs before it: the recorder's last batch, up to one
    # flush interval old, is written instead of cut off (an ERROR line and lost task-run states).
    flush_seconds = float(
        chosen.get("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL")
        or EMBEDDED_SERVER_SETTINGS["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"]
    )
    atexit.register(_let_the_recorder_flush, server, flush_seconds + 0.5)
    return True


def _let_the_recorder_flush(server: prefect_server_module.SubprocessASGIServer, wait: float):
    if server.running:
        time.sleep(wait)


class OwnProcessGroupServer(prefect_server_module.SubprocessASGIServer):
    """Prefect's embedded server, its process started in a session of its own and bound to
    this process: it shuts down when this process is gone, however it ended.

    `SubprocessASGIServer` is one instance per port, so once this class has made the instance
    of the default port, every `SubprocessASGIServer()` in Prefect returns it.
    """

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        own_session = types.SimpleNamespace(**{**vars(subprocess), "Popen": _bound_popen})
        prefect_server_module.subprocess = own_session  # type: ignore[assignment]  # one call
        try:
            return super()._run_uvicorn_command()
        finally:
            prefect_server_module.subprocess = subprocess


def _bound_popen(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Prefect's `Popen` of the server, in a session of its own, bound to this process."""
    return subprocess.Popen(
        parent_bound_command(list(args), os.getpid()), start_new_session=True, **kwargs
    )
