"""Prefect's embedded API server, started with settings that suit many short task runs.

When no `PREFECT_API_URL` is set, Prefect starts a temporary API server in a subprocess at
the first API call, with the environment and settings of that moment. Its task-run recorder
writes each state change in a transaction of its own by default, which caps one server near
20 task runs a second; batched, the same server records several times more. A job started
from `ParallelRunStep.run()` or the command line starts that server itself, first, with
these settings; a value the user set (environment, profile) is never overridden.
"""

from __future__ import annotations

from typing import Any

import prefect.settings
from prefect.settings import get_current_settings, temporary_settings

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

    Returns whether this call started it.
    """
    from prefect.server.api.server import SubprocessASGIServer

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return False
    server = SubprocessASGIServer()
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
    return True
