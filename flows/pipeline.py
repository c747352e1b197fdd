"""A sample pipeline around the parallel step: prepare inputs -> ParallelRunStep -> aggregate.

Self-contained and offline: `prepare_inputs` writes files of sensor readings (deterministic
for a given `files` and `readings_per_file`), the step scores each file on a local Dask cluster
(flows/scripts/score_readings.py), and `aggregate` reads the step's output file and writes
`summary.json` into the work folder. The step is a subflow of the pipeline's flow run.

Run it once:            .venv/bin/python flows/pipeline.py [WORK_DIR]
Serve it on a schedule: .venv/bin/python flows/serve_pipeline.py
Deploy it to a pool:    prefect deploy -n nightly-scoring   (see prefect.yaml)
"""

import json
import random
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep
from prefect_parallelrun.dispatch.embedded_api import start_embedded_api

SCRIPTS = Path(__file__).resolve().parent / "scripts"
OUTPUT_FILE_NAME = "scores.txt"


@task
def prepare_inputs(work_dir: Path, files: int, readings_per_file: int) -> Path:
    """Write `files` files of readings under `<work_dir>/readings/`, the same every time."""
    folder = work_dir / "readings"
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        generator = random.Random(number)
        readings = [f"{generator.uniform(0, 100):.4f}" for _ in range(readings_per_file)]
        (folder / f"sensor-{number:04d}.txt").write_text("\n".join(readings) + "\n")
    return folder


@task
def aggregate(output_file: str, summary_file: Path) -> dict:
    """Combine the per-file scores into one summary, written as JSON and returned."""
    rows = [line.split() for line in Path(output_file).read_text().splitlines()]
    readings = sum(int(row[1]) for row in rows)
    summary = {
        "files": len(rows),
        "readings": readings,
        # The per-file means weighted by their reading counts: the mean of all readings.
        "mean": round(sum(int(row[1]) * float(row[2]) for row in rows) / readings, 4),
        "peak": max(float(row[3]) for row in rows),
        "peak_file": max(rows, key=lambda row: float(row[3]))[0],
    }
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@flow(name="scoring-pipeline", log_prints=False)
def scoring_pipeline(
    work_dir: str = "pipeline-work",
    files: int = 40,
    readings_per_file: int = 50,
    files_per_mini_batch: int = 5,
    process_count_per_node: int = 2,
) -> dict:
    """Prepare sensor readings, score each file in parallel, aggregate the scores.

    Args:
        work_dir: Folder for the readings, the step's output and summary.json; relative
            paths are taken from the working directory of the flow run's process.
        files: How many files of readings to prepare.
        readings_per_file: How many readings each file holds.
        files_per_mini_batch: Files per mini-batch of the parallel step.
        process_count_per_node: Entry-script processes on the local Dask cluster.

    Returns:
        The summary: files, readings, mean, peak and peak_file.
    """
    logger = get_run_logger()
    work = Path(work_dir).resolve()
    readings = prepare_inputs(work, files, readings_per_file)
    config = ParallelRunConfig(
        source_directory=str(SCRIPTS),
        entry_script="score_readings.py",
        mini_batch_size=str(files_per_mini_batch),
        error_threshold=0,
        output_action="append_row",
        append_row_file_name=OUTPUT_FILE_NAME,
        compute_target="local",
        node_count=1,
        process_count_per_node=process_count_per_node,
        run_invocation_timeout=60,
    )
    step = ParallelRunStep(
        name="score-readings",
        parallel_run_config=config,
        inputs=[FileDataset.from_files(str(readings)).as_named_input("readings")],
        output=str(work / "scores"),
        allow_reuse=False,
    )
    result = step.run(resume=False)
    if not result.succeeded:
        raise RuntimeError(
            f"The scoring step failed: {result.message} Its logs are in {result.logs_dir}."
        )
    summary = aggregate(result.output_file, work / "summary.json")
    logger.info(
        "Scored %d readings in %d files: mean %.4f, peak %.4f in %s.",
        summary["readings"], summary["files"], summary["mean"], summary["peak"],
        summary["peak_file"],
    )
    return summary


if __name__ == "__main__":
    # Without a Prefect server (PREFECT_API_URL unset): the embedded one, given time to start.
    start_embedded_api()
    print(json.dumps(scoring_pipeline(*sys.argv[1:2]), indent=2))
