"""Inputs, outputs, logs and resume on real object storage: Azure Blob (Azurite, through adlfs)
and S3 (moto's server, through s3fs), with credentials given as each ecosystem expects.

Every test runs once per store. The servers run on 127.0.0.1 and are stopped by PID (see
tests/storage_servers.py); Azurite comes from npm (`make storage-emulators`): without it the
Azure tests are skipped, except in CI, which must run them.
"""

from __future__ import annotations

import csv
import io
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep, TabularDataset
from prefect_parallelrun.commit import CommitRecord, OutputFolder, stage_rows
from prefect_parallelrun.dispatch.flow import parallel_run
from prefect_parallelrun.step import result_of
from tests.jobs import DaskProcesses, JobBench, flow_run_logs, worker_killed_once_it_says
from tests.storage_servers import Azurite, MotoS3, StorageServer, azurite_blob_program

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
BUCKET = "data"
# A tabular entry script: each row comes back as it came, as "id value".
ECHO_ROWS = "def run(mini_batch):\n    return mini_batch[['id', 'value']]\n"


@dataclass
class Store:
    """One object store under test: its server, URL scheme and a fresh folder per test."""

    name: str
    server: StorageServer
    scheme: str
    prefix: str = ""

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://{BUCKET}/{self.prefix}/{path}".rstrip("/")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.scheme)

    def put_text(self, path: str, text: str) -> None:
        self.fs.pipe(self.url(path), text.encode())

    def read_text(self, path: str) -> str:
        return self.fs.cat(self.url(path)).decode()

    def secret(self) -> str:
        if isinstance(self.server, MotoS3):
            return self.server.secret_key
        from tests.storage_servers import AZURITE_KEY

        return AZURITE_KEY


def start_store(name: str) -> StorageServer:
    if name == "s3":
        return MotoS3().start()
    program = azurite_blob_program()
    if program is None:
        message = "Azurite is not installed: run `make storage-emulators` (needs node and npm)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Azurite(program).start()


@pytest.fixture(scope="module", params=["s3", "azure"])
def running_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store's server with its bucket or container, and the credentials a user would export
    set in this process (which Dask's local workers inherit)."""
    server = start_store(request.param)
    try:
        with pytest.MonkeyPatch.context() as environment:
            for variable, value in server.environment().items():
                environment.setenv(variable, value)
            if isinstance(server, MotoS3):
                server.make_bucket(BUCKET)
                yield Store("s3", server, "s3")
            else:
                server.make_container(BUCKET)
                yield Store("azure", server, "abfs")
    finally:
        server.stop()


@pytest.fixture
def store(running_store: Store) -> Store:
    running_store.prefix = f"test-{uuid.uuid4().hex[:12]}"
    return running_store


def put_items(store: Store, texts: list[str], folder: str = "inputs") -> None:
    for number, text in enumerate(texts):
        store.put_text(f"{folder}/item-{number:03d}.txt", text)


def expected_rows(count: int) -> list[str]:
    return [f"item-{number:03d}.txt ok" for number in range(count)]


def run_files(bench: JobBench, store: Store, resume: bool = True, **config: object):
    step = bench.step(
        bench.config(**config),
        inputs=[FileDataset.from_files(store.url("inputs"))], output=store.url("output"),
    )
    return step.run(resume=resume)


def store_rows(store: Store) -> list[str]:
    return store.read_text("output/parallel_run_step.txt").splitlines()


def attempt_rows(store: Store) -> list[dict[str, str]]:
    text = store.read_text("output/logs/sys/job_report/processed_mini-batches.csv")
    return list(csv.DictReader(io.StringIO(text)))


def test_file_inputs_with_partition_format_and_a_retry_write_every_row_once_in_order(
    store: Store, bench: JobBench
):
    texts = ["ok"] * 6
    texts[3] = "fail-times 1"
    for number, text in enumerate(texts):
        user = "ann" if number < 3 else "bob"
        store.put_text(f"inputs/{user}/item-{number:03d}.txt", text)
    step = bench.step(
        bench.config(mini_batch_size=None, partition_keys=["user"]),
        inputs=[FileDataset.from_files(store.url("inputs"), partition_format="{user}/*.txt")],
        output=store.url("output"),
    )
    result = step.run()
    assert result.status == "Completed", result.message
    assert result.total_mini_batches == 2
    assert store_rows(store) == expected_rows(6)
    assert result.output_file == store.url("output/parallel_run_step.txt")
    statuses = [row["status"] for row in attempt_rows(store)]
    assert sorted(statuses) == ["failed", "succeeded", "succeeded"]
    assert store.read_text("output/logs/job_result.txt").startswith("Completed")
    assert bench.calls()["item-003.txt"] == 2


def test_csv_and_parquet_inputs_are_split_by_byte_range_and_row_group_on_the_store(
    store: Store, bench: JobBench, tmp_path: Path
):
    (tmp_path / "echo_rows.py").write_text(ECHO_ROWS)
    rows = pd.DataFrame({"id": range(600), "value": [f"v{n}" for n in range(600)]})
    with store.fs.open(store.url("csv/rows.csv"), "wb") as file:
        rows.to_csv(file, index=False)
    with store.fs.open(store.url("parquet/rows.parquet"), "wb") as file:
        pq.write_table(pa.Table.from_pandas(rows), file, row_group_size=100)
    expected = [f"{n} v{n}" for n in range(600)]
    for dataset, folder in [
        (TabularDataset.from_delimited_files(store.url("csv")), "csv-out"),
        (TabularDataset.from_parquet_files(store.url("parquet")), "parquet-out"),
    ]:
        config = bench.config(
            source_directory=str(tmp_path), entry_script="echo_rows.py", mini_batch_size="1 KB"
        )
        step = bench.step(config, inputs=[dataset], output=store.url(folder))
        result = step.run()
        assert result.status == "Completed", result.message
        assert result.total_mini_batches > 1, folder
        assert store.read_text(f"{folder}/parallel_run_step.txt").splitlines() == expected


def test_a_worker_killed_mid_run_loses_and_doubles_no_row_on_the_store(
    store: Store, bench: JobBench, monkeypatch: pytest.MonkeyPatch
):
    put_items(store, ["sleep 0.3"] * 5 + ["worker-pid"] + ["sleep 0.3"] * 6)
    pid_file = bench.root / "worker.pid"
    monkeypatch.setenv("WORKER_PID_FILE", str(pid_file))
    with worker_killed_once_it_says(pid_file) as killed:
        result = run_files(bench, store, node_count=2, process_count_per_node=1)
    assert killed
    assert result.status == "Completed", result.message
    rows = store_rows(store)
    assert len(rows) == 12 and len(set(rows)) == 12
    assert rows[:5] == expected_rows(5) and rows[6:] == expected_rows(12)[6:]


def test_resume_after_an_abort_runs_only_the_unfinished_mini_batches(
    store: Store, bench: JobBench
):
    texts = ["ok"] * 8
    texts[3] = "fail-times 1"
    put_items(store, texts)
    first = run_files(bench, store, error_threshold=0, run_max_try=1, process_count_per_node=1)
    assert first.status == "Failed"
    assert "error_threshold crossed" in first.message
    assert "error_threshold crossed" in store.read_text("output/logs/job_result.txt")
    committed = {
        f"item-{record.mini_batch_index:03d}.txt"
        for record in OutputFolder(store.url("output"), None).committed().values()
    }
    assert "item-003.txt" not in committed
    bench.calls_file.unlink()
    second = run_files(bench, store, error_threshold=0, run_max_try=1, process_count_per_node=1)
    assert second.status == "Completed", second.message
    rerun = bench.calls()
    assert set(rerun) == {f"item-{number:03d}.txt" for number in range(8)} - committed
    assert all(count == 1 for count in rerun.values())
    assert store_rows(store) == expected_rows(8)


def test_credentials_from_the_environment_never_reach_the_logs_or_the_flow_run(
    store: Store, bench: JobBench
):
    put_items(store, ["ok", "raise", "ok"])
    step = bench.step(
        bench.config(run_max_try=1),
        inputs=[FileDataset.from_files(store.url("inputs"))], output=store.url("output"),
    )
    state = parallel_run(
        config=step.parallel_run_config, inputs=step.inputs, output=step.output,
        name=f"storage-{store.prefix}", allow_reuse=False, return_state=True,
    )
    assert result_of(state).status == "Completed"
    assert_secret_is_nowhere(store, state.state_details.flow_run_id)


def test_workers_get_credentials_from_a_saved_config_blocks_secret_variables(
    store: Store, bench: JobBench, monkeypatch: pytest.MonkeyPatch
):
    """Dask workers started without credentials: the entry-script processes get them from
    the config's environment_variables, a secret of the saved block."""
    credentials = store.server.environment()
    for variable in credentials:
        monkeypatch.delenv(variable)
    cluster = DaskProcesses(bench.root / "dask")
    for variable, value in credentials.items():
        monkeypatch.setenv(variable, value)
    try:
        put_items(store, ["ok"] * 4)
        block_name = f"storage-{store.prefix}"
        bench.config(
            compute_target=cluster.address, environment_variables=credentials
        ).save(block_name, overwrite=True)
        config = ParallelRunConfig.load(block_name)
        step = ParallelRunStep(
            name=block_name, parallel_run_config=config,
            inputs=[FileDataset.from_files(store.url("inputs"))], output=store.url("output"),
            allow_reuse=False,
        )
        state = parallel_run(
            config=config, inputs=step.inputs, output=step.output, name=block_name,
            allow_reuse=False, return_state=True,
        )
    finally:
        cluster.stop()
    result = result_of(state)
    assert result.status == "Completed", result.message
    assert store_rows(store) == expected_rows(4)
    assert_secret_is_nowhere(store, state.state_details.flow_run_id)


def assert_secret_is_nowhere(store: Store, flow_run_id: uuid.UUID) -> None:
    secret = store.secret()
    logs_folder = store.url("output/logs")
    log_files = store.fs.find(logs_folder)
    assert any(path.endswith("job_result.txt") for path in log_files), log_files
    for path in log_files:
        assert secret not in store.fs.cat(path).decode(errors="replace"), path
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    logs = flow_run_logs(flow_run_id)
    assert logs
    assert secret not in str(flow_run.parameters)
    assert not [log.message for log in logs if secret in log.message]


def settled_requests(server: StorageServer) -> int:
    """The server's request count once its access log has caught up with the last answer."""
    count = server.requests()
    for _ in range(50):
        time.sleep(0.2)
        if (latest := server.requests()) == count:
            return count
        count = latest
    return count


def commit_rows(folder: OutputFolder, index: int, rows: list[str], attempt: int = 1) -> str:
    mini_batch_id = f"{index:06d}-id"
    staged = stage_rows(folder.staging_dir, mini_batch_id, attempt, iter(rows))
    folder.commit(CommitRecord(mini_batch_id, index, attempt, len(rows), len(rows), 0), staged)
    return staged


def test_commits_move_nothing_and_cost_at_most_three_requests_per_mini_batch(store: Store):
    """Staging, commit and the final file: one write of the rows, one ledger record, one read."""
    mini_batches = 40
    folder = OutputFolder(store.url("output"), "parallel_run_step.txt")
    folder.prepare({"job": 1}, resume=True)
    lost = commit_rows(folder, 0, ["attempt one"], attempt=1)
    before = settled_requests(store.server)
    for index in range(mini_batches):
        commit_rows(folder, index, [f"row {index}"], attempt=2)
    folder.assemble(f"{index:06d}-id" for index in range(mini_batches))
    requests = settled_requests(store.server) - before
    folder.close()
    assert store_rows(store) == [f"row {index}" for index in range(mini_batches)]
    assert store.fs.exists(lost)  # the first attempt's rows stay staged, never read
    assert requests <= 3 * mini_batches + 2, requests


def test_a_folder_committed_in_the_earlier_layout_resumes_on_the_store(store: Store):
    """Parts moved under parts/ and records that do not name their rows, as earlier versions
    of the package wrote them, are read back and assembled with new commits (one of them
    empty)."""
    state = "output/.parallel_run"
    store.put_text(f"{state}/job.json", '{"job": 1}')
    store.put_text(f"{state}/parts/000000-id.rows", "earlier row\n")
    store.put_text(
        f"{state}/ledger/000000-id.json",
        '{"mini_batch_id": "000000-id", "mini_batch_index": 0, "attempt": 1, "items": 1, '
        '"succeeded_items": 1, "failed_items": 0, "code_sha256": null}',
    )
    folder = OutputFolder(store.url("output"), "parallel_run_step.txt")
    assert list(folder.prepare({"job": 1}, resume=True)) == ["000000-id"]
    commit_rows(folder, 1, ["new row"])
    commit_rows(folder, 2, [])  # a run() that returned no rows: an empty part
    folder.assemble(["000000-id", "000001-id", "000002-id"])
    folder.close()
    assert store_rows(store) == ["earlier row", "new row"]
    again = OutputFolder(store.url("output"), "parallel_run_step.txt")
    assert set(again.prepare({"job": 1}, resume=True)) == {"000000-id", "000001-id", "000002-id"}
    again.close()
