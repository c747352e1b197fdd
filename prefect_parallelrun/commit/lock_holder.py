"""Who holds an output folder's writer lock, and whether that holder still lives.

The rule (see `writer_lock`): on the lock's own host, the holder is dead when its pid is gone
or now names another process; from another host, when its heartbeat is older than
`writer_stale_after_seconds`. The report stage reads holders too, to tell a running job from a
stopped one.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass

import fsspec
import psutil

from prefect_parallelrun.settings import get_settings


@dataclass(frozen=True)
class Holder:
    """The run that holds an output folder, as written in its lock file.

    Args:
        token: Unique to one taking of the lock, so that a holder knows its own lock file.
        host: The holder's host name.
        pid: The holder's process id on `host`.
        process_started: That process's start time (seconds since the epoch), which tells it
            apart from a later process given the same pid; None when unknown.
        run_id: The holder's flow run id; None outside a flow run.
        started: When the holder took the lock (seconds since the epoch).
        heartbeat: When the holder last rewrote the lock (seconds since the epoch).
    """

    token: str
    host: str
    pid: int
    process_started: float | None
    run_id: str | None
    started: float
    heartbeat: float

    @classmethod
    def of_this_process(cls, run_id: str | None) -> Holder:
        """A new holder for this process, taking the lock now.

        Args:
            run_id: This process's flow run id, if any.

        Returns:
            The holder, with a new token.
        """
        now = time.time()
        return cls(
            token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(),
            process_started=psutil.Process().create_time(), run_id=run_id, started=now,
            heartbeat=now,
        )

    @classmethod
    def read(cls, fs: fsspec.AbstractFileSystem, path: str) -> Holder | None:
        """The holder written in the lock file at `path`.

        Args:
            fs: The output folder's filesystem.
            path: The lock file's path on `fs`.

        Returns:
            The holder; None when there is no lock file, or it is empty or unreadable (a lock
            file just created, before its content is written).
        """
        try:
            with fs.open(path, "rb") as file:
                return cls(**json.loads(file.read()))
        except (FileNotFoundError, IsADirectoryError, ValueError, TypeError):
            return None

    def is_alive(self, stale_after_seconds: float | None = None) -> bool:
        """Whether the holder may still be writing (see the module docstring for the rule).

        Args:
            stale_after_seconds: Heartbeat age after which a holder on another host counts as
                dead; None reads `writer_stale_after_seconds` from the settings now.

        Returns:
            False when the holder is known to be gone, True otherwise.
        """
        if self.host != socket.gethostname():
            if stale_after_seconds is None:
                stale_after_seconds = get_settings().writer_stale_after_seconds
            return time.time() - self.heartbeat < stale_after_seconds
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            started = process.create_time()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True
        return self.process_started is None or abs(started - self.process_started) < 1.0

    def describe(self) -> str:
        """The holder in words, for messages.

        Returns:
            Its host, pid, flow run, start time and heartbeat age.
        """
        run = f"flow run {self.run_id}" if self.run_id else "no flow run id"
        return (
            f"host {self.host}, pid {self.pid}, {run}, started {_utc(self.started)}, "
            f"last heartbeat {max(0, round(time.time() - self.heartbeat))} s ago"
        )


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
