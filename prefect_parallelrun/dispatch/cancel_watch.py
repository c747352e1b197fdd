"""`CancelWatch`: notices that the job's flow run, or a flow run above it, was cancelled.

A flow run started by a deployment's runner or worker is cancelled with a SIGTERM, which the
flow sees as an exception. A flow run started from Python or the command line has nobody to
send it one: cancelling it in the UI or with `prefect flow-run cancel` only sets its state to
Cancelling. The watch reads the states of the job's flow run and of its parents every
`poll_seconds` (the `cancel_poll_seconds` setting) and calls `on_cancel` once when one of them
is Cancelling or Cancelled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

MAX_PARENTS = 16
CANCEL_STATES = (StateType.CANCELLING, StateType.CANCELLED)


class CancelWatch:
    """A daemon thread that polls flow-run states until closed or a cancel is seen.

    A context manager: the thread starts on entry and stops on exit. While the API server
    cannot be reached, the watch warns once and keeps polling; it never raises.

    Args:
        flow_run_id: The job's flow run.
        on_cancel: Called once, in the watch's thread, with a sentence naming the cancelled
            flow run and its state.
        logger: Where the watch warns that the API cannot be reached, and says when it
            answers again.
        poll_seconds: Seconds between two reads of the states.
    """

    def __init__(
        self, flow_run_id: str, on_cancel: Callable[[str], None],
        logger: logging.Logger | logging.LoggerAdapter, poll_seconds: float,
    ) -> None:
        self._flow_run_id = UUID(flow_run_id)
        self._on_cancel = on_cancel
        self._logger = logger
        self._poll_seconds = poll_seconds
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="parallel-run-cancel-watch", daemon=True
        )

    def start(self) -> CancelWatch:
        """Start polling.

        Returns:
            This watch.
        """
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling and wait (briefly) for the thread to end."""
        self._closed.set()
        self._thread.join(timeout=self._poll_seconds + 10)

    def __enter__(self) -> CancelWatch:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _watch(self) -> None:
        warned = False
        # No retries inside the client: while the API server is away, the next poll is the
        # retry, and closing the watch never waits for a request's back-off.
        no_retries = temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0})
        with no_retries, get_client(sync_client=True) as client:
            run_ids: list[UUID] | None = None
            while not self._closed.wait(self._poll_seconds):
                try:
                    if run_ids is None:
                        run_ids = _run_and_parents(client, self._flow_run_id)
                    reason = _cancelled(client, run_ids)
                except Exception as error:  # the API is down for a moment: try again later
                    if not warned:
                        self._logger.warning(
                            "Cannot read the flow run's state to notice a cancel (%s: %s); "
                            "trying again every %.0f s.",
                            type(error).__name__, error, self._poll_seconds,
                        )
                        warned = True
                    continue
                if warned:
                    self._logger.info("The Prefect API server answers again.")
                    warned = False
                if reason is not None:
                    self._on_cancel(reason)
                    return


def _run_and_parents(client, flow_run_id: UUID) -> list[UUID]:
    """The flow run and every flow run above it (a subflow's parent, its parent, ...)."""
    ids = [flow_run_id]
    run = client.read_flow_run(flow_run_id)
    while run.parent_task_run_id is not None and len(ids) <= MAX_PARENTS:
        parent_task = client.read_task_run(run.parent_task_run_id)
        if parent_task.flow_run_id is None:
            break
        ids.append(parent_task.flow_run_id)
        run = client.read_flow_run(parent_task.flow_run_id)
    return ids


def _cancelled(client, run_ids: list[UUID]) -> str | None:
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)), limit=len(run_ids)
    )
    for run in sorted(runs, key=lambda run: run_ids.index(run.id)):
        if run.state is not None and run.state.type in CANCEL_STATES:
            which = "this flow run" if run.id == run_ids[0] else f"its parent flow run {run.name!r}"
            return (
                f"{which} ({run.id}) was cancelled: its state is {run.state.name}"
                + (f" ({run.state.message})" if run.state.message else "")
                + "."
            )
    return None
