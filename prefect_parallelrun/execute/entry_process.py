"""`EntryScriptProcess`: one running entry-script process, seen from its worker.

The process is a plain `subprocess.Popen` in a session of its own (Dask worker processes are
daemonic and may not have multiprocessing children), so that a timeout or a stop can kill it
and everything the script started with one `killpg`. The worker talks to it over two pipes
(`protocol.py`); its stdout and stderr go to files under `<logs>/user/stdout/<node>/`
(`output_files`). `describe_exit` says how a process ended, for messages.
"""

from __future__ import annotations

import enum
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.protocol import ProcessStart

_CHILD_MODULE = "prefect_parallelrun.execute.child"


class NoReply(enum.Enum):
    """Why `EntryScriptProcess.receive` returned without a message."""

    TIMED_OUT = "timed out"
    DIED = "died"


class EntryScriptProcess:
    """One running entry-script process: its Popen, its two pipe ends, its private folder.

    Made by `spawn`; the worker thread holding its `ProcessSlot` sends it requests and waits
    for its replies, and `kill` may come from any thread. `retire` frees what it holds.

    Args:
        popen: The running process.
        requests_fd: The pipe end the worker writes requests to; closed by `retire`.
        replies_fd: The pipe end the worker reads replies from; closed by `retire`.
        root: The process's private folder (working directory, scratch), removed by `retire`.
        liveness_check_seconds: How often `receive` checks that the process still lives.
    """

    def __init__(
        self,
        popen: subprocess.Popen,
        requests_fd: int,
        replies_fd: int,
        root: str,
        liveness_check_seconds: float,
    ):
        self.popen = popen
        self._requests = Connection(requests_fd, readable=False)
        self._replies = Connection(replies_fd, writable=False)
        self._root = root
        # A process the script started may keep the reply pipe open after the entry-script
        # process itself died, so a waiting thread also polls the process now and then.
        self._liveness_check_seconds = liveness_check_seconds

    @classmethod
    def spawn(
        cls, spec: ProcessSpec, node: str, process: str, work_dir: str, cuda_device: str | None
    ) -> EntryScriptProcess:
        """Start a process in a new session and a folder of its own, and send it its start.

        Args:
            spec: The job's process settings.
            node: The worker's name in the job, for the log folders.
            process: The slot's name (`process001`...), for the log files and `ps`.
            work_dir: The worker's folder under which the process gets its private folder.
            cuda_device: The `CUDA_VISIBLE_DEVICES` value of the process; None: inherited.

        Returns:
            The started process; it may still be importing the script.

        Raises:
            OSError: The process could not be started.
        """
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
        spawned = cls(popen, requests_write, replies_read, root, spec.liveness_check_seconds)
        spawned.send(ProcessStart(spec=spec, node=node, process=process, scratch_dir=scratch))
        return spawned

    @property
    def pid(self) -> int:
        """The process id (also its process group's)."""
        return self.popen.pid

    def send(self, message: object) -> bool:
        """Send a message (a `protocol` request) to the process.

        Args:
            message: The request, pickled onto the pipe.

        Returns:
            True when sent; False when the process is gone (its pipe is closed).
        """
        try:
            self._requests.send(message)
        except OSError:
            return False
        return True

    def receive(self, deadline: float | None) -> Any:
        """Wait for the process's next message.

        Args:
            deadline: When to give up (`time.monotonic()` time); None: wait as long as the
                process lives.

        Returns:
            The message (a `protocol` reply), or `NoReply.TIMED_OUT` at `deadline`, or
            `NoReply.DIED` when the process ended or its pipe broke.
        """
        while True:
            wait = self._liveness_check_seconds
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return NoReply.TIMED_OUT
            try:
                if self._replies.poll(wait):
                    return self._replies.recv()
            except (EOFError, OSError):
                return NoReply.DIED
            if self.popen.poll() is not None:
                return NoReply.DIED

    def kill(self) -> None:
        """SIGKILL the process and everything it started (its whole process group)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def retire(self) -> str:
        """Kill what is left, reap the process, free its pipes and folder.

        Returns:
            How the process ended, for messages (`describe_exit`).
        """
        self.kill()
        self.popen.wait()
        self._requests.close()
        self._replies.close()
        shutil.rmtree(self._root, ignore_errors=True)
        return describe_exit(self.popen.returncode)

    def exit_after(self, seconds: float) -> None:
        """Give the process `seconds` to exit by itself, then retire it.

        Args:
            seconds: How long to wait for the process to exit before it is killed.
        """
        try:
            self.popen.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass
        self.retire()


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
    command += ["--orphan-check-seconds", repr(spec.orphan_check_seconds)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if cuda_device is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_device
    output = output_files(spec.logs_dir, node, process)
    with open(f"{output}.stdout.txt", "ab") as stdout, open(f"{output}.stderr.txt", "ab") as stderr:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
            start_new_session=True, pass_fds=(requests_fd, replies_fd),
        )


def output_files(logs_dir: str, node: str, process: str) -> str:
    """Where a process's stdout and stderr go; makes the folder.

    Args:
        logs_dir: The job's logs folder.
        node: The worker's name in the job.
        process: The slot's name.

    Returns:
        `<logs>/user/stdout/<node>/<process>`, to which `.stdout.txt` and `.stderr.txt` are added.
    """
    folder = os.path.join(logs_dir, "user", "stdout", node)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, process)


def describe_exit(returncode: int | None) -> str:
    """How a process ended, for messages.

    Args:
        returncode: `Popen.returncode`: None while running, negative for a signal.

    Returns:
        "exit code 3", "killed by signal SIGKILL", or "still running".
    """
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
