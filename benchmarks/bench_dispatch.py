"""Per-mini-batch overhead: parallel_run vs a hand-written client.map vs DaskTaskRunner .map.

All run the same work on the same LocalCluster (1 worker with 2 threads; parallel_run uses it
as 1 node x 2 processes), timed from call to result, against one Prefect API server started
for the benchmark (so that DaskTaskRunner's workers do not each start their own). The
hand-written client.map is the floor. A fourth column, "one Prefect task each", is the least
any design can cost that makes each mini-batch a Prefect task run (SPEC §8): a bare task per
mini-batch on a ThreadPoolTaskRunner that only waits for client.submit of the work. Two kinds
of work: `cpu` (hashing that keeps both cores busy, so every bit of overhead CPU delays the
work) and `sleep` (waiting, as for a GPU or a remote service). A second table gives the CPU
each process spent per mini-batch during parallel_run. Run:
    .venv/bin/python benchmarks/bench_dispatch.py            (1,000 x 100 ms and 200 x 1 s)
    .venv/bin/python benchmarks/bench_dispatch.py --quick    (smaller, for a smoke run)
    --recorder-batch-size 100   (the API server records task-run events 100 at a time;
                                 Prefect's default is 1)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import psutil  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.server.api.server import SubprocessASGIServer  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from prefect_dask import DaskTaskRunner  # noqa: E402

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from busy import busy  # noqa: E402


def work(number: int, seconds: float, kind: str) -> int:
    busy(seconds, kind)
    return number


def time_client_map(client: Client, count: int, seconds: float, kind: str) -> float:
    started = time.perf_counter()
    futures = client.map(work, range(count), seconds=seconds, kind=kind, pure=False)
    client.gather(futures)
    return time.perf_counter() - started


def time_dask_task_runner(address: str, count: int, seconds: float, kind: str) -> float:
    @task
    def work_task(number: int) -> int:
        return work(number, seconds, kind)

    @flow(task_runner=DaskTaskRunner(address=address))
    def mapped() -> list[int]:
        return work_task.map(range(count)).result()

    started = time.perf_counter()
    mapped()
    return time.perf_counter() - started


def time_prefect_tasks(client: Client, count: int, seconds: float, kind: str) -> float:
    @task
    def mini_batch(number: int) -> int:
        return client.submit(work, number, seconds, kind, pure=False).result()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def prefect_tasks() -> list[int]:
        return mini_batch.map(range(count)).result()

    started = time.perf_counter()
    prefect_tasks()
    return time.perf_counter() - started


class CpuMeter:
    """CPU seconds used by this process, the API server and the worker's process tree."""

    def __init__(self, server_pid: int, worker_pid: int) -> None:
        self._processes = {
            "flow process": psutil.Process(),
            "API server": psutil.Process(server_pid),
            "worker + entry processes": psutil.Process(worker_pid),
        }

    def read(self) -> dict[str, float]:
        own = self._processes["flow process"].cpu_times()
        used = {"flow process": own.user + own.system}  # its children are measured apart
        for name, process in list(self._processes.items())[1:]:
            used[name] = _tree_cpu(process)
        return used


def _tree_cpu(process: psutil.Process) -> float:
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def time_parallel_run(
    address: str, count: int, seconds: float, kind: str, folder: Path
) -> float:
    inputs = folder / f"inputs-{count}"
    inputs.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (inputs / f"{number:06d}").write_text(str(number))
    config = ParallelRunConfig(
        source_directory=str(SCRIPTS), entry_script="busy.py", mini_batch_size="1",
        error_threshold=-1, output_action="append_row", compute_target=address,
        node_count=1, process_count_per_node=2, run_invocation_timeout=600,
        environment_variables={"BUSY_SECONDS": str(seconds), "BUSY_KIND": kind},
    )
    step = ParallelRunStep(
        name="bench", parallel_run_config=config,
        inputs=[FileDataset.from_files(str(inputs))],
        output=str(folder / f"output-{count}"), allow_reuse=False,
    )
    started = time.perf_counter()
    result = step.run(resume=False)
    elapsed = time.perf_counter() - started
    assert result.succeeded_mini_batches == count, result.message
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kinds", default="cpu,sleep")
    parser.add_argument("--skip-dask-task-runner", action="store_true")
    parser.add_argument("--recorder-batch-size", type=int, default=None)
    options = parser.parse_args()
    if options.recorder_batch_size:
        os.environ["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] = str(
            options.recorder_batch_size
        )
        os.environ["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"] = "1"
    sizes = [(100, 0.1), (20, 1.0)] if options.quick else [(1000, 0.1), (200, 1.0)]
    kinds = options.kinds.split(",")
    cases = [(kind, count, seconds) for kind in kinds for count, seconds in sizes]
    before = {process.pid for process in psutil.Process().children()}
    server = SubprocessASGIServer()
    server.start(timeout=120)
    (server_process,) = [
        process for process in psutil.Process().children() if process.pid not in before
    ]
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            rows = measure(cases, options.skip_dask_task_runner, server_process.pid)
    finally:
        server.stop()
    print()
    print("| work | mini-batches x seconds | client.map (floor) | parallel_run | ratio | "
          "one Prefect task each | ratio | DaskTaskRunner .map | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        floor = row["client.map"]
        print(
            f"| {row['kind']} | {row['count']} x {row['seconds'] * 1000:.0f} ms | "
            f"{floor:.1f} s | {row['parallel_run']:.1f} s | {row['parallel_run'] / floor:.3f}x | "
            f"{row['prefect tasks']:.1f} s | {row['prefect tasks'] / floor:.3f}x | "
            f"{row['dask task runner']:.1f} s | {row['dask task runner'] / floor:.2f}x |"
        )
    print()
    names = list(rows[0]["cpu"])
    columns = " | ".join(names)
    print(f"| work | mini-batches x seconds | {columns} | all, less the work's CPU |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for row in rows:
        per = {name: 1000 * used / row["count"] for name, used in row["cpu"].items()}
        work = row["seconds"] * 1000 if row["kind"] == "cpu" else 0.0  # sleep uses no CPU
        overhead = sum(per.values()) - work
        print(
            f"| {row['kind']} | {row['count']} x {row['seconds'] * 1000:.0f} ms | "
            + " | ".join(f"{per[name]:.0f} ms" for name in names)
            + f" | {overhead:.0f} ms |"
        )


def measure(
    cases: list[tuple[str, int, float]], skip_naive: bool, server_pid: int
) -> list[dict]:
    rows = []
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
        silence_logs=logging.WARNING,
    ) as cluster, Client(cluster) as client, tempfile.TemporaryDirectory() as folder:
        address = cluster.scheduler_address
        (worker_pid,) = client.run(os.getpid).values()
        meter = CpuMeter(server_pid, worker_pid)
        # A warm-up, so that no measurement pays for first imports and connections.
        time_parallel_run(address, 4, 0.01, "sleep", Path(folder))
        for kind, count, seconds in cases:
            row: dict = {"kind": kind, "count": count, "seconds": seconds}
            row["client.map"] = time_client_map(client, count, seconds, kind)
            before = meter.read()
            row["parallel_run"] = time_parallel_run(address, count, seconds, kind, Path(folder))
            after = meter.read()
            row["cpu"] = {name: after[name] - before[name] for name in before}
            row["prefect tasks"] = time_prefect_tasks(client, count, seconds, kind)
            row["dask task runner"] = (
                float("nan") if skip_naive
                else time_dask_task_runner(address, count, seconds, kind)
            )
            print(row, flush=True)
            rows.append(row)
    return rows


if __name__ == "__main__":
    main()
