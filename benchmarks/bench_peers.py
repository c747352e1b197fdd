"""Dispatch against what users would pick instead: the same busy() calls, 2 processes each.

Rows W1 (1,000 x 100 ms of CPU) and W4 cpu (200 x 1 s of CPU) of bench_dispatch.py, and in a
table of its own (`--rows W2`) W2 (20,000 x 1 ms), each run by every competitor, one after
another, in each run (W2 leaves out the two that make a Prefect task run per mini-batch):

    client.map                  on a cluster of the kind the "local" target starts (the floor)
    parallel_run                a job over one file per mini-batch, in a fresh process, on
                                that cluster, with the project's defaults
    one Prefect task each       a bare Prefect task per mini-batch on a thread pool, waiting
                                for client.submit of the work, on that cluster
    DaskTaskRunner .map         Prefect's own .map on prefect-dask, on that cluster
    multiprocessing.Pool.imap   Pool(2).imap of one call per mini-batch
    Ray Data tasks / actors     map_batches(batch_size=1) over one row per mini-batch, on
                                ray.init(num_cpus=2): a function (tasks), or a class with
                                concurrency=2 (actors)

Each time counts from the call that starts the mini-batches to the last one's end; clusters,
pools and Ray start before (untimed), and each warms up with one call. Ratios are computed
pair by pair within a run, then the median over the runs is shown.

    .venv/bin/python benchmarks/bench_peers.py [--quick | --tiny] [--rows W1] [--write-docs]
    .venv/bin/python benchmarks/bench_peers.py --rows W2 [--write-docs]
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import bench_dispatch
import common
from bench_dispatch import (
    WORKLOADS,
    Workload,
    job_in_fresh_process,
    make_inputs,
    start_shared_api,
    time_client_map,
    time_dask_task_runner,
    time_prefect_tasks,
)

ROWS = ("W1", "W4 cpu")
# Workload 2 (many small mini-batches) is published in a table of its own.
SMALL_ROWS = "W2"
# Above this many mini-batches (W1's), the competitors that make one Prefect task run each are
# not run: at the ~20 task runs a second one API server records, W2's 20,000 take a quarter of
# an hour each (its --quick 2,000, minutes), and W1 already measures their cost per task run.
MAX_TASK_RUNS = 1000
FLOOR = "client.map"
OURS = "parallel_run"
COMPETITORS = (FLOOR, OURS, "one Prefect task each", "DaskTaskRunner .map",
               "multiprocessing.Pool.imap", "Ray Data tasks", "Ray Data actors")
# What parallel_run should be ahead of in workload 1 (rows W1 and W4 cpu); Pool and client.map
# are floors, and W2's one target is client.map's time.
AHEAD_OF = {"one Prefect task each", "DaskTaskRunner .map", "Ray Data tasks",
            "Ray Data actors"}


def time_pool(workload: Workload, count: int) -> float:
    import multiprocessing

    import busy

    call = functools.partial(busy.busy, kind=workload.kind)
    with multiprocessing.get_context("spawn").Pool(workload.processes) as pool:
        pool.map(call, [0.0] * workload.processes)  # the processes have started and imported
        started = time.perf_counter()
        for _ in pool.imap(call, [workload.seconds] * count):
            pass
        return time.perf_counter() - started


def busy_batch(batch: dict, seconds: float, kind: str) -> dict:
    """Ray Data tasks: one mini-batch's work per call."""
    import busy

    busy.busy(seconds, kind)
    return batch


class BusyActor:
    """Ray Data actors: one mini-batch's work per call."""

    def __init__(self) -> None:
        import busy

        self._busy = busy.busy

    def __call__(self, batch: dict, seconds: float, kind: str) -> dict:
        self._busy(seconds, kind)
        return batch


def start_ray(processes: int) -> None:
    import ray

    # Ray's workers import busy_batch and BusyActor from this module, busy() from scripts/.
    paths = [str(Path(__file__).resolve().parent), str(common.SCRIPTS)]
    ray.init(num_cpus=processes, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                 [*paths, os.environ.get("PYTHONPATH", "")])}})


def ray_dataset(count: int, workload: Workload, actors: bool) -> object:
    import ray.data

    rows = ray.data.from_items([{"mini_batch": number} for number in range(count)],
                               override_num_blocks=max(1, min(count, 200)))
    work = {"seconds": workload.seconds, "kind": workload.kind}
    if actors:
        pool = ray.data.ActorPoolStrategy(size=workload.processes)
        return rows.map_batches(BusyActor, batch_size=1, fn_kwargs=work, num_cpus=1,
                                compute=pool)
    return rows.map_batches(busy_batch, batch_size=1, fn_kwargs=work, num_cpus=1)


def time_ray(workload: Workload, count: int) -> dict[str, float]:
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    start_ray(workload.processes)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # a line per dataset at INFO
    try:
        times = {}
        for name, actors in (("Ray Data tasks", False), ("Ray Data actors", True)):
            warm_up = Workload("warm-up", workload.processes, 0.0, "sleep", workload.processes,
                               None)
            wait_for_free_cpus(workload.processes)
            ray_dataset(workload.processes, warm_up, actors).materialize()
            wait_for_free_cpus(workload.processes)
            started = time.perf_counter()
            done = ray_dataset(count, workload, actors).materialize()
            times[name] = time.perf_counter() - started
            if done.count() != count:
                raise RuntimeError(f"Ray Data returned {done.count()} rows of {count}")
        return times
    finally:
        ray.shutdown()


def wait_for_free_cpus(processes: int) -> None:
    """Until the last dataset's tasks or actors have let their CPUs go (at most 60 s), so
    that the next one does not start by waiting for them."""
    import ray

    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < processes and time.monotonic() < deadline:
        time.sleep(0.2)


def one_run(workload: Workload, count: int, folder: Path) -> dict[str, float | str]:
    """Every competitor once, on the same work; a competitor that fails gives its reason."""
    from distributed import Client

    from prefect_parallelrun.execute.local_cluster import local_cluster

    inputs = make_inputs(folder, count)
    times: dict[str, float | str] = {}
    with local_cluster(1, workload.processes) as cluster, Client(cluster) as client:
        client.wait_for_workers(1)
        address = cluster.scheduler_address
        times[FLOOR] = time_client_map(client, workload, count)
        times[OURS] = job_in_fresh_process(workload, count, inputs, "auto", address)["seconds"]
        if count > MAX_TASK_RUNS:
            reason = (f"not run: {count:,} Prefect task runs take about {count / 20 / 60:.0f} "
                      "min at the ~20 a second one API server records; see W1 for their cost")
            times["one Prefect task each"] = times["DaskTaskRunner .map"] = reason
        else:
            times["one Prefect task each"] = attempt(time_prefect_tasks, client, workload, count)
            times["DaskTaskRunner .map"] = attempt(time_dask_task_runner, address, workload,
                                                   count)
    times["multiprocessing.Pool.imap"] = attempt(time_pool, workload, count)
    ray_times = attempt(time_ray, workload, count)
    for name in ("Ray Data tasks", "Ray Data actors"):
        times[name] = ray_times[name] if isinstance(ray_times, dict) else ray_times
    return times


def attempt(measure: object, *arguments: object) -> object:
    """A competitor's measurement, or why it could not run here (its row stays)."""
    try:
        return measure(*arguments)
    except Exception as error:  # any failure becomes the row's reason
        first_line = (str(error).strip().splitlines() or [""])[0][:160]
        print(f"{measure.__name__} could not run: {type(error).__name__}: {first_line}",
              file=sys.stderr, flush=True)
        return f"could not run here: {type(error).__name__}: {first_line}"


def summarize(workload: Workload, runs: list[dict]) -> list[dict]:
    """Per competitor: the median time, and the medians of the ratios taken run by run."""
    lines = []
    for name in COMPETITORS:
        values = [run[name] for run in runs]
        failures = [value for value in values if isinstance(value, str)]
        if failures:
            lines.append({"name": name, "reason": failures[0]})
            continue
        floor_ratios = [run[name] / run[FLOOR] for run in runs]
        ours_ratios = [run[OURS] / run[name] for run in runs]
        lines.append({"name": name, "seconds": common.median(values),
                      "vs_floor": common.median(floor_ratios),
                      "ours_vs": common.median(ours_ratios)})
    return lines


def target(workload: Workload, line: dict) -> str:
    if line["name"] == OURS:
        met = line["vs_floor"] <= workload.target
        return common.target_cell(met, f"<= {workload.target:.2f}x client.map")
    if line["name"] in AHEAD_OF and workload.name in ROWS:
        return common.target_cell(line["ours_vs"] < 1.0, "parallel_run ahead")
    return "—"


def table(results: dict[str, tuple[Workload, int, list[dict]]], mode: common.Mode) -> str:
    text = [common.header(mode, "Dispatch against the alternatives (`benchmarks/bench_peers.py`)"),
            "| row | work | competitor | seconds | ms per mini-batch | / client.map "
            "| parallel_run / competitor | target |", "|---|---|---|---|---|---|---|---|"]
    for name, (workload, count, lines) in results.items():
        work = f"{count:,} x {workload.seconds * 1000:g} ms CPU, {workload.processes} processes"
        for line in lines:
            if "reason" in line:
                text.append(f"| {name} | {work} | {line['name']} | — | — | — | — | "
                            f"{line['reason']} |")
                continue
            per_mini_batch = line["seconds"] / count * 1000
            text.append(f"| {name} | {work} | {line['name']} | {line['seconds']:.1f} s | "
                        f"{per_mini_batch:.2f} ms | {line['vs_floor']:.3f}x | "
                        f"{line['ours_vs']:.3f}x | {target(workload, line)} |")
    return "\n".join(text) + "\n"


def plot(results: dict[str, tuple[Workload, int, list[dict]]], mode: common.Mode,
         name: str, write_docs: bool) -> None:
    def draw(axes: object) -> None:
        height = 0.8 / max(1, len(results))
        for offset, (name, (_, count, lines)) in enumerate(results.items()):
            positions = [index + offset * height for index in range(len(lines))]
            ratios = [line.get("vs_floor", 0.0) for line in lines]
            axes.barh(positions, ratios, height, label=f"{name} ({count:,} mini-batches)")
            for position, line in zip(positions, lines, strict=True):
                if "reason" in line:
                    why = ("not run at this size" if line["reason"].startswith("not run")
                           else "could not run here")
                    axes.text(0.02, position, why, va="center", fontsize=7)
        axes.axvline(1.0, color="grey", linewidth=0.8)
        axes.set_yticks([index + height * (len(results) - 1) / 2
                         for index in range(len(COMPETITORS))], list(COMPETITORS), fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel("time / client.map's time (shorter is faster)")
        axes.set_title("Dispatch, 2 processes" + common.mode_caption(mode))
        axes.legend(fontsize=8)

    common.save_plot(name, draw, write_docs)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"W1, W4 cpu or both; or {SMALL_ROWS} alone (a table of its own)")
    options = parser.parse_args()
    mode = common.mode_of(options)
    # Before Prefect is imported: the references' flows would log every task run at INFO.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # The references' tasks refer to bench_dispatch, which Dask's workers cannot import.
    import cloudpickle

    cloudpickle.register_pickle_by_value(bench_dispatch)
    by_name = {workload.name: workload for workload in WORKLOADS}
    start_shared_api()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        rows = [name.strip() for name in options.rows.split(",")]
        if SMALL_ROWS in rows and len(rows) > 1:
            raise SystemExit(f"--rows {SMALL_ROWS} has a table of its own: run it alone.")
        for name in rows:
            workload = by_name[name]
            count = int(mode.pick(workload.count, workload.count // 10,
                                  max(2, workload.count // 100)))
            runs = []
            for number in range(mode.runs):
                runs.append(one_run(workload, count, Path(folder) / f"{number}"))
                print(f"{workload.name} run {number + 1}: {runs[-1]}", flush=True)
            results[workload.name] = (workload, count, summarize(workload, runs))
        block = "peers-small" if rows == [SMALL_ROWS] else "peers"
        common.publish(block, table(results, mode), options.write_docs)
        plot(results, mode, block, options.write_docs)


if __name__ == "__main__":
    main()
