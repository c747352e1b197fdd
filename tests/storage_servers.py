"""Real object-storage servers for tests and benchmarks, on 127.0.0.1, stopped by PID.

- `Azurite`: Microsoft's Azure Storage emulator (blob service only), from npm, run with node.
  `make storage-emulators` installs it under `.ci/node/` ($AZURITE_BLOB overrides the path).
- `MotoS3`: moto's server mode, a local S3 endpoint (`moto_server`, from the dev extra).

Each writes its request log to a file, so that `requests()` counts what a job asked of the
store. Both take credentials the way their ecosystem does: `environment()` gives the
variables a user would export (AZURE_STORAGE_CONNECTION_STRING; AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.prefect_servers import free_port, stop_process_group

REPOSITORY = Path(__file__).resolve().parent.parent
AZURITE_BLOB = REPOSITORY / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
START_SECONDS = 60
# An HTTP request line in either server's access log: `"PUT /bucket/key HTTP/1.1" 200`.
REQUEST_LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE|PATCH|OPTIONS) \S+ HTTP/[\d.]+"')

# Azurite's well-known development account (documented by Microsoft; not a secret anywhere).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_blob_program() -> Path | None:
    """The `azurite-blob` program, or None when `make storage-emulators` has not run."""
    program = Path(os.environ.get("AZURITE_BLOB", AZURITE_BLOB))
    return program if program.exists() and shutil.which("node") else None


class StorageServer:
    """A server process with a request log, started on a free loopback port."""

    name = "storage server"

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"test-{self.name.replace(' ', '-')}-"))
        self.port = free_port()
        self.log_file = self.folder / "requests.log"
        self._process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> StorageServer:
        """Start the server and wait until it answers HTTP on its port."""
        with self.log_file.open("a") as log:
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.folder, start_new_session=True,
            )
        try:
            self._wait_until_it_answers()
        except BaseException:  # Ctrl-C while waiting too: no server left behind
            self.stop()
            raise
        return self

    def _wait_until_it_answers(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"{self.name} on port {self.port} did not start within "
                    f"{START_SECONDS} s; its log ends:\n{tail}"
                )
            time.sleep(0.2)

    def requests(self) -> int:
        """How many HTTP requests the server has logged so far."""
        text = self.log_file.read_text(errors="replace")
        return len(REQUEST_LINE.findall(text))

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 20 s; then its folder goes."""
        if self._process is not None:
            stop_process_group(self._process, timeout=20)
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (400, 403) means it listens
        except OSError:
            return False

    def __enter__(self) -> StorageServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Azurite(StorageServer):
    """Azurite's blob service with the development account; data in a temporary folder."""

    name = "azurite"

    def __init__(self, program: Path) -> None:
        super().__init__()
        self.program = program

    def command(self) -> list[str]:
        return [
            str(self.program), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
            "--location", str(self.folder / "data"), "--skipApiVersionCheck", "--loose",
        ]

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint}/{AZURITE_ACCOUNT};"
        )

    def environment(self) -> dict[str, str]:
        """What a user exports for adlfs: the connection string names account, key, endpoint."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def make_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        service.create_container(name)


class MotoS3(StorageServer):
    """moto's S3 endpoint; it accepts any key pair, so each server gets a fresh secret."""

    name = "moto s3"

    def __init__(self) -> None:
        super().__init__()
        self.access_key = "test-access-key"
        self.secret_key = f"test-secret-{uuid.uuid4().hex}"

    def command(self) -> list[str]:
        moto_server = Path(sys.executable).with_name("moto_server")
        return [str(moto_server), "-H", "127.0.0.1", "-p", str(self.port)]

    def environment(self) -> dict[str, str]:
        """What a user exports for s3fs (botocore reads all four)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def make_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=30):
            pass
