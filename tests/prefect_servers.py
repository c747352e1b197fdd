"""Real Prefect API servers for tests that take the server away: `prefect server start` in a
process of its own (SQLite or PostgreSQL), stopped by PID and started again on the same port
and database, as an operator restarting it would."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

START_SECONDS = 180


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server programs Debian installed ($POSTGRES_BIN overrides)."""
    if "POSTGRES_BIN" in os.environ:
        return Path(os.environ["POSTGRES_BIN"])
    versions = [
        initdb.parent for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if initdb.parent.parent.name.isdigit()
    ]
    return max(versions, key=lambda folder: int(folder.parent.name), default=None)


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrefectServer:
    """`prefect server start` on 127.0.0.1, with its own PREFECT_HOME under `folder`.

    The database is SQLite under `folder` unless `database_url` names another one. `stop()`
    ends the whole process group (SIGTERM, then SIGKILL); `start()` brings it back on the same
    port and database.
    """

    def __init__(self, folder: Path, database_url: str | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.database_url = database_url or (
            f"sqlite+aiosqlite:///{folder / 'prefect.db'}"
        )
        self.log_file = folder / "server.log"
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def environment(self) -> dict[str, str]:
        kept = {
            name: value for name, value in os.environ.items()
            if not name.startswith("PREFECT_")
        }
        return {
            **kept,
            "PREFECT_HOME": str(self.folder / "home"),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            # Batched task-run records, as on the embedded server the jobs start themselves.
            "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
            "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
        }

    def start(self) -> PrefectServer:
        """Start the server and wait until /api/health answers."""
        command = [
            sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
            "--port", str(self.port), "--no-ui",
        ]
        with self.log_file.open("a") as log:
            self._process = subprocess.Popen(
                command, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while not self.healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the Prefect server on port {self.port} did not start within "
                    f"{START_SECONDS} s; its log ({self.log_file}) ends:\n{self.log_tail()}"
                )
            time.sleep(0.5)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM to the server's process group; SIGKILL whatever is left after 20 s."""
        if self._process is not None:
            stop_process_group(self._process, timeout=20)
            self._process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class PostgresCluster:
    """A throw-away PostgreSQL cluster (initdb + postgres) on a loopback port, started by PID.

    Postgres refuses to run as root: as root, the cluster belongs to the `postgres` system user
    that Debian's package creates. Its folder lives in a temporary directory of its own, since
    pytest's temporary folders are private to the user who runs the tests.
    """

    def __init__(self, database: str = "prefect") -> None:
        found = postgres_bin()
        if found is None or not (found / "initdb").exists():
            raise FileNotFoundError(
                "PostgreSQL's initdb was not found under /usr/lib/postgresql/*/bin: install "
                "Debian's postgresql (make system-deps, as root) or set $POSTGRES_BIN."
            )
        self.bin = found
        self.database = database
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.folder = Path(tempfile.mkdtemp(prefix="prefect-test-postgres-"))
        self.data = self.folder / "data"
        self.sockets = self.folder / "sockets"
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        role = self.user or _current_user()
        return f"postgresql+asyncpg://{role}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> PostgresCluster:
        self.sockets.mkdir()
        if self.user is not None:
            shutil.chown(self.folder, self.user)
            shutil.chown(self.sockets, self.user)
        self._run(
            [str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust",
             "--encoding=UTF8", "--no-sync"]
        )
        with (self.folder / "postgres.log").open("a") as log:
            self._process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.sockets), "-c", "listen_addresses=127.0.0.1",
                 "-c", "fsync=off", "-c", "max_connections=200"],
                user=self.user, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while self._run([str(self.bin / "pg_isready"), *self._address()], check=False):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log_text = (self.folder / "postgres.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"postgres did not start within 60 s:\n{log_text[-3000:]}")
            time.sleep(0.3)
        self._run([str(self.bin / "createdb"), *self._address(), self.database])
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT) by PID, SIGKILL after 20 s; then the folder goes."""
        if self._process is not None:
            stop_process_group(self._process, timeout=20, first=signal.SIGINT)
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _address(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user or _current_user()]

    def _run(self, command: list[str], check: bool = True) -> int:
        done = subprocess.run(
            command, user=self.user, capture_output=True, text=True, timeout=120,
            cwd=self.folder,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        return done.returncode

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_process_group(
    process: subprocess.Popen, timeout: float, first: int = signal.SIGTERM
) -> None:
    """Signal the group a process leads (it was started in a session of its own), then kill
    what is left of the group after `timeout` seconds."""
    try:
        os.killpg(process.pid, first)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _current_user() -> str:
    import getpass

    return getpass.getuser()
