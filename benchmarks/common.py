"""What the benchmarks against the alternatives share: run sizes, fresh processes sampled for
their memory, medians, the machine and versions, and publishing a table or a plot in the docs.

Each benchmark (bench_peers, bench_scaling, bench_tabular, bench_startup) takes:
    --quick        one run of smaller sizes, for a run of the whole set in minutes
    --tiny         the smallest sizes, to check that the benchmark's code works end to end
    --write-docs   write its table between its markers in docs/benchmarks.md, and its plot
                   under docs/img/
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
IMAGES = ROOT / "docs" / "img"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
RESULTS = ROOT / "benchmarks" / "results"  # plots of runs that do not write the docs

# How each process of a job is named in the memory tables, by a part of its command line.
PROCESS_KINDS = {
    "prefect_parallelrun.execute.child": "entry processes",
    "uvicorn": "API server",
    "distributed.Scheduler": "scheduler",
    "dask spec": "workers",
    "spawn_main": "workers",
    "forkserver": "workers",
    "raylet": "Ray services",
    "gcs_server": "Ray services",
    "ray::": "Ray workers",
    "default_worker.py": "Ray workers",
}


@dataclass(frozen=True)
class Mode:
    """The size of a run: "full" (published), "quick" (minutes) or "tiny" (code check)."""

    name: str
    runs: int

    def pick(self, full: int | float, quick: int | float, tiny: int | float) -> int | float:
        return {"full": full, "quick": quick, "tiny": tiny}[self.name]


def parser(description: str) -> argparse.ArgumentParser:
    """The command line every benchmark against the alternatives shares."""
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--quick", action="store_true", help="one run of smaller sizes")
    arguments.add_argument("--tiny", action="store_true",
                           help="the smallest sizes: checks the code, measures nothing")
    arguments.add_argument("--runs", type=int, help="runs per measurement (median); default "
                           "3, 1 with --quick or --tiny")
    arguments.add_argument("--write-docs", action="store_true",
                           help="write the table into docs/benchmarks.md and the plot under "
                                "docs/img/")
    arguments.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return arguments


def mode_of(options: argparse.Namespace) -> Mode:
    name = "tiny" if options.tiny else "quick" if options.quick else "full"
    runs = options.runs or (3 if name == "full" else 1)
    return Mode(name, runs)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def target_cell(met: bool, text: str) -> str:
    """A target column: the target, and whether this run met it."""
    return f"{text}: met" if met else f"{text}: **missed**"


@dataclass
class ChildRun:
    """A fresh Python process's JSON report and the peak RSS of each kind of process it
    started (its own under "driver"), in MB."""

    report: dict
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


class RssSampler:
    """The peak RSS of a process and each of its descendants, read every 0.2 s while they
    live (a process that lives less than 0.2 s may be missed), and the largest by kind."""

    def __init__(self, root_pid: int) -> None:
        import psutil

        self._root = psutil.Process(root_pid)
        self._peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_by_kind_mb(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for kind, rss in self._peaks.values():
            peaks[kind] = max(peaks.get(kind, 0.0), rss / 2**20)
        return peaks

    def _sample(self) -> None:
        while True:
            self._sample_once()
            if self._stop.wait(0.2):
                return

    def _sample_once(self) -> None:
        import psutil

        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
                kind = "driver" if process.pid == self._root.pid else self._kind(process)
            except psutil.Error:
                continue
            known = self._peaks.get(process.pid, (kind, 0))
            self._peaks[process.pid] = (kind, max(known[1], rss))

    @staticmethod
    def _kind(process: object) -> str:
        command = " ".join(process.cmdline())
        return next((name for marker, name in PROCESS_KINDS.items() if marker in command),
                    "other")


def run_child(script: str, arguments: Sequence[str], env: dict[str, str] | None = None,
              timeout: float = 7200) -> ChildRun:
    """Run `python <script> --child <arguments>` in a fresh process, sampling its memory;
    return the last JSON line it printed."""
    command = [sys.executable, script, "--child", *arguments]
    environment = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING", **(env or {})}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=environment) as child:
        with RssSampler(child.pid) as sampler:
            stdout, stderr = child.communicate(timeout=timeout)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark child {' '.join(command)} failed (exit {child.returncode}):\n"
            f"{stdout[-4000:]}\n{stderr[-4000:]}"
        )
    return ChildRun(json.loads(lines[-1]), sampler.peak_by_kind_mb())


def child_report(values: dict) -> None:
    """What a child prints last: the parent reads this line."""
    print(json.dumps(values), flush=True)


def versions() -> str:
    names = ["prefect", "dask", "distributed", "ray", "pandas", "pyarrow"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def machine() -> str:
    import psutil

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    memory = psutil.virtual_memory().total / 2**30
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GB memory, {platform.system()}"


def header(mode: Mode, what: str) -> str:
    """The lines above a published table: how, where and when it was measured."""
    sizes = {
        "full": f"full sizes, median of {mode.runs} runs",
        "quick": f"`--quick` sizes, median of {mode.runs} run(s): an indication, not a result",
        "tiny": "`--tiny`: a check of the benchmark's code at the smallest sizes on a busy "
                "machine; **not a measurement**, run `make bench`",
    }[mode.name]
    today = datetime.date.today().isoformat()
    return (f"{what}. Measured {today} ({sizes}).\n\n"
            f"Machine: {machine()}. Versions: {versions()}.\n")


def publish(name: str, text: str, write_docs: bool) -> None:
    """Print a table; with `write_docs`, also put it between `<!-- bench:NAME -->` and
    `<!-- /bench:NAME -->` in docs/benchmarks.md."""
    print(text, flush=True)
    if not write_docs:
        return
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    page = DOCS_PAGE.read_text()
    if start not in page or end not in page:
        raise SystemExit(f"{DOCS_PAGE} has no '{start}' ... '{end}' block for this table: add "
                         "the two marker lines where the table belongs, then run again.")
    before, rest = page.split(start, 1)
    _, after = rest.split(end, 1)
    DOCS_PAGE.write_text(f"{before}{start}\n{text.strip()}\n{end}{after}")
    print(f"(written into {DOCS_PAGE.relative_to(ROOT)}, block '{name}')")


def save_plot(name: str, draw: Callable[[object], None], write_docs: bool) -> Path:
    """Draw a figure with matplotlib's Agg backend and save it as docs/img/<name>.png with
    `write_docs`, else under benchmarks/results/; return where."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4), dpi=110)
    draw(axes)
    figure.tight_layout()
    target = IMAGES if write_docs else RESULTS
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    figure.savefig(path)
    pyplot.close(figure)
    print(f"(plot: {path})", flush=True)
    return path


def mode_caption(mode: Mode) -> str:
    """A plot title's suffix that says how the figure was measured."""
    return {"full": "", "quick": " (--quick)", "tiny": " (--tiny: a code check, not a result)"
            }[mode.name]


def timed_job(spec: dict) -> dict:
    """One parallel_run job in this (fresh) process, on a local cluster of one worker with
    `processes` process slots and the embedded API server, both started before the clock.

    `spec`: "config" (ParallelRunConfig keywords), "inputs" ({"files": folder} or
    {"csv" | "parquet": path}), "output" (a folder), "arguments", "processes".
    """
    from distributed import Client

    from prefect_parallelrun import FileDataset, ParallelRunConfig, TabularDataset
    from prefect_parallelrun.dispatch.embedded_api import start_embedded_api
    from prefect_parallelrun.dispatch.flow import parallel_run
    from prefect_parallelrun.execute.local_cluster import local_cluster

    start_embedded_api()
    kind, path = next(iter(spec["inputs"].items()))
    dataset = {
        "files": lambda: FileDataset.from_files(path),
        "csv": lambda: TabularDataset.from_delimited_files(path),
        "parquet": lambda: TabularDataset.from_parquet_files(path),
    }[kind]()
    processes = spec["processes"]
    with local_cluster(1, processes) as cluster, Client(cluster) as client:
        client.wait_for_workers(1)
        config = ParallelRunConfig(compute_target=cluster.scheduler_address, node_count=1,
                                   process_count_per_node=processes, **spec["config"])
        started = time.perf_counter()
        state = parallel_run(config=config, inputs=[dataset], output=spec["output"],
                             arguments=spec.get("arguments"), name="bench", resume=False,
                             allow_reuse=False, return_state=True)
        seconds = time.perf_counter() - started
    result = state.result(raise_on_failure=False)
    if not result.succeeded:
        raise RuntimeError(f"the benchmark job failed: {result.message}")
    return {"seconds": seconds, "items": result.succeeded_items,
            "output_file": str(result.output_file or "")}
