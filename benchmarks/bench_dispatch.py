"""Throughput: parallel_run with the project's defaults against a hand-written client.map.

Each row runs the same work twice on one cluster of the kind this package's "local" compute
target starts (a Dask scheduler and one worker with one thread per process slot, each a
process of its own): once as `client.map` of one call per mini-batch (the floor: no retries,
no commits, no bookkeeping), then as a parallel_run job over one file per mini-batch with the
project's defaults and Prefect's embedded API server on this machine, as a user's script gets
them. The job runs in a fresh Python process, so that its peak RSS and CPU are its own.

    W1  1,000 x 100 ms of CPU                       2 processes
    W2  20,000 x ~1 ms of CPU                       2 processes
    W3  4,000 x 200 ms asleep                       32 processes
    W4  200 x 1 s, of CPU and asleep                2 processes
    W5  100,000 trivial mini-batches (100,000 files) 2 processes: completes, peak RSS

`cpu` work hashes until the thread has used its CPU time, so every bit of overhead CPU delays
the work; `sleep` waits, as for a GPU or a remote service. For each job: the CPU each process
kind spent per mini-batch (sampled every 0.2 s, so processes that live under 0.2 s are missed),
the number of Prefect task runs created (counted through the API), and the flow process's peak
RSS. Run:
    .venv/bin/python benchmarks/bench_dispatch.py                 every row
    .venv/bin/python benchmarks/bench_dispatch.py --quick         a tenth of each, for a smoke run
    .venv/bin/python benchmarks/bench_dispatch.py --rows W2,W5 --mini-batches-per-task 1
    .venv/bin/python benchmarks/bench_dispatch.py --profile 1000  the flow process's profile
                                   (all threads, with yappi), one mini-batch per task run
    --references: also one bare Prefect task per mini-batch, and DaskTaskRunner's .map
    --server-defaults: the API server records each task-run event in its own transaction, as
                       with Prefect's defaults
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "scripts"
sys.path.insert(0, str(SCRIPTS))  # busy.py, the work, for the hand-written references


@dataclass(frozen=True)
class Workload:
    name: str
    count: int
    seconds: float
    kind: str
    processes: int
    target: float | None

    def describe(self) -> str:
        work = "asleep" if self.kind == "sleep" else "CPU"
        return f"{self.count:,} x {self.seconds * 1000:g} ms {work}, {self.processes} processes"


WORKLOADS = [
    Workload("W1", 1000, 0.1, "cpu", 2, 1.15),
    Workload("W2", 20000, 0.001, "cpu", 2, 1.0),
    Workload("W3", 4000, 0.2, "sleep", 32, 1.15),
    Workload("W4 cpu", 200, 1.0, "cpu", 2, 1.06),
    Workload("W4 sleep", 200, 1.0, "sleep", 2, 1.03),
    Workload("W5", 100000, 0.0, "sleep", 2, None),
]
# --profile N: N mini-batches of 1 ms of CPU, one task run each.
PROFILED = Workload("profile", 1000, 0.001, "cpu", 2, None)


def time_client_map(client: object, workload: Workload, count: int) -> float:
    import busy

    client.upload_file(str(SCRIPTS / "busy.py"))  # benchmarks/ is not on the workers' path
    client.submit(busy.busy, 0.0, "sleep", pure=False).result()  # connections, imports
    started = time.perf_counter()
    futures = client.map(busy.busy, [workload.seconds] * count, kind=workload.kind, pure=False)
    client.gather(futures)
    return time.perf_counter() - started


def time_prefect_tasks(client: object, workload: Workload, count: int) -> float:
    """Reference: a bare Prefect task per mini-batch on a thread pool, waiting for its call."""
    import busy
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def mini_batch(number: int) -> None:
        client.submit(busy.busy, workload.seconds, workload.kind, pure=False).result()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2 * workload.processes))
    def prefect_tasks() -> None:
        mini_batch.map(range(count)).result()

    started = time.perf_counter()
    prefect_tasks()
    return time.perf_counter() - started


def time_dask_task_runner(address: str, workload: Workload, count: int) -> float:
    """Reference: Prefect's own `.map` on prefect-dask's DaskTaskRunner."""
    import busy
    from prefect import flow, task
    from prefect_dask import DaskTaskRunner

    @task
    def mini_batch(number: int) -> None:
        busy.busy(workload.seconds, workload.kind)

    @flow(task_runner=DaskTaskRunner(address=address))
    def mapped() -> None:
        mini_batch.map(range(count)).result()

    started = time.perf_counter()
    mapped()
    return time.perf_counter() - started


class CpuSampler:
    """CPU seconds of this process's descendants by kind, read every 0.2 s while they live."""

    KINDS = {
        "uvicorn": "API server",
        "distributed.Scheduler": "scheduler",
        "prefect_parallelrun.execute.child": "entry processes",
        "dask spec": "workers",
        "spawn_main": "workers",
    }

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._sample_once()
        self._baseline = self.totals()
        self._own = self._own_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_once()
        self.used = {
            name: value - self._baseline.get(name, 0.0) for name, value in self.totals().items()
        }
        self.used["flow process"] = self._own_cpu() - self._own

    def totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for kind, seconds in self._seen.values():
            totals[kind] = totals.get(kind, 0.0) + seconds
        return totals

    def _own_cpu(self) -> float:
        times = self._me.cpu_times()
        return times.user + times.system

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self._sample_once()

    def _sample_once(self) -> None:
        import psutil

        for process in self._me.children(recursive=True):
            try:
                command = " ".join(process.cmdline())
                times = process.cpu_times()
            except psutil.Error:
                continue
            kind = next(
                (name for marker, name in self.KINDS.items() if marker in command), "other"
            )
            self._seen[process.pid] = (kind, times.user + times.system)


def run_job(workload: Workload, count: int, inputs: Path, mini_batches_per_task: str,
            address: str, profile: bool) -> dict:
    """One parallel_run job in this process (a fresh one), as a user's script runs it."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect_parallelrun import FileDataset, ParallelRunConfig
    from prefect_parallelrun.dispatch.embedded_api import start_embedded_api
    from prefect_parallelrun.dispatch.flow import parallel_run

    start_embedded_api()
    config = ParallelRunConfig(
        source_directory=str(SCRIPTS), entry_script="busy.py", mini_batch_size="1",
        error_threshold=-1, output_action="append_row", compute_target=address,
        node_count=1, process_count_per_node=workload.processes, run_invocation_timeout=600,
        environment_variables={
            "BUSY_SECONDS": str(workload.seconds), "BUSY_KIND": workload.kind
        },
    )
    per_task = mini_batches_per_task if mini_batches_per_task == "auto" else int(
        mini_batches_per_task
    )
    if profile:
        import yappi  # every thread's CPU, where cProfile sees only the calling thread

        yappi.set_clock_type("cpu")
    with tempfile.TemporaryDirectory() as output, CpuSampler() as sampler:
        started = time.perf_counter()
        if profile:
            yappi.start(builtins=False)
        state = parallel_run(
            config=config, inputs=[FileDataset.from_files(str(inputs))], output=output,
            name=f"bench-{workload.name.replace(' ', '-')}", resume=False, allow_reuse=False,
            mini_batches_per_task=per_task, return_state=True,
        )
        if profile:
            yappi.stop()
        seconds = time.perf_counter() - started
        # Inside the CPU count: the API server's CPU includes recording what it still lags.
        task_runs = count_task_runs(state.state_details.flow_run_id)
    result = state.result(raise_on_failure=False)
    assert result.succeeded_mini_batches == count, result.message
    row = {
        "seconds": seconds,
        "cpu": sampler.used,
        "task_runs": task_runs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if profile:
        row["profile"] = profile_lines(yappi.get_func_stats(), count)
    return row


def profile_lines(stats: list, count: int) -> str:
    """The top 20 functions by their own CPU, and ours by CPU with callees, per mini-batch."""
    lines = ["own ms | incl. ms | calls | function"]
    for entry in sorted(stats, key=lambda entry: entry.tsub, reverse=True)[:20]:
        lines.append(f"{1000 * entry.tsub / count:.3f} | {1000 * entry.ttot / count:.3f} | "
                     f"{entry.ncall} | {entry.module.rsplit('site-packages/', 1)[-1]}:"
                     f"{entry.lineno} {entry.name}")
    ours = [entry for entry in stats if "prefect_parallelrun" in entry.module]
    lines.append("\nthis package, incl. ms | calls | function")
    for entry in sorted(ours, key=lambda entry: entry.ttot, reverse=True)[:12]:
        lines.append(f"{1000 * entry.ttot / count:.3f} | {entry.ncall} | "
                     f"{entry.module.rsplit('prefect_parallelrun/', 1)[-1]}:{entry.name}")
    return "\n".join(lines)


def count_task_runs(flow_run_id: object) -> int:
    """Task runs the API server has recorded for the flow run, once the count settles."""
    from prefect.client.orchestration import get_client

    body = {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
    last, deadline = -1, time.monotonic() + 900
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            count = client._client.post("/task_runs/count", json=body).json()
            if count == last:
                return count
            last = count
            time.sleep(2)
    return last


def make_inputs(folder: Path, count: int) -> Path:
    inputs = folder / f"inputs-{count}"
    inputs.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (inputs / f"{number:06d}").write_text(str(number))
    return inputs


def job_in_fresh_process(workload: Workload, count: int, inputs: Path, per_task: str,
                         address: str, profile: bool = False) -> dict:
    command = [
        sys.executable, __file__, "--job", workload.name, "--count", str(count),
        "--inputs", str(inputs), "--mini-batches-per-task", per_task, "--address", address,
    ] + (["--profile-job"] if profile else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the benchmark job failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def measure(workload: Workload, count: int, folder: Path, per_task: str,
            profile: bool = False, references: bool = False) -> dict:
    """client.map (for rows with a target), then the job, then the references, on one fresh
    cluster."""
    from distributed import Client

    from prefect_parallelrun.execute.local_cluster import local_cluster

    inputs = make_inputs(folder, count)
    row: dict = {}
    with local_cluster(1, workload.processes) as cluster, Client(cluster) as client:
        client.wait_for_workers(1)
        if workload.target is not None:
            row["client.map"] = time_client_map(client, workload, count)
        with CpuSampler() as sampler:
            row |= job_in_fresh_process(
                workload, count, inputs, per_task, cluster.scheduler_address, profile
            )
        if references:
            row["one Prefect task each"] = time_prefect_tasks(client, workload, count)
            row["DaskTaskRunner"] = time_dask_task_runner(
                cluster.scheduler_address, workload, count
            )
    for kind in ("scheduler", "workers", "entry processes"):
        row["cpu"][kind] = sampler.used.get(kind, 0.0)
    return row


def start_shared_api() -> None:
    """The references' task runs need an API server, and DaskTaskRunner's workers must reach
    it: one for the whole run, started before any cluster (the jobs use it too)."""
    from prefect.server.api.server import SubprocessASGIServer

    from prefect_parallelrun.dispatch.embedded_api import start_embedded_api

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    start_embedded_api()
    os.environ["PREFECT_API_URL"] = SubprocessASGIServer().api_url


def print_tables(rows: list[dict], per_task: str) -> None:
    print(f"\nmini_batches_per_task={per_task}\n")
    print("| row | work | client.map | parallel_run | ratio | target | task runs | "
          "flow peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        floor = row.get("client.map")
        ratio = f"{row['seconds'] / floor:.3f}x" if floor else "—"
        target = f"<= {row['target']:.2f}x" if row["target"] else "completes, RSS <= 1 GB"
        floor_text = f"{floor:.1f} s" if floor else "—"
        print(
            f"| {row['name']} | {row['describe']} | {floor_text} | {row['seconds']:.1f} s | "
            f"{ratio} | {target} | {row['task_runs']:,} | {row['peak_rss_mb']:.0f} MB |"
        )
    if "DaskTaskRunner" in rows[0]:
        print("\nReferences, on the same cluster\n\n| row | client.map | one Prefect task each "
              "| ratio | DaskTaskRunner .map | ratio |\n|---|---|---|---|---|---|")
        for row in rows:
            floor = row["client.map"]
            print(f"| {row['name']} | {floor:.1f} s | {row['one Prefect task each']:.1f} s | "
                  f"{row['one Prefect task each'] / floor:.3f}x | "
                  f"{row['DaskTaskRunner']:.1f} s | {row['DaskTaskRunner'] / floor:.3f}x |")
    names = ["flow process", "API server", "scheduler", "workers", "entry processes"]
    print(f"\nCPU per mini-batch\n\n| row | {' | '.join(names)} |")
    print("|---|" + "---|" * len(names))
    for row in rows:
        cells = [f"{1000 * row['cpu'].get(name, 0.0) / row['count']:.2f} ms" for name in names]
        print(f"| {row['name']} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of every row")
    parser.add_argument("--rows", default=",".join(w.name for w in WORKLOADS))
    parser.add_argument("--mini-batches-per-task", default="auto")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="profile the flow process over N mini-batches of 1 ms, one per "
                             "task run")
    parser.add_argument("--references", action="store_true",
                        help="also time one bare Prefect task per mini-batch, and Prefect's "
                             ".map on DaskTaskRunner (slow: minutes per row)")
    parser.add_argument("--server-defaults", action="store_true",
                        help="the embedded API server with Prefect's default task-run recorder "
                             "(one event per transaction) instead of this package's batching")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--profile-job", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    by_name = {workload.name: workload for workload in [*WORKLOADS, PROFILED]}
    if options.server_defaults:  # a value the user set: the job's embedded server keeps it
        os.environ["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] = "1"
    if options.job:
        row = run_job(by_name[options.job], options.count, Path(options.inputs),
                      options.mini_batches_per_task, options.address, options.profile_job)
        print(json.dumps(row))
        return
    if options.references:
        start_shared_api()
    with tempfile.TemporaryDirectory() as folder:
        if options.profile:
            row = measure(PROFILED, options.profile, Path(folder), "1", profile=True)
            flow_cpu = 1000 * row["cpu"]["flow process"] / options.profile
            server_cpu = 1000 * row["cpu"]["API server"] / row["task_runs"]
            print(f"flow process CPU per mini-batch: {flow_cpu:.2f} ms; API server CPU per "
                  f"task run: {server_cpu:.2f} ms ({row['task_runs']} task runs)\n")
            print(row["profile"])
            return
        rows = []
        for name in options.rows.split(","):
            workload = by_name[name.strip()]
            count = workload.count // 10 if options.quick else workload.count
            row = {"name": workload.name, "describe": workload.describe(), "count": count,
                   "target": workload.target}
            row |= measure(workload, count, Path(folder), options.mini_batches_per_task,
                           references=options.references)
            print(json.dumps({key: value for key, value in row.items() if key != "profile"}),
                  flush=True)
            rows.append(row)
        print_tables(rows, options.mini_batches_per_task)


if __name__ == "__main__":
    main()
