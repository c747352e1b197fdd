"""Benchmark of commits on object storage: one job's output on local disk, on an S3 endpoint
(moto's server, through s3fs) and on Azure Blob (Azurite, through adlfs).

    python benchmarks/bench_storage.py                 # 5,000 mini-batches per store
    python benchmarks/bench_storage.py --quick         # 500
    python benchmarks/bench_storage.py --stores s3     # one store only

Each job reads one small local file per mini-batch and writes one append_row row per file to
the output folder on the store, so that what is measured is the output's cost: rows staged by
the entry-script processes, the flow process's commit of each mini-batch (part and ledger
record), and the final append_row file. Seconds in `OutputFolder.commit` and
`OutputFolder.assemble` are timed in the flow process; requests are counted at the server from
its access log (every process of the job together) and grouped by the kind of object touched.
The servers are the tests' (tests/storage_servers.py); Azurite needs `make storage-emulators`.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.storage_servers; the package as installed

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep  # noqa: E402
from prefect_parallelrun.commit import OutputFolder  # noqa: E402
from tests.storage_servers import (  # noqa: E402
    Azurite,
    MotoS3,
    StorageServer,
    azurite_blob_program,
)

BUCKET = "bench"
ENTRY_SCRIPT = "def run(mini_batch):\n    return [path.rsplit('/', 1)[-1] for path in mini_batch]\n"
REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP')


class Timers:
    """Seconds and calls spent in methods of OutputFolder, timed in this (the flow) process."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()

    @contextmanager
    def timing(self, *names: str) -> Iterator[None]:
        originals = {name: getattr(OutputFolder, name) for name in names}
        for name, method in originals.items():
            setattr(OutputFolder, name, self._timed(name, method))
        try:
            yield
        finally:
            for name, method in originals.items():
                setattr(OutputFolder, name, method)

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed


def request_kinds(log_text: str) -> collections.Counter[str]:
    """Requests by method and the kind of object: staged rows, parts, ledger, the rest."""
    kinds: collections.Counter[str] = collections.Counter()
    for method, path in REQUEST.findall(log_text):
        if "restype=container&comp=list" in path or "list-type=2" in path:
            method = "LIST"
        where = next(
            (kind for kind in ("staged", "parts", "ledger") if f"parallel_run/{kind}" in path
             or f"parallel_run%2F{kind}" in path or f"prefix={kind}" in path),
            "other",
        )
        kinds[f"{method} {where}"] += 1
    return kinds


def start(store: str) -> tuple[StorageServer | None, str]:
    """The store's server with the bucket or container, its credentials exported here."""
    if store == "local":
        return None, tempfile.mkdtemp(prefix="bench-storage-out-") + "/output"
    program = azurite_blob_program()
    if store == "azure" and program is None:
        raise SystemExit("Azurite is not installed: run `make storage-emulators` first.")
    server = MotoS3().start() if store == "s3" else Azurite(program).start()
    try:
        os.environ.update(server.environment())
        if isinstance(server, MotoS3):
            server.make_bucket(BUCKET)
            return server, f"s3://{BUCKET}/output"
        server.make_container(BUCKET)
        return server, f"abfs://{BUCKET}/output"
    except BaseException:
        server.stop()
        raise


def run_job(store: str, mini_batches: int, inputs: Path, scripts: Path) -> dict[str, Any]:
    server, output = start(store)
    try:
        config = ParallelRunConfig(
            source_directory=str(scripts), entry_script="rows.py", mini_batch_size="1",
            error_threshold=-1, output_action="append_row", compute_target="local",
            node_count=1, process_count_per_node=2, run_invocation_timeout=60, run_max_try=3,
        )
        step = ParallelRunStep(
            name=f"bench-storage-{store}", parallel_run_config=config,
            inputs=[FileDataset.from_files(str(inputs))], output=output, allow_reuse=False,
        )
        timers = Timers()
        before = server.log_file.read_text(errors="replace") if server else ""
        started = time.perf_counter()
        with timers.timing("commit", "assemble"):
            result = step.run(resume=False)
        seconds = time.perf_counter() - started
        if result.status != "Completed" or result.succeeded_mini_batches != mini_batches:
            raise SystemExit(f"the {store} job did not complete: {result.message}")
        kinds = collections.Counter()
        if server is not None:
            kinds = request_kinds(server.log_file.read_text(errors="replace")[len(before):])
        return {
            "store": store, "seconds": seconds, "commit": timers.seconds["commit"],
            "commits": timers.calls["commit"], "assemble": timers.seconds["assemble"],
            "requests": sum(kinds.values()), "kinds": kinds,
        }
    finally:
        if server is not None:
            server.stop()


def table(mini_batches: int, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"| output on ({mini_batches:,} mini-batches) | job s | commit s (all threads) | "
        "ms per commit | assemble s | requests per mini-batch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"local": "local disk", "s3": "S3 (moto server)", "azure": "Azure Blob (Azurite)"}
    for row in rows:
        requests = f"{row['requests'] / mini_batches:.1f}" if row["requests"] else "-"
        lines.append(
            f"| {names[row['store']]} | {row['seconds']:.0f} | {row['commit']:.0f} | "
            f"{1000 * row['commit'] / max(row['commits'], 1):.1f} | {row['assemble']:.1f} | "
            f"{requests} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 mini-batches per store")
    parser.add_argument("--mini-batches", type=int, default=None)
    parser.add_argument("--stores", nargs="+", default=["local", "s3", "azure"],
                        choices=["local", "s3", "azure"])
    options = parser.parse_args()
    mini_batches = options.mini_batches or (500 if options.quick else 5000)
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as folder:
        inputs, scripts = Path(folder) / "inputs", Path(folder) / "scripts"
        inputs.mkdir()
        scripts.mkdir()
        (scripts / "rows.py").write_text(ENTRY_SCRIPT)
        for number in range(mini_batches):
            (inputs / f"item-{number:05d}.txt").write_text("ok")
        rows = []
        for store in options.stores:
            row = run_job(store, mini_batches, inputs, scripts)
            rows.append(row)
            per_batch = {kind: round(count / mini_batches, 2)
                         for kind, count in sorted(row["kinds"].items())}
            print(f"{store}: {row['seconds']:.0f} s, commit {row['commit']:.1f} s over "
                  f"{row['commits']} commits, assemble {row['assemble']:.1f} s; requests per "
                  f"mini-batch by kind: {per_batch}", flush=True)
    print(table(mini_batches, rows))


if __name__ == "__main__":
    main()
