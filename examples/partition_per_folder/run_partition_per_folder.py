"""Partition per folder: WAV recordings laid out as `<user>/<genre>/<name>.wav`, one mini-batch
per user and genre, read from the folder names by `partition_format`.

One command (it writes the recordings first when they are missing):

    .venv/bin/python examples/partition_per_folder/run_partition_per_folder.py \
        [--tracks 10] [--work-dir DIR]

Runs on the embedded defaults: Prefect's ephemeral API (SQLite) and a local Dask cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prepare_data import write_recordings

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser(description="One mini-batch per <user>/<genre> folder.")
parser.add_argument("--tracks", type=int, default=10, help="Recordings per user and genre.")
parser.add_argument("--work-dir", type=Path, default=HERE / "work", help="Data and output.")
args = parser.parse_args()

work = args.work_dir.resolve()
recordings = work / "recordings"
write_recordings(recordings, args.tracks)

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
    partition_keys=["user", "genre"],
)
step = ParallelRunStep(
    name="recordings-per-user-and-genre",
    parallel_run_config=config,
    inputs=[
        FileDataset.from_files(
            str(recordings), partition_format="{user}/{genre}/*.wav"
        ).as_named_input("recordings")
    ],
    output=str(work / "output"),
    allow_reuse=False,
)
result = step.run(resume=False)

print()
print(f"status:       {result.status}")
print(f"message:      {result.message}")
print(f"partitions:   {result.succeeded_mini_batches}/{result.total_mini_batches} succeeded")
print(f"recordings:   {result.succeeded_items}/{result.total_items} measured")
print(f"output file:  {result.output_file}")
print(f"logs:         {result.logs_dir}")
if result.output_file:
    lines = Path(result.output_file).read_text().splitlines()
    print("first rows:   (user, genre, mini-batch, file, seconds, loudness)")
    for line in lines[:3]:
        print(f"              {line}")
sys.exit(0 if result.succeeded else 1)
