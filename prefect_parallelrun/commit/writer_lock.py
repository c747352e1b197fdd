"""One writer per output folder: a lock file naming its holder, kept fresh by a heartbeat.

The lock is `.parallel_run/writer.lock`, created with an exclusive create (`open(..., "xb")`)
where the filesystem supports it, holding the holder's host, pid, flow run and times. The
holder rewrites it every `HEARTBEAT_SECONDS` and removes it when the job ends. A lock left
behind by a holder that died does not block the next run:
- on the same host, the holder is dead when its pid is gone (or now names another process,
  told apart by the process's start time);
- from another host, whose processes cannot be seen, the holder is dead when its heartbeat is
  older than `STALE_AFTER_SECONDS` (the hosts' clocks must agree to well within that).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace

import fsspec
import psutil

from prefect_parallelrun.commit.errors import OutputFolderInUseError

HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 120.0
# How long a lock file may stay unreadable (its creator writes it right after creating it)
# before it counts as left by a holder that died mid-write.
UNREADABLE_GRACE_SECONDS = 2.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """The run that holds an output folder, as written in its lock file."""

    token: str
    host: str
    pid: int
    process_started: float | None
    run_id: str | None
    started: float
    heartbeat: float

    @classmethod
    def of_this_process(cls, run_id: str | None) -> Holder:
        now = time.time()
        return cls(
            token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(),
            process_started=psutil.Process().create_time(), run_id=run_id, started=now,
            heartbeat=now,
        )

    def is_alive(self) -> bool:
        """Whether the holder may still be writing (see the module docstring for the rule)."""
        if self.host != socket.gethostname():
            return time.time() - self.heartbeat < STALE_AFTER_SECONDS
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
        run = f"flow run {self.run_id}" if self.run_id else "no flow run id"
        return (
            f"host {self.host}, pid {self.pid}, {run}, started {_utc(self.started)}, "
            f"last heartbeat {max(0, round(time.time() - self.heartbeat))} s ago"
        )


class WriterLock:
    """The lock file of one output folder, held by at most one live run at a time."""

    def __init__(
        self, fs: fsspec.AbstractFileSystem, path: str, *, folder_url: str, lock_url: str
    ) -> None:
        self._fs = fs
        self._path = path
        self._folder_url = folder_url
        self._lock_url = lock_url
        self._held: Holder | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self, run_id: str | None) -> None:
        """Take the folder for this run, clearing a lock left by a holder that died.

        Raises:
            OutputFolderInUseError: a live run holds the folder; the message names it.
        """
        if self._held is not None:
            return
        holder = Holder.of_this_process(run_id)
        self._fs.makedirs(self._path.rsplit("/", 1)[0], exist_ok=True)
        # Two rounds: the second follows the removal of a dead holder's lock.
        for _ in range(2):
            if self._create(holder):
                self._held = holder
                self._start_heartbeat(holder)
                return
            current = self._read_settled()
            if current is not None and current.is_alive():
                raise self._in_use(current)
            self._remove(current)
        current = self._read_settled()
        if current is not None:
            raise self._in_use(current)
        raise OutputFolderInUseError(
            f"The output folder {self._folder_url} could not be locked for this run: another "
            f"run keeps taking it. Run again, or choose another output folder."
        )

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file, if it is still this run's."""
        if self._held is None:
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        current = self._read()
        if current is not None and current.token == self._held.token:
            self._fs.rm(self._path)
        self._held = None

    def _create(self, holder: Holder) -> bool:
        content = json.dumps(asdict(holder)).encode()
        try:
            with self._fs.open(self._path, "xb") as file:
                file.write(content)
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError):
            # A filesystem without exclusive create: check, then write (a small race).
            if self._fs.exists(self._path):
                return False
            self._write(holder)
        return True

    def _write(self, holder: Holder) -> None:
        temporary = f"{self._path}.{uuid.uuid4().hex}.tmp"
        with self._fs.open(temporary, "wb") as file:
            file.write(json.dumps(asdict(holder)).encode())
        self._fs.mv(temporary, self._path)

    def _read(self) -> Holder | None:
        """The holder in the lock file; None when there is no lock file or it is unreadable."""
        try:
            with self._fs.open(self._path, "rb") as file:
                return Holder(**json.loads(file.read()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _read_settled(self) -> Holder | None:
        """The holder, giving a lock file just created the time to get its content."""
        deadline = time.monotonic() + UNREADABLE_GRACE_SECONDS
        while True:
            holder = self._read()
            if holder is not None or not self._fs.exists(self._path):
                return holder
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def _remove(self, dead: Holder | None) -> None:
        """Remove a dead holder's lock file unless another run replaced it meanwhile."""
        current = self._read()
        if current is not None and (dead is None or current.token != dead.token):
            return
        logger.info(
            "Taking over the output folder %s from a run that is gone (%s).",
            self._folder_url, dead.describe() if dead else "its lock file was unreadable",
        )
        try:
            self._fs.rm(self._path)
        except FileNotFoundError:
            pass

    def _start_heartbeat(self, holder: Holder) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, args=(holder,), name="parallel-run-writer-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _beat(self, holder: Holder) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                current = self._read()
                if current is None or current.token != holder.token:
                    logger.warning(
                        "The output folder %s is no longer locked for this run; another run "
                        "may write to it.", self._folder_url,
                    )
                    return
                self._write(replace(holder, heartbeat=time.time()))
            except OSError as error:
                logger.warning(
                    "Cannot refresh the lock of the output folder %s: %s", self._folder_url, error
                )

    def _in_use(self, holder: Holder) -> OutputFolderInUseError:
        return OutputFolderInUseError(
            f"The output folder {self._folder_url} is in use by another run ({holder.describe()})"
            f"; only one run may write to an output folder at a time. Wait for that run to "
            f"end or cancel it, or choose another output folder. A holder that died stops "
            f"blocking at once on its own host, and {STALE_AFTER_SECONDS:.0f} s after its last "
            f"heartbeat from other hosts; its lock file is {self._lock_url}."
        )


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
