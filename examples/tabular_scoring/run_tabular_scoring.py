"""Tabular scoring with TabularDataset.from_delimited_files: scikit-learn's iris flowers in a
few CSV files, read in mini-batches of about 2 KB; the entry script returns a DataFrame.

One command (it writes the CSV files and trains the model first when they are missing):

    .venv/bin/python examples/tabular_scoring/run_tabular_scoring.py [--rows 1500] [--work-dir DIR]

Runs on the embedded defaults: Prefect's ephemeral API (SQLite) and a local Dask cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prepare_data import train_model, write_iris_files

from prefect_parallelrun import ParallelRunConfig, ParallelRunStep, TabularDataset

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser(description="Score iris rows with a TabularDataset.")
parser.add_argument("--rows", type=int, default=1500, help="How many rows in all.")
parser.add_argument("--files", type=int, default=3, help="How many CSV files to spread them on.")
parser.add_argument("--work-dir", type=Path, default=HERE / "work", help="Data and output.")
args = parser.parse_args()

work = args.work_dir.resolve()
tables = work / "iris"
model_file = work / "model" / "iris.pkl"
write_iris_files(tables, args.rows, args.files)
if not model_file.exists():
    train_model(model_file)

config = ParallelRunConfig(
    source_directory=str(HERE),
    entry_script="score.py",
    mini_batch_size="2 KB",
    error_threshold=10,
    output_action="append_row",
    environment=None,
    compute_target="local",
    node_count=1,
    process_count_per_node=2,
    run_invocation_timeout=60,
)
step = ParallelRunStep(
    name="iris-tabular-scoring",
    parallel_run_config=config,
    inputs=[
        TabularDataset.from_delimited_files(str(tables / "*.csv")).as_named_input("iris")
    ],
    output=str(work / "output"),
    arguments=["--model", str(model_file)],
    allow_reuse=False,
)
result = step.run(resume=False)

print()
print(f"status:       {result.status}")
print(f"message:      {result.message}")
print(f"mini-batches: {result.succeeded_mini_batches}/{result.total_mini_batches} succeeded")
print(f"rows:         {result.succeeded_items}/{result.total_items} scored")
print(f"output file:  {result.output_file}")
print(f"logs:         {result.logs_dir}")
if result.output_file:
    lines = Path(result.output_file).read_text().splitlines()
    print("first rows:   (row_id, 4 measurements, species, predicted species)")
    for line in lines[:3]:
        print(f"              {line}")
sys.exit(0 if result.succeeded else 1)
