"""`ProcessSlot`: a place for one entry-script process on a worker, which it starts, watches
and replaces, as distributed's Nanny does for a worker.

The process is a plain `subprocess.Popen` in a session of its own (Dask worker processes are
daemonic and may not have multiprocessing children), so that a timeout or a stop can kill it
and everything the script started with one `killpg`. The worker talks to it over two pipes;
its stdout and stderr go to files under `<logs>/user/stdout/<node>/`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.protocol import (
    ProcessStart,
    Ready,
    RunReply,
    RunRequest,
    RunStarted,
    ShutdownReply,
    ShutdownRequest,
    StartFailed,
)
from prefect_parallelrun.execute.results import AttemptRecord, AttemptResult, sentence

_CHILD_MODULE = "prefect_parallelrun.execute.child"
# How often a waiting worker thread checks that its process still lives, in case a process the
# script started keeps the reply pipe open after the entry-script process itself died.
_LIVENESS_CHECK_SECONDS = 1.0
STOPPED_CAUSE = "the job was stopped while it ran; it is not finished."


class _TimedOut:
    pass


class _Died:
    pass


TIMED_OUT, DIED = _TimedOut(), _Died()


class EntryScriptProcess:
    """One running entry-script process: its Popen, its two pipe ends, its private folder."""

    def __init__(
        self, popen: subprocess.Popen, requests: Connection, replies: Connection, root: str
    ):
        self.popen = popen
        self.ready = False
        self._requests = requests
        self._replies = replies
        self._root = root

    @classmethod
    def spawn(
        cls, spec: ProcessSpec, node: str, process: str, work_dir: str, cuda_device: str | None
    ) -> EntryScriptProcess:
        """Start a process and send it its `ProcessStart`; it then imports the script."""
        root = tempfile.mkdtemp(prefix=f"{process}-", dir=work_dir)
        cwd, scratch = os.path.join(root, "cwd"), os.path.join(root, "scratch")
        os.makedirs(cwd)
        os.makedirs(scratch)
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        try:
            popen = _start_child(
                spec, node, process, cwd, cuda_device, requests_read, replies_write
            )
        except BaseException:
            os.close(requests_write)
            os.close(replies_read)
            shutil.rmtree(root, ignore_errors=True)
            raise
        finally:
            os.close(requests_read)
            os.close(replies_write)
        spawned = cls(
            popen,
            Connection(requests_write, readable=False),
            Connection(replies_read, writable=False),
            root,
        )
        spawned.send(ProcessStart(spec=spec, node=node, process=process, scratch_dir=scratch))
        return spawned

    def send(self, message: object) -> bool:
        """Send a message; False when the process is gone."""
        try:
            self._requests.send(message)
        except OSError:
            return False
        return True

    def receive(self, deadline: float | None) -> Any:
        """The next message, or TIMED_OUT at `deadline` (monotonic), or DIED."""
        while True:
            wait = _LIVENESS_CHECK_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return TIMED_OUT
            try:
                if self._replies.poll(wait):
                    return self._replies.recv()
            except (EOFError, OSError):
                return DIED
            if self.popen.poll() is not None:
                return DIED

    def kill(self) -> None:
        """SIGKILL the process and everything it started (its whole process group)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def retire(self) -> str:
        """Kill what is left, reap the process, free its pipes and folder; say how it ended."""
        self.kill()
        self.popen.wait()
        self._requests.close()
        self._replies.close()
        shutil.rmtree(self._root, ignore_errors=True)
        return describe_exit(self.popen.returncode)

    def exit_after(self, seconds: float) -> None:
        """Give the process `seconds` to exit by itself, then retire it."""
        try:
            self.popen.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass
        self.retire()


class ProcessSlot:
    """A place for one entry-script process on one worker.

    One worker thread at a time uses a slot (the `ProcessPool` hands it out). The process is
    started at the first use (or eagerly by `start`), kept for the next mini-batches, and
    replaced after a timeout, a crash or a failed start. `kill` may be called from any thread.
    """

    def __init__(
        self, spec: ProcessSpec, node: str, name: str, work_dir: str, cuda_device: str | None
    ):
        self.spec = spec
        self.node = node
        self.name = name
        self._work_dir = work_dir
        self._cuda_device = cuda_device
        self.stderr_file = f"{output_files(spec.logs_dir, node, name)}.stderr.txt"
        self._in_use = threading.Lock()
        self._state = threading.Lock()
        self._process: EntryScriptProcess | None = None
        self._stopped = False
        self.failed_starts = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.popen.pid

    def start(self) -> None:
        """Start the process now rather than at the first mini-batch (it does nothing if busy)."""
        if self._in_use.acquire(blocking=False):
            try:
                self._spawn()
            except OSError:
                pass  # the first mini-batch tries again and reports why
            finally:
                self._in_use.release()

    def run(self, mini_batch: Any, attempt: int) -> AttemptResult:
        """Run one mini-batch in this slot's process, starting a process first if needed."""
        record = AttemptRecord(mini_batch, attempt, self.node, self.name, self.stderr_file)
        with self._in_use:
            try:
                process = self._spawn()
            except OSError as exc:
                return self._start_failed(
                    record, StartFailed(f"The process could not be started: {exc}.", None)
                )
            if process is None:
                return record.finish("failed", record.declared_items, cause=STOPPED_CAUSE)
            start_failure = self._wait_ready(process)
            if start_failure is not None:
                return self._start_failed(record, start_failure)
            self.failed_starts = 0
            record.restart_clock()
            return self._run(process, record)

    def _spawn(self) -> EntryScriptProcess | None:
        # Under `_state`, so that a `kill` from another thread either sees the new process
        # or prevents it from being started.
        with self._state:
            if self._stopped:
                return None
            if self._process is None:
                self._process = EntryScriptProcess.spawn(
                    self.spec, self.node, self.name, self._work_dir, self._cuda_device
                )
            return self._process

    def _wait_ready(self, process: EntryScriptProcess) -> StartFailed | None:
        if process.ready:
            return None
        timeout = self.spec.init_timeout
        message = process.receive(None if timeout is None else time.monotonic() + timeout)
        if isinstance(message, Ready):
            process.ready = True
            return None
        if isinstance(message, StartFailed):
            return message
        if message is TIMED_OUT:
            return StartFailed(
                f"init() did not return within init_timeout={timeout:g} seconds.", None
            )
        return StartFailed(f"The process died while starting ({self._retire()}).", None)

    def _start_failed(self, record: AttemptRecord, failure: StartFailed) -> AttemptResult:
        self._retire()
        if self._stopped:
            return record.finish("failed", record.declared_items, cause=STOPPED_CAUSE)
        self.failed_starts += 1
        fatal = self.failed_starts >= self.spec.max_failed_starts
        cause = f"the entry script could not start. {sentence(failure.error)}"
        if fatal:
            cause += (
                f" The script has now failed to start {self.failed_starts} times in a row in "
                "this process slot, so the job should stop: fix the script's import or init() "
                "and run the job again."
            )
        else:
            cause += " The next mini-batch in this slot starts a new process."
        return record.finish(
            "init_failed",
            record.declared_items,
            cause=cause,
            traceback=failure.traceback,
            fatal=fatal,
        )

    def _run(self, process: EntryScriptProcess, record: AttemptRecord) -> AttemptResult:
        items = record.declared_items
        message: Any = DIED
        if process.send(RunRequest(record.mini_batch, record.attempt)):
            deadline = time.monotonic() + self.spec.run_invocation_timeout
            message = process.receive(deadline)
            if isinstance(message, RunStarted):
                items = message.items
                message = process.receive(deadline)
        if isinstance(message, RunReply):
            return _from_reply(record, message)
        if message is TIMED_OUT:
            self._retire()
            if self._stopped:
                return record.finish("failed", items, cause=STOPPED_CAUSE)
            timeout = self.spec.run_invocation_timeout
            cause = (
                f"run() did not return within run_invocation_timeout={timeout:g} seconds, so its "
                "process was killed; the next mini-batch in this slot starts a new one (init() "
                "runs again). Raise run_invocation_timeout, or make mini-batches smaller."
            )
            return record.finish("timeout", items, cause=cause)
        exit_description = self._retire()
        if self._stopped:
            return record.finish("failed", items, cause=STOPPED_CAUSE)
        cause = (
            f"the entry-script process died while running it ({exit_description}); the next "
            "mini-batch in this slot starts a new process. A crash in native code, os._exit() "
            "or the out-of-memory killer (SIGKILL) ends a process this way; the end of its "
            "stderr file may tell which."
        )
        return record.finish("process_died", items, cause=cause)

    def shutdown(self, deadline: float) -> ShutdownReply | None:
        """Call the script's shutdown() in this slot's process and let it exit.

        Waits until `deadline` (monotonic) for a running mini-batch and for init(); a process
        still busy then is killed. None when there was no process to shut down.
        """
        if not self._in_use.acquire(timeout=max(0.0, deadline - time.monotonic())):
            self.kill()
            return None
        try:
            with self._state:
                self._stopped = True
                process = self._process
            if process is None or self._wait_ready_until(process, deadline) is not None:
                self._retire()
                return None
            reply = None
            if process.send(ShutdownRequest()):
                message = process.receive(deadline)
                reply = message if isinstance(message, ShutdownReply) else None
            with self._state:
                self._process = None
            process.exit_after(max(0.0, deadline - time.monotonic()))
            return reply
        finally:
            self._in_use.release()

    def _wait_ready_until(self, process: EntryScriptProcess, deadline: float) -> object | None:
        if process.ready:
            return None
        message = process.receive(deadline)
        if isinstance(message, Ready):
            process.ready = True
            return None
        return message

    def kill(self) -> None:
        """Stop for good: kill the process now, and start no other in this slot."""
        with self._state:
            self._stopped = True
            process = self._process
        if process is not None:
            process.kill()
        # A thread running a mini-batch here sees its process die and cleans up itself.
        if self._in_use.acquire(blocking=False):
            try:
                self._retire()
            finally:
                self._in_use.release()

    def _retire(self) -> str:
        with self._state:
            process, self._process = self._process, None
        return process.retire() if process is not None else "no process"


def _start_child(
    spec: ProcessSpec,
    node: str,
    process: str,
    cwd: str,
    cuda_device: str | None,
    requests_fd: int,
    replies_fd: int,
) -> subprocess.Popen:
    # The job id and process name on the command line let `ps` tell whose process it is.
    command = [sys.executable, "-m", _CHILD_MODULE, "--job-id", spec.job_id]
    command += ["--process", process, "--parent-pid", str(os.getpid())]
    command += ["--requests-fd", str(requests_fd), "--replies-fd", str(replies_fd)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if cuda_device is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_device
    output = output_files(spec.logs_dir, node, process)
    with open(f"{output}.stdout.txt", "ab") as stdout, open(f"{output}.stderr.txt", "ab") as stderr:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=env,
            start_new_session=True,
            pass_fds=(requests_fd, replies_fd),
        )


def output_files(logs_dir: str, node: str, process: str) -> str:
    """`<logs>/user/stdout/<node>/<process>`, to which `.stdout.txt` and `.stderr.txt` are added."""
    folder = os.path.join(logs_dir, "user", "stdout", node)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, process)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _from_reply(record: AttemptRecord, reply: RunReply) -> AttemptResult:
    details = {
        "traceback": reply.traceback,
        "staged_rows": reply.staged_rows,
        "log_records": reply.log_records,
        "warnings": reply.warnings,
    }
    if reply.error is None:
        return record.finish("succeeded", reply.items, reply.succeeded_items, **details)
    return record.finish("failed", reply.items, reply.succeeded_items, cause=reply.error, **details)
