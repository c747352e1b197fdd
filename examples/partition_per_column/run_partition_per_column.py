"""Partition per column: weekly sales in CSV files, one mini-batch per store and brand, the
partitions read from two columns of the table.

One command (it writes the CSV files first when they are missing):

    .venv/bin/python examples/partition_per_column/run_partition_per_column.py \
        [--weeks 52] [--work-dir DIR]

Runs on the embedded defaults: Prefect's ephemeral API (SQLite) and a local Dask cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prepare_data import write_sales_files

from prefect_parallelrun import ParallelRunConfig, ParallelRunStep, TabularDataset

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser(description="One mini-batch per store and brand.")
parser.add_argument("--weeks", type=int, default=52, help="Weeks of sales.")
parser.add_argument("--files", type=int, default=4, help="How many CSV files to spread them on.")
parser.add_argument("--work-dir", type=Path, default=HERE / "work", help="Data and output.")
args = parser.parse_args()

work = args.work_dir.resolve()
sales = work / "sales"
write_sales_files(sales, args.weeks, args.files)

config = ParallelRunConfig(
    source_directory=str(HERE),
    entry_script="score.py",
    error_threshold=10,
    output_action="append_row",
    environment=None,
    compute_target="local",
    node_count=1,
    process_count_per_node=2,
    run_invocation_timeout=60,
    partition_keys=["store", "brand"],
)
step = ParallelRunStep(
    name="sales-per-store-and-brand",
    parallel_run_config=config,
    inputs=[TabularDataset.from_delimited_files(str(sales / "*.csv")).as_named_input("sales")],
    output=str(work / "output"),
    allow_reuse=False,
)
result = step.run(resume=False)

print()
print(f"status:       {result.status}")
print(f"message:      {result.message}")
print(f"partitions:   {result.succeeded_mini_batches}/{result.total_mini_batches} succeeded")
print(f"rows:         {result.succeeded_items}/{result.total_items} scored")
print(f"output file:  {result.output_file}")
print(f"logs:         {result.logs_dir}")
if result.output_file:
    lines = Path(result.output_file).read_text().splitlines()
    print("first rows:   (week, store, brand, units, fitted units, partition, mini-batch)")
    for line in lines[:3]:
        print(f"              {line}")
sys.exit(0 if result.succeeded else 1)
