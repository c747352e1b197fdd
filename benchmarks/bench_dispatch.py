"""Per-mini-batch overhead: parallel_run vs a hand-written client.map vs DaskTaskRunner .map.

All three run the same work on the same LocalCluster (1 worker with 2 threads; parallel_run
uses it as 1 node x 2 processes), timed from call to result, against one Prefect API server
started for the benchmark (so that DaskTaskRunner's workers do not each start their own).
The hand-written client.map is the floor. Two kinds of work: `cpu` (hashing that keeps both
cores busy, so every bit of overhead CPU delays the work) and `sleep` (waiting, as for a GPU or
a remote service). Run:
    .venv/bin/python benchmarks/bench_dispatch.py            (1,000 x 100 ms and 200 x 1 s)
    .venv/bin/python benchmarks/bench_dispatch.py --quick    (smaller, for a smoke run)
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

from distributed import Client, LocalCluster  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.server.api.server import SubprocessASGIServer  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
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
    options = parser.parse_args()
    sizes = [(100, 0.1), (20, 1.0)] if options.quick else [(1000, 0.1), (200, 1.0)]
    kinds = options.kinds.split(",")
    cases = [(kind, count, seconds) for kind in kinds for count, seconds in sizes]
    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            rows = measure(cases, options.skip_dask_task_runner)
    finally:
        server.stop()
    print()
    print("| work | mini-batches x seconds | client.map (floor) | parallel_run | ratio | "
          "DaskTaskRunner .map | ratio |")
    print("|---|---|---|---|---|---|---|")
    for kind, count, seconds, floor, ours, naive in rows:
        print(
            f"| {kind} | {count} x {seconds * 1000:.0f} ms | {floor:.1f} s | {ours:.1f} s | "
            f"{ours / floor:.3f}x | {naive:.1f} s | {naive / floor:.2f}x |"
        )


def measure(cases: list[tuple[str, int, float]], skip_naive: bool) -> list[tuple]:
    rows = []
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
        silence_logs=logging.WARNING,
    ) as cluster, Client(cluster) as client, tempfile.TemporaryDirectory() as folder:
        address = cluster.scheduler_address
        # A warm-up, so that no measurement pays for first imports and connections.
        time_parallel_run(address, 4, 0.01, "sleep", Path(folder))
        for kind, count, seconds in cases:
            floor = time_client_map(client, count, seconds, kind)
            ours = time_parallel_run(address, count, seconds, kind, Path(folder))
            naive = (
                float("nan") if skip_naive
                else time_dask_task_runner(address, count, seconds, kind)
            )
            rows.append((kind, count, seconds, floor, ours, naive))
    return rows


if __name__ == "__main__":
    main()
