"""A real single-node SLURM cluster for tests: munged, slurmctld and slurmd on this machine.

Everything the daemons use (slurm.conf, the munge key and socket, state, spool, logs, PID files)
lives in one folder; the SLURM commands find the cluster through the SLURM_CONF environment
variable. The daemons run in the foreground as our child processes and are stopped by PID.
Jobs run under slurmstepd, which slurmd detaches (it outlives slurmd by design): a slurmstepd
is ours when it listens on a socket in our spool folder, a job process when its environment
names our SLURM_CONF; what is left at the end is killed by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.jobs import kill_processes, stop_process

COMMANDS = ("mungekey", "munged", "slurmctld", "slurmd", "sinfo", "squeue", "scancel", "sbatch")
PARTITION = "debug"
START_TIMEOUT_S = 120
LOG_LINES = 15
MAX_SOCKET_PATH = 100


class SlurmStartError(RuntimeError):
    """The test cluster's daemons did not bring the node to idle."""


def missing_commands() -> list[str]:
    """The munge and SLURM commands this machine lacks."""
    return [command for command in COMMANDS if shutil.which(command) is None]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SlurmCluster:
    """munged, slurmctld and slurmd for one node (this machine), 2 CPUs, one partition."""

    def __init__(self, folder: Path, cpus: int = 2) -> None:
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.partition = PARTITION
        self.cpus = cpus
        self.munge_socket = folder / "munge" / "munge.socket"
        self.logs = folder / "log"
        self._daemons: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        if len(str(self.munge_socket)) > MAX_SOCKET_PATH:
            raise SlurmStartError(
                f"The test SLURM cluster's folder {self.folder} is too deep: the munge and "
                f"slurmstepd sockets under it must stay within {MAX_SOCKET_PATH} characters "
                "(a Unix socket path limit). Use a shorter --basetemp."
            )
        for sub in ("munge", "state", "spool", "log", "run"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        self._write_conf()
        self._start("slurmctld", ["slurmctld", "-D", "-i"])
        self._start("slurmd", ["slurmd", "-D", "-N", self.node])
        self._wait_for_idle_node()

    def _start_munge(self) -> None:
        key = self.folder / "munge" / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
        # --force: munged refuses a socket under a folder not executable by all (pytest's
        # temporary folders are 0700); only root uses this one.
        self._start("munged", [
            "munged", "--foreground", "--force", f"--socket={self.munge_socket}",
            f"--key-file={key}", f"--pid-file={self.folder / 'run' / 'munged.pid'}",
            f"--seed-file={self.folder / 'munge' / 'munged.seed'}",
            f"--log-file={self.logs / 'munged.log'}",
        ])
        self._wait_until(self.munge_socket.exists, "munged to create its socket")

    def _write_conf(self) -> None:
        folder = self.folder
        # Below the machine's memory: a node whose RealMemory exceeds what slurmd finds is
        # drained ("Low RealMemory").
        memory_mb = int(psutil.virtual_memory().total / 2**20 * 0.8)
        user = pwd.getpwuid(os.getuid()).pw_name  # root here and in CI
        self.conf.write_text("\n".join([
            "ClusterName=pprtest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool'}",
            f"SlurmctldPidFile={folder / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.logs / 'slurmctld.log'}",
            f"SlurmdLogFile={self.logs / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # Without it a job that gives no --mem takes the whole node's memory.
            "DefMemPerCPU=1024",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE "
            "State=UP",
            "",
        ]))

    def _start(self, name: str, command: list[str]) -> None:
        console = (self.logs / f"{name}.console").open("w")
        self._daemons[name] = subprocess.Popen(
            command, env=self.env, stdout=console, stderr=subprocess.STDOUT
        )
        console.close()

    def _wait_for_idle_node(self) -> None:
        def idle() -> bool:
            state = self.run("sinfo", "--noheader", "--Node", "--format=%T", check=False)
            return state.strip() == "idle"

        self._wait_until(idle, f"node {self.node} to be idle in sinfo")

    def _wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            exited = {
                name: daemon.returncode
                for name, daemon in self._daemons.items()
                if daemon.poll() is not None
            }
            if exited or time.monotonic() > deadline:
                cause = f"exited: {exited}" if exited else f"not within {START_TIMEOUT_S} s"
                raise SlurmStartError(
                    f"The test SLURM cluster in {self.folder} failed waiting for {what} "
                    f"({cause}).\n{self.diagnostics()}"
                )
            time.sleep(0.5)

    def run(self, *command: str, check: bool = True) -> str:
        """A SLURM command's stdout, run against this cluster."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def queued_jobs(self) -> list[str]:
        """Ids of the jobs squeue lists (pending, running or completing)."""
        return self.run("squeue", "--noheader", "--format=%i").split()

    def job_processes(self) -> list[psutil.Process]:
        """This cluster's slurmstepd processes and job processes still running."""
        found: dict[int, psutil.Process] = {}
        for process in psutil.process_iter(["name"]):
            try:
                if process.info["name"] == "slurmstepd" and self._is_our_step(process):
                    found[process.pid] = process
                    found.update((child.pid, child) for child in process.children(True))
                elif self._is_our_job(process):
                    found[process.pid] = process
            except (psutil.Error, OSError):
                continue
        return list(found.values())

    def _is_our_step(self, process: psutil.Process) -> bool:
        # slurmstepd runs with an empty environment; it listens on a socket in our spool.
        spool = str(self.folder / "spool")
        return any(str(sock.laddr).startswith(spool) for sock in process.net_connections("unix"))

    def _is_our_job(self, process: psutil.Process) -> bool:
        environ = process.environ()
        return "SLURM_JOB_ID" in environ and environ.get("SLURM_CONF") == str(self.conf)

    def diagnostics(self) -> str:
        """The last lines of each daemon's log, for a failure message."""
        parts = []
        for log in sorted(self.logs.glob("*")):
            lines = log.read_text(errors="replace").splitlines()[-LOG_LINES:]
            if lines:
                parts.append(f"--- {log}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job, kill job processes left, then stop slurmd, slurmctld, munged."""
        if "slurmctld" in self._daemons and self._daemons["slurmctld"].poll() is None:
            jobs = self.queued_jobs()
            if jobs:
                self.run("scancel", *jobs, check=False)
        deadline = time.monotonic() + 15
        while self.job_processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        self._kill_job_processes()
        for name in ("slurmd", "slurmctld", "munged"):
            if name in self._daemons:
                stop_process(self._daemons.pop(name), timeout=20)
        self._kill_job_processes()

    def _kill_job_processes(self) -> None:
        kill_processes(self.job_processes())


@contextmanager
def running_slurm(folder: Path) -> Iterator[SlurmCluster]:
    """A started `SlurmCluster` in `folder`, stopped (jobs and daemons) on the way out."""
    cluster = SlurmCluster(folder)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlurmCluster]:
    """A real single-node SLURM cluster; SLURM_CONF points this process's commands at it.

    Skipped when munge or SLURM is not installed, except in CI, which installs them
    (`make system-deps`) and must run the test.
    """
    missing = missing_commands()
    if missing:
        message = (
            f"SLURM test cluster needs {', '.join(missing)}: install Debian's slurm-wlm and "
            "munge (make system-deps, as root)."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with running_slurm(tmp_path / "slurm") as cluster:
        monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
        yield cluster
