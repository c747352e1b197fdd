"""`ParallelRunResult`: what a parallel run returns, whatever its outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["Completed", "Failed"]


@dataclass(frozen=True)
class ParallelRunResult:
    """The outcome of one parallel run (docs/outputs.md).

    A failed job is `status="Failed"` with the reason in `message`; `output_file` is None for
    summary_only; `logs_dir` holds job_result.txt, job_error.txt and the per-attempt report.
    """

    status: Status
    message: str
    total_mini_batches: int
    succeeded_mini_batches: int
    failed_mini_batches: int
    total_items: int
    succeeded_items: int
    failed_items: int
    output_file: str | None
    logs_dir: str
    seconds: float

    @property
    def succeeded(self) -> bool:
        """Whether the job completed."""
        return self.status == "Completed"

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-able mapping.

        Returns:
            Field name to value.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParallelRunResult:
        """The result stored by `to_dict`.

        Args:
            data: Field name to value.

        Returns:
            The result.
        """
        return cls(**data)

    def summary_lines(self) -> list[str]:
        """The lines of job_result.txt.

        Returns:
            The status and reason on the first line, the figures after.
        """
        return [
            f"{self.status}: {self.message}",
            f"mini-batches: {self.succeeded_mini_batches} succeeded, "
            f"{self.failed_mini_batches} failed, {self.total_mini_batches} in all",
            f"items: {self.succeeded_items} succeeded, {self.failed_items} failed, "
            f"{self.total_items} in all",
            f"output file: {self.output_file or 'none (summary_only)'}",
            f"logs: {self.logs_dir}",
            f"seconds: {self.seconds:.1f}",
        ]
