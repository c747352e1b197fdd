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
# How often a waiting worker thread checks that its process still lives, in case a process the
# script started keeps the reply pipe open after the entry-script process itself died.
_LIVENESS_CHECK_SECONDS = 1.0


class NoReply(enum.Enum):
    """Why `EntryScriptProcess.receive` returned without a message."""

    TIMED_OUT = "timed out"
    DIED = "died"


class EntryScriptProcess:
    """One running entry-script process: its Popen, its two pipe ends, its private folder."""

    def __init__(
        self, popen: subprocess.Popen, requests: Connection, replies: Connection, root: str
    ):
        self.popen = popen
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

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, message: object) -> bool:
        """Send a message; False when the process is gone."""
        try:
            self._requests.send(message)
        except OSError:
            return False
        return True

    def receive(self, deadline: float | None) -> Any:
        """The next message, or `NoReply.TIMED_OUT` at `deadline` (monotonic), or `NoReply.DIED`."""
        while True:
            wait = _LIVENESS_CHECK_SECONDS
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
    """How a process ended, for messages: "exit code 3", "killed by signal SIGKILL"."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
