"""Failure thresholds as pure arithmetic (docs/dispatch.md); the flow only calls these functions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """The config's three limits, each None when it never aborts the job."""

    error_threshold: int | None
    allowed_failed_count: int | None
    allowed_failed_percent: float | None

    @classmethod
    def from_config(
        cls, error_threshold: int, allowed_failed_count: int | None,
        allowed_failed_percent: float | None,
    ) -> Thresholds:
        """The thresholds of a config, each "never" value (-1, None, 100%) made None.

        Args:
            error_threshold: Failed items allowed; -1 for no limit.
            allowed_failed_count: Failing mini-batches allowed; None or -1 for no limit.
            allowed_failed_percent: Percent of failed mini-batches allowed; None or 100 for
                no limit.

        Returns:
            The thresholds.
        """
        return cls(
            error_threshold=None if error_threshold == -1 else error_threshold,
            allowed_failed_count=(
                None if allowed_failed_count in (None, -1) else allowed_failed_count
            ),
            allowed_failed_percent=(
                None if allowed_failed_percent in (None, 100) else allowed_failed_percent
            ),
        )


@dataclass(frozen=True)
class FailureCounts:
    """What the thresholds are judged on, at one moment of the job."""

    failed_items: int
    failing_mini_batches: int
    failed_mini_batches: int
    total_mini_batches: int
    all_scheduled: bool


def crossed_threshold(thresholds: Thresholds, counts: FailureCounts) -> str | None:
    """Judge the counts against the thresholds; a pure function.

    Args:
        thresholds: The job's thresholds.
        counts: The counts at this moment.

    Returns:
        The message naming the first threshold crossed, with its figures, or None.
    """
    if thresholds.error_threshold is not None and counts.failed_items > thresholds.error_threshold:
        return (
            f"error_threshold crossed: {counts.failed_items} failed items > "
            f"error_threshold {thresholds.error_threshold}."
        )
    limit = thresholds.allowed_failed_count
    if limit is not None and counts.failing_mini_batches > limit:
        return (
            f"allowed_failed_count crossed: {counts.failing_mini_batches} mini-batches whose "
            f"latest attempt failed > allowed_failed_count {limit}."
        )
    percent_limit = thresholds.allowed_failed_percent
    if percent_limit is not None and counts.all_scheduled and counts.total_mini_batches:
        percent = counts.failed_mini_batches / counts.total_mini_batches * 100
        if percent > percent_limit:
            return (
                f"allowed_failed_percent crossed: {counts.failed_mini_batches} of "
                f"{counts.total_mini_batches} mini-batches failed ({percent:.2f}%) > "
                f"allowed_failed_percent {percent_limit:g}%."
            )
    return None
