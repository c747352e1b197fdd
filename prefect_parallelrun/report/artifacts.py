"""The flow run's closing artifacts: the failed mini-batches table and the summary."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from prefect_parallelrun.report.result import ParallelRunResult


def publish_failed_mini_batches(rows: list[dict[str, str]]) -> None:
    """A table artifact with one row per failed mini-batch (none when nothing failed).

    Args:
        rows: One mapping per failed mini-batch: column name to text.
    """
    if rows:
        create_table_artifact(
            table=rows,
            key="failed-mini-batches",
            description="Mini-batches that failed every attempt, with their last error.",
        )


def publish_summary(result: ParallelRunResult) -> None:
    """A markdown artifact equal to job_result.txt, its lines kept apart by hard breaks.

    Args:
        result: The job's result.
    """
    create_markdown_artifact(
        markdown="  \n".join(result.summary_lines()) + "\n",
        key="parallel-run-summary",
        description=f"Parallel run {result.status}",
    )
