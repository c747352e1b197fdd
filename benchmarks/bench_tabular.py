"""Tables: a generated CSV (and the same rows as Parquet), a light run() returning a DataFrame,
against dask.dataframe writing the same rows; rows/s and peak RSS per process.

    parallel_run     TabularDataset.from_delimited_files / from_parquet_files, mini-batches of
                     16 MB (CSV byte ranges; Parquet: one row group each), 2 process slots,
                     output_action="append_row" (one line per row, values joined by spaces)
    dask.dataframe   read_csv(blocksize=16 MB) / read_parquet(split_row_groups=True)
                     .map_partitions(run).to_csv(single_file=True, sep=" ", no header or
                     index): the same lines, on a LocalCluster of 2 single-threaded workers

Both call the same run() (benchmarks/scripts/tabular_light.py). Sizes: 200 MB and 1 GB of CSV
(--quick: 20 MB and 50 MB); the Parquet file holds the same rows. Each run is a fresh process,
its cluster (and the package's embedded API server) started before the clock; the parent
samples every process's RSS every 0.2 s. Memory is flat when the largest process of a kind at
the larger size stays within 1.25x of the same at the smaller size.

    .venv/bin/python benchmarks/bench_tabular.py [--quick | --tiny] [--write-docs]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import common

LIGHT_RUN = common.SCRIPTS / "tabular_light.py"
FLAT = 1.25  # the larger input's peak RSS over the smaller one's, at most
THROUGHPUT_TARGET = 0.9  # parallel_run's rows/s over dask.dataframe's, at least
TOOLS = ("parallel_run", "dask.dataframe")
ROWS_PER_CHUNK = 200_000  # at most, when generating the CSV


def write_inputs(folder: Path, csv_bytes: int, rows_per_group: int) -> tuple[Path, Path, int]:
    """A CSV file of about `csv_bytes` and a Parquet file of the same rows; the row count."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = folder / f"table-{csv_bytes}.csv"
    parquet_path = csv_path.with_suffix(".parquet")
    random = np.random.default_rng(14)
    chunk_rows = max(1_000, min(ROWS_PER_CHUNK, csv_bytes // 400))  # about a tenth of the file
    rows = 0
    with csv_path.open("w") as csv_file:
        while csv_file.tell() < csv_bytes:
            chunk = pd.DataFrame({
                "row": np.arange(rows, rows + chunk_rows),
                "a": random.random(chunk_rows).round(6),
                "b": random.normal(size=chunk_rows).round(6),
                "c": random.integers(0, 1_000_000, chunk_rows),
                "label": random.choice(["red", "green", "blue", "amber"], chunk_rows),
            })
            chunk.to_csv(csv_file, header=rows == 0, index=False)
            rows += chunk_rows
    import pyarrow.csv as pcsv

    with pcsv.open_csv(csv_path) as reader, pq.ParquetWriter(parquet_path,
                                                            reader.schema) as writer:
        pending: list[pa.RecordBatch] = []
        for batch in reader:
            pending.append(batch)
            if sum(part.num_rows for part in pending) >= rows_per_group:
                write_row_group(writer, pending)
                pending = []
        if pending:
            write_row_group(writer, pending)
    return csv_path, parquet_path, rows


def write_row_group(writer: object, batches: list) -> None:
    import pyarrow as pa

    group = pa.Table.from_batches(batches)
    writer.write_table(group, row_group_size=group.num_rows)


def ours_spec(kind: str, path: Path, mini_batch: int, output: Path) -> dict:
    # Parquet mini-batches are whole row groups; 1 KB makes each group one mini-batch.
    size = f"{mini_batch // 1024} KB" if kind == "csv" else "1 KB"
    return {
        "config": {"source_directory": str(common.SCRIPTS), "entry_script": LIGHT_RUN.name,
                   "mini_batch_size": size, "error_threshold": 0,
                   "output_action": "append_row", "run_invocation_timeout": 600},
        "inputs": {kind: str(path)}, "output": str(output), "processes": 2,
    }


def dask_dataframe(spec: dict) -> dict:
    """The competitor, in this (fresh) process: the same rows through dask.dataframe."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2)
        client.upload_file(str(LIGHT_RUN))
        sys.path.insert(0, str(common.SCRIPTS))
        import tabular_light

        started = time.perf_counter()
        if spec["kind"] == "csv":
            table = dd.read_csv(spec["path"], blocksize=spec["mini_batch"])
        else:
            table = dd.read_parquet(spec["path"], split_row_groups=True)
        table.map_partitions(tabular_light.run).to_csv(
            spec["output"], single_file=True, header=False, index=False, sep=" "
        )
        seconds = time.perf_counter() - started
    with open(spec["output"], "rb") as written:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: written.read(2**24), b""))
    return {"seconds": seconds, "items": lines}


def measure(tool: str, kind: str, path: Path, rows: int, mini_batch: int,
            folder: Path) -> dict:
    output = folder / f"output-{tool}-{kind}"
    if tool == "parallel_run":
        spec = {"tool": tool, "job": ours_spec(kind, path, mini_batch, output)}
    else:
        spec = {"tool": tool, "kind": kind, "path": str(path), "mini_batch": mini_batch,
                "output": str(output / "rows.txt")}
        output.mkdir(parents=True, exist_ok=True)
    done = common.run_child(__file__, [json.dumps(spec)])
    if done.report["items"] != rows:
        raise RuntimeError(f"{tool} wrote {done.report['items']} rows of {rows} ({kind})")
    shutil.rmtree(output, ignore_errors=True)
    return {"seconds": done.report["seconds"], "rows_per_s": rows / done.report["seconds"],
            "rss": done.peak_rss_mb}


def largest_process(rss: dict[str, float]) -> tuple[str, float]:
    kind = max(rss, key=rss.get)
    return kind, rss[kind]


def summarize(runs: list[dict]) -> dict:
    """Medians over the runs; the ratio of rows/s pair by pair within each run."""
    ours, theirs = TOOLS
    line = {tool: {"seconds": common.median([run[tool]["seconds"] for run in runs]),
                   "rows_per_s": common.median([run[tool]["rows_per_s"] for run in runs]),
                   "rss": {kind: common.median([run[tool]["rss"].get(kind, 0.0)
                                                for run in runs])
                           for kind in runs[0][tool]["rss"]}}
            for tool in TOOLS}
    line["ratio"] = common.median([run[ours]["rows_per_s"] / run[theirs]["rows_per_s"]
                                   for run in runs])
    return line


def rss_cell(rss: dict[str, float]) -> str:
    return ", ".join(f"{kind} {mb:.0f} MB" for kind, mb in sorted(rss.items())
                     if kind != "other")


def flat_cell(small: dict[str, float], large: dict[str, float]) -> str:
    kinds = [kind for kind in small if kind != "other" and small[kind] > 0 and kind in large]
    growth = max(large[kind] / small[kind] for kind in kinds)
    return common.target_cell(growth <= FLAT, f"flat ({growth:.2f}x the smaller input's)")


def table(results: dict, mode: common.Mode) -> str:
    text = [common.header(mode, "Tables against `dask.dataframe` (`benchmarks/bench_tabular.py`)"),
            "| input | rows | tool | seconds | rows/s | parallel_run / dask.dataframe | "
            "peak RSS, largest process of each kind | target |",
            "|---|---|---|---|---|---|---|---|"]
    for (kind, size), (rows, line) in results.items():
        for tool in TOOLS:
            measured = line[tool]
            cells = [f"{kind.upper()} {size / 2**20:,.0f} MB", f"{rows:,}", tool,
                     f"{measured['seconds']:.1f} s", f"{measured['rows_per_s']:,.0f}"]
            target = "—"
            if tool == "parallel_run":
                cells.append(f"{line['ratio']:.2f}x")
                target = common.target_cell(line["ratio"] >= THROUGHPUT_TARGET,
                                            f">= {THROUGHPUT_TARGET}x rows/s")
                smaller = [other for (other_kind, other_size), other in results.items()
                           if other_kind == kind and other_size < size]
                if smaller:
                    target += "; memory " + flat_cell(smaller[0][1][tool]["rss"],
                                                      measured["rss"])
            else:
                cells.append("—")
            text.append("| " + " | ".join([*cells, rss_cell(measured["rss"]), target]) + " |")
    return "\n".join(text) + "\n"


def plot(results: dict, mode: common.Mode, write_docs: bool) -> None:
    def draw(axes: object) -> None:
        for kind in ("csv", "parquet"):
            for tool, style in zip(TOOLS, ("-", "--"), strict=True):
                points = sorted((size, largest_process(line[tool]["rss"])[1])
                                for (other, size), (_, line) in results.items() if other == kind)
                axes.plot([size / 2**20 for size, _ in points], [mb for _, mb in points],
                          marker="o", linestyle=style, label=f"{tool}, {kind.upper()}")
        axes.set_xlabel("input (MB of CSV)")
        axes.set_ylabel("peak RSS of the largest process (MB)")
        axes.set_ylim(bottom=0)
        axes.set_title("Memory against input size" + common.mode_caption(mode))
        axes.legend(fontsize=8)

    common.save_plot("tabular-memory", draw, write_docs)


def main() -> None:
    options = common.parser(__doc__.splitlines()[0]).parse_args()
    if options.child:
        spec = json.loads(options.child[0])
        report = (common.timed_job(spec["job"]) if spec["tool"] == "parallel_run"
                  else dask_dataframe(spec))
        common.child_report(report)
        return
    mode = common.mode_of(options)
    sizes = mode.pick((200, 1024), (20, 50), (2, 5))
    mini_batch = int(mode.pick(16, 4, 0.5) * 2**20)
    results = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for size in [int(megabytes * 2**20) for megabytes in sizes]:
            csv_path, parquet_path, rows = write_inputs(folder, size, mini_batch // 36)
            for kind, path in (("csv", csv_path), ("parquet", parquet_path)):
                runs = []
                for number in range(mode.runs):
                    runs.append({tool: measure(tool, kind, path, rows, mini_batch, folder)
                                 for tool in TOOLS})
                    print(f"{kind} {size / 2**20:.0f} MB run {number + 1}: {runs[-1]}",
                          flush=True)
                results[(kind, size)] = (rows, summarize(runs))
            csv_path.unlink()
            parquet_path.unlink()
    common.publish("tabular", table(results, mode), options.write_docs)
    plot(results, mode, options.write_docs)


if __name__ == "__main__":
    main()
