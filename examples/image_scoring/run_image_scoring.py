"""Image scoring with a FileDataset: scikit-learn's handwritten digits, one PNG file each,
classified in mini-batches of 25 files on a local Dask cluster.

One command (it writes the images and trains the model first when they are missing):

    .venv/bin/python examples/image_scoring/run_image_scoring.py [--images 500] [--work-dir DIR]

Runs on the embedded defaults: Prefect's ephemeral API (SQLite) and a local Dask cluster.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from prepare_data import train_model, write_digit_images

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser(description="Score digit images with a FileDataset.")
parser.add_argument("--images", type=int, default=500, help="How many images (at most 898).")
parser.add_argument("--work-dir", type=Path, default=HERE / "work", help="Data and output.")
args = parser.parse_args()

work = args.work_dir.resolve()
images = work / "images"
labels_file = work / "labels.csv"
model_file = work / "model" / "digits.pkl"
write_digit_images(images, labels_file, args.images)
if not model_file.exists():
    train_model(model_file)

config = ParallelRunConfig(
    source_directory=str(HERE),
    entry_script="score.py",
    mini_batch_size="25",
    error_threshold=10,
    output_action="append_row",
    environment=None,
    compute_target="local",
    node_count=1,
    process_count_per_node=2,
    run_invocation_timeout=60,
)
step = ParallelRunStep(
    name="digits-image-scoring",
    parallel_run_config=config,
    inputs=[FileDataset.from_files(str(images)).as_named_input("digit_images")],
    output=str(work / "output"),
    arguments=["--model", str(model_file)],
    allow_reuse=False,
)
result = step.run(resume=False)

print()
print(f"status:       {result.status}")
print(f"message:      {result.message}")
print(f"mini-batches: {result.succeeded_mini_batches}/{result.total_mini_batches} succeeded")
print(f"images:       {result.succeeded_items}/{result.total_items} scored")
print(f"output file:  {result.output_file}")
print(f"logs:         {result.logs_dir}")
if result.output_file:
    with labels_file.open(newline="") as file:
        labels = {row["file"]: row["label"] for row in csv.DictReader(file)}
    predictions = [
        line.split() for line in Path(result.output_file).read_text().splitlines() if line
    ]
    right = sum(labels.get(name) == digit for name, digit in predictions)
    print(f"accuracy:     {right}/{len(predictions)} predictions match the true digit")
sys.exit(0 if result.succeeded else 1)
