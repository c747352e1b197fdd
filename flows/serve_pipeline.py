"""Serve the sample scoring pipeline on a schedule, with no work pool or worker.

`.serve()` registers the deployment `scoring-pipeline/nightly-served` (every night at 02:00 UTC)
and runs its flow runs in this process until it is stopped (Ctrl+C). Start a run at once from
the UI's "Run" button or with:

    prefect deployment run 'scoring-pipeline/nightly-served' --param work_dir=/tmp/scores

It needs a Prefect server (`prefect server start`, then PREFECT_API_URL set); the deployments
in prefect.yaml do the same through a work pool.
"""

from pipeline import scoring_pipeline
from prefect.schedules import Cron

if __name__ == "__main__":
    scoring_pipeline.serve(
        name="nightly-served",
        schedules=[Cron("0 2 * * *", timezone="UTC")],
        parameters={"work_dir": "pipeline-work"},
        tags=["parallel-run", "sample"],
        description="Score the sensor readings in parallel and aggregate the scores.",
    )
