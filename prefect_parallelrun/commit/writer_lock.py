"""One writer per output folder: a lock file naming its holder, kept fresh by a heartbeat.

The lock is `.parallel_run/writer.lock`, created with an exclusive create (`open(..., "xb")`)
where the filesystem supports it, holding the holder's host, pid, flow run and times. The
holder rewrites it every `writer_heartbeat_seconds` (a setting) and removes it when the job
ends. A lock left behind by a holder that died does not block the next run:
- on the same host, the holder is dead when its pid is gone (or now names another process,
  told apart by the process's start time);
- from another host, whose processes cannot be seen, the holder is dead when its heartbeat is
  older than `writer_stale_after_seconds` (a setting; the hosts' clocks must agree to well
  within that).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, replace

import fsspec

from prefect_parallelrun.commit.errors import OutputFolderInUseError
from prefect_parallelrun.commit.lock_holder import Holder
from prefect_parallelrun.settings import get_settings

__all__ = ["UNREADABLE_GRACE_SECONDS", "Holder", "WriterLock"]

# How long a lock file may stay unreadable (its creator writes it right after creating it)
# before it counts as left by a holder that died mid-write.
UNREADABLE_GRACE_SECONDS = 2.0

logger = logging.getLogger(__name__)


class WriterLock:
    """The lock file of one output folder, held by at most one live run at a time.

    Args:
        fs: The output folder's filesystem.
        path: The lock file's path on `fs`.
        folder_url: The output folder, for messages.
        lock_url: The lock file, for messages.
        heartbeat_seconds: How often the holder rewrites the lock; None reads
            `writer_heartbeat_seconds` from the settings when the lock is taken.
        stale_after_seconds: Heartbeat age after which a holder on another host counts as
            dead; None reads `writer_stale_after_seconds` from the settings when the lock
            is taken.
    """

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        folder_url: str,
        lock_url: str,
        heartbeat_seconds: float | None = None,
        stale_after_seconds: float | None = None,
    ) -> None:
        self._fs = fs
        self._path = path
        self._folder_url = folder_url
        self._lock_url = lock_url
        self._heartbeat_seconds = heartbeat_seconds
        self._stale_after_seconds = stale_after_seconds
        self._held: Holder | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self, run_id: str | None) -> None:
        """Take the folder for this run, clearing a lock left by a holder that died.

        Taking it again while held does nothing.

        Args:
            run_id: This run's flow run id, shown to a run refused because this one holds it.

        Raises:
            OutputFolderInUseError: a live run holds the folder; the message names it.
            OSError: The lock file cannot be created or written.
        """
        if self._held is not None:
            return
        if self._heartbeat_seconds is None or self._stale_after_seconds is None:
            settings = get_settings()
            self._heartbeat_seconds = self._heartbeat_seconds or settings.writer_heartbeat_seconds
            self._stale_after_seconds = (
                self._stale_after_seconds or settings.writer_stale_after_seconds
            )
        holder = Holder.of_this_process(run_id)
        self._fs.makedirs(self._path.rsplit("/", 1)[0], exist_ok=True)
        # Two rounds: the second follows the removal of a dead holder's lock.
        for _ in range(2):
            if self._create(holder):
                self._held = holder
                self._start_heartbeat(holder)
                return
            current = self._read_settled()
            if current is not None and current.is_alive(self._stale_after_seconds):
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
        return Holder.read(self._fs, self._path)

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
        while not self._stop.wait(self._heartbeat_seconds):
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
            f"blocking at once on its own host, and {self._stale_after_seconds:.0f} s after its "
            f"last heartbeat from other hosts; its lock file is {self._lock_url}."
        )

