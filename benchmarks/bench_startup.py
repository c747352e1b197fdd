"""Start-up: a 10-file job, from the call to its first mini-batch result and to its end.

    parallel_run, embedded defaults    ParallelRunStep(...).run() with compute_target="local"
                                       and no PREFECT_API_URL: the call starts Prefect's
                                       embedded API server and a local cluster itself
    parallel_run, running server       the same, with PREFECT_API_URL naming a `prefect server
                                       start` that was already running
    parallel_run, running server and   the same, compute_target naming an already running
      cluster                          cluster's scheduler
    client.map, running cluster        Client(address), then client.map over the 10 files
    Ray Data, including ray.init       ray.init(num_cpus=2), then map_batches(batch_size=1)
                                       over the 10 files, read as they stream out
    embedded API server alone          start_embedded_api(): what the first row pays for it

All run the same run() (benchmarks/scripts/first_result.py), which returns its mini-batch and
writes the time when the job's first call finished; every variant runs in a fresh Python
process, 2 processes each, and is timed from the call (after its imports, timed apart) to
that mark and to its end.

    .venv/bin/python benchmarks/bench_startup.py [--quick | --tiny] [--write-docs]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import common

FILES = 10
FIRST_RESULT_WITHIN = 2.0  # seconds after client.map's first result on a running cluster
EMBEDDED, SERVER, SERVER_CLUSTER = ("parallel_run, embedded defaults",
                                    "parallel_run, running server",
                                    "parallel_run, running server and cluster")
CLIENT_MAP, RAY, API_ALONE = ("client.map, running cluster", "Ray Data, including ray.init",
                              "embedded API server alone")
VARIANTS = (EMBEDDED, SERVER, SERVER_CLUSTER, CLIENT_MAP, RAY, API_ALONE)


def child(variant: str, files: list[str], marker: str, address: str) -> dict:
    """One variant, in this fresh process."""
    started = time.time()
    if variant == API_ALONE:
        from prefect_parallelrun.dispatch.embedded_api import start_embedded_api

        imported = time.time()
        start_embedded_api()
        return {"imports": imported - started, "call": imported, "end": time.time()}
    if variant == CLIENT_MAP:
        from distributed import Client, as_completed

        sys.path.insert(0, str(common.SCRIPTS))
        import first_result

        imported = time.time()
        with Client(address) as client:
            client.upload_file(str(common.SCRIPTS / "first_result.py"))
            futures = client.map(first_result.run_marked, [[path] for path in files],
                                 marker=marker, pure=False)
            for _ in as_completed(futures):
                pass
        return {"imports": imported - started, "call": imported, "end": time.time()}
    if variant == RAY:
        return ray_child(files, marker, started)
    # The package imports Prefect and Dask here, on first use of these names.
    from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep

    imported = time.time()
    config = ParallelRunConfig(
        source_directory=str(common.SCRIPTS), entry_script="first_result.py",
        mini_batch_size="1", error_threshold=0, output_action="append_row",
        compute_target=address if variant == SERVER_CLUSTER else "local", node_count=1,
        process_count_per_node=2, environment_variables={"BENCH_FIRST_RESULT": marker},
    )
    with tempfile.TemporaryDirectory() as output:
        result = ParallelRunStep(
            name="bench-startup", parallel_run_config=config,
            inputs=[FileDataset.from_files(files)], output=output, allow_reuse=False,
        ).run(resume=False)
        ended = time.time()
    if result.succeeded_mini_batches != len(files):
        raise RuntimeError(f"the start-up job failed: {result.message}")
    return {"imports": imported - started, "call": imported, "end": ended}


def ray_child(files: list[str], marker: str, started: float) -> dict:
    import ray
    import ray.data

    sys.path.insert(0, str(common.SCRIPTS))
    import first_result

    ray.data.DataContext.get_current().enable_progress_bars = False
    imported = time.time()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(common.SCRIPTS)}})
    try:
        rows = ray.data.from_items([{"path": path} for path in files],
                                   override_num_blocks=len(files))
        mapped = rows.map_batches(first_result.run_marked, batch_size=1, batch_format="pandas",
                                  fn_kwargs={"marker": marker}, num_cpus=1)
        count = sum(1 for _ in mapped.iter_rows())
        ended = time.time()
    finally:
        ray.shutdown()
    if count != len(files):
        raise RuntimeError(f"Ray Data returned {count} rows of {len(files)}")
    return {"imports": imported - started, "call": imported, "end": ended}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrefectServer:
    """`prefect server start` on 127.0.0.1 with a home of its own, stopped by its process
    group's id."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self._home = home

    def __enter__(self) -> PrefectServer:
        environment = {**os.environ, "PREFECT_HOME": str(self._home),
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_LOGGING_LEVEL": "WARNING"}
        prefect = Path(sys.executable).parent / "prefect"
        started = time.perf_counter()
        self._process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_healthy()
        self.start_seconds = time.perf_counter() - started
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("`prefect server start` exited before it answered: "
                                   f"{self._process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"`prefect server start` did not answer on {self.url} in 300 s")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def one_run(folder: Path, files: list[str], server: PrefectServer, address: str,
            number: int) -> dict[str, dict]:
    measured = {}
    for variant in VARIANTS:
        marker = folder / f"first-{number}-{VARIANTS.index(variant)}"
        env = {"PREFECT_API_URL": server.url} if variant in (SERVER, SERVER_CLUSTER) else {}
        report = common.run_child(__file__, [variant, json.dumps(files), str(marker), address],
                                  env=env).report
        first = float(marker.read_text()) - report["call"] if marker.exists() else None
        measured[variant] = {"imports": report["imports"], "first": first,
                             "end": report["end"] - report["call"]}
        print(f"run {number + 1}, {variant}: {measured[variant]}", flush=True)
    return measured


def summarize(runs: list[dict]) -> dict[str, dict]:
    """Medians over runs; the gap to client.map's first result pair by pair within a run."""
    lines = {}
    for variant in VARIANTS:
        line = {key: common.median([run[variant][key] for run in runs])
                for key in ("imports", "end")}
        if variant != API_ALONE:
            line["first"] = common.median([run[variant]["first"] for run in runs])
            line["gap"] = common.median([run[variant]["first"] - run[CLIENT_MAP]["first"]
                                         for run in runs])
        lines[variant] = line
    return lines


def table(lines: dict[str, dict], server_start: float, mode: common.Mode) -> str:
    text = [common.header(mode, f"Start-up, a {FILES}-file job (`benchmarks/bench_startup.py`)"),
            "| variant | imports | call to first result | first result after client.map's | "
            "call to end | target |", "|---|---|---|---|---|---|"]
    for variant, line in lines.items():
        # The target holds on a running cluster; the embedded defaults state their cost.
        target = "—"
        if variant == SERVER_CLUSTER:
            target = common.target_cell(line["gap"] <= FIRST_RESULT_WITHIN,
                                        f"within {FIRST_RESULT_WITHIN:g} s of client.map")
        if variant == EMBEDDED:
            target = "no target: the embedded API server's start is stated (last row)"
        if variant == API_ALONE:
            text.append(f"| {variant} | {line['imports']:.1f} s | — | — | {line['end']:.1f} s "
                        f"(its start cost) | — |")
            continue
        text.append(f"| {variant} | {line['imports']:.1f} s | {line['first']:.1f} s | "
                    f"{line['gap']:+.1f} s | {line['end']:.1f} s | {target} |")
    text.append(f"\nThe running server (`prefect server start`) took {server_start:.1f} s to "
                "answer its first health check (not counted above).")
    return "\n".join(text) + "\n"


def plot(lines: dict[str, dict], mode: common.Mode, write_docs: bool) -> None:
    shown = [variant for variant in VARIANTS if variant != API_ALONE]

    def draw(axes: object) -> None:
        positions = range(len(shown))
        axes.barh([p + 0.2 for p in positions], [lines[v]["first"] for v in shown], 0.4,
                  label="call to first result")
        axes.barh([p - 0.2 for p in positions], [lines[v]["end"] for v in shown], 0.4,
                  label="call to end")
        axes.set_yticks(list(positions))
        axes.set_yticklabels([v.replace(", ", ",\n", 1) for v in shown], fontsize=7)
        axes.invert_yaxis()
        axes.set_xlabel("seconds")
        axes.set_title(f"Start-up, {FILES} files" + common.mode_caption(mode))
        axes.legend(fontsize=8)

    common.save_plot("startup", draw, write_docs)


def main() -> None:
    options = common.parser(__doc__.splitlines()[0]).parse_args()
    if options.child:
        variant, files, marker, address = options.child
        common.child_report(child(variant, json.loads(files), marker, address))
        return
    mode = common.mode_of(options)
    from distributed import Client

    from prefect_parallelrun.execute.local_cluster import local_cluster

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "inputs").mkdir()
        files = []
        for number in range(FILES):
            path = folder / "inputs" / f"{number:02d}.txt"
            path.write_text(str(number))
            files.append(str(path))
        with PrefectServer(folder / "prefect-home") as server, \
                local_cluster(1, 2) as cluster, Client(cluster) as client:
            client.wait_for_workers(1)
            runs = [one_run(folder, files, server, cluster.scheduler_address, number)
                    for number in range(mode.runs)]
    lines = summarize(runs)
    common.publish("startup", table(lines, server.start_seconds, mode), options.write_docs)
    plot(lines, mode, options.write_docs)


if __name__ == "__main__":
    main()
