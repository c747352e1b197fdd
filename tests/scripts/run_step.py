"""Runs one job in its own process, for tests that kill the flow process mid-run.

Usage: python run_step.py INPUTS OUTPUT [config overrides as JSON]
$STEP_NAME names the step; $MINI_BATCHES_PER_TASK sets the step's mini_batches_per_task.
"""

import json
import os
import sys

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep


def main() -> int:
    inputs, output = sys.argv[1], sys.argv[2]
    overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    fields = dict(
        source_directory=str(__import__("pathlib").Path(__file__).parent),
        entry_script="job_behaviours.py",
        mini_batch_size="1",
        error_threshold=-1,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
    )
    config = ParallelRunConfig(**{**fields, **overrides})
    step = ParallelRunStep(
        name=os.environ.get("STEP_NAME", "killed-job"), parallel_run_config=config,
        inputs=[FileDataset.from_files(inputs)], output=output, allow_reuse=False,
        mini_batches_per_task=os.environ.get("MINI_BATCHES_PER_TASK", "auto"),
    )
    return 0 if step.run().succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
