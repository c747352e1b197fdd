"""A job rides out a Prefect API server that goes away for a while (a restart, an upgrade, a
database fail-over) and comes back.

Nothing of a job's data goes through the API: rows, commits, the ledger and the logs folder are
written by the job itself. What does go to the API waits for it:

- Requests (the flow run's states, artifacts, the cancel watch's reads): Prefect's client
  retries a request that finds no server `PREFECT_CLIENT_MAX_RETRIES` times (default 5, with
  waits of 2, 4, 8, 16 and 32 s: about a minute). For the job's duration, where the user set no
  value, the job's own threads retry `api_client_max_retries` times (the setting; 8 by default,
  waits of 2, 4, ... 256 s: about eight and a half minutes).
- Task-run states travel as events on a websocket; Prefect's events client keeps every event
  the server has not confirmed and sends it again once it reconnects. Meanwhile it logs, for
  each event it tried, a warning that event data "may be lost" and an ERROR naming the whole
  event. For the job's duration those become one warning that says what happens instead.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from prefect.events.clients import RETRYABLE_EXCEPTIONS
from prefect.settings import (
    PREFECT_CLIENT_MAX_RETRIES,
    get_current_settings,
    temporary_settings,
)

EVENTS_LOGGERS = ("prefect.events.clients", "prefect._internal.concurrency")

OUTAGE_WARNING = (
    "The Prefect API server cannot be reached (its event stream %s: %s). The job goes on: its "
    "rows, commits and logs folder do not depend on the API. Task-run states are kept and sent "
    "when the server is back; log lines wait about a minute, and those of a longer outage are "
    "in the logs folder only."
)


@contextmanager
def riding_out_api_outages(max_retries: int) -> Iterator[None]:
    """Within this context (and threads started in a copy of it), Prefect's client retries an
    unreachable API `max_retries` times, unless the user chose a number; Prefect's events
    client says once, in a warning, that the server cannot be reached.

    The logging filters it adds are removed, and the client setting restored, when the
    context ends.

    Args:
        max_retries: Retries of a request that finds no server, used where the user set no
            `PREFECT_CLIENT_MAX_RETRIES` (the `api_client_max_retries` setting).

    Yields:
        Nothing; the job runs inside the context.
    """
    with ExitStack() as stack:
        chosen = get_current_settings().to_environment_variables(exclude_unset=True)
        if PREFECT_CLIENT_MAX_RETRIES.name not in chosen:
            stack.enter_context(
                temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: max_retries})
            )
        outage_filter = EventsOutageFilter()
        for name in EVENTS_LOGGERS:
            logging.getLogger(name).addFilter(outage_filter)
            stack.callback(logging.getLogger(name).removeFilter, outage_filter)
        yield


class EventsOutageFilter(logging.Filter):
    """Turns the first of the events client's connection warnings into `OUTAGE_WARNING` and
    drops the rest, with the ERROR lines of events it could not send yet (it keeps them)."""

    def __init__(self) -> None:
        super().__init__()
        self._warned = False

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the first connection warning, drop the rest and their ERROR lines.

        Args:
            record: A record of `prefect.events.clients` or `prefect._internal.concurrency`.

        Returns:
            Whether the record is logged.
        """
        if record.name == "prefect.events.clients":
            if not record.getMessage().startswith("Unable to connect to"):
                return True
            if self._warned:
                return False
            self._warned = True
            record.msg, record.args = OUTAGE_WARNING, (_url(record), _error_now())
            return True
        # prefect._internal.concurrency: "Service 'EventsWorker' failed to process item ...",
        # logged while the events client's connection error is being handled.
        error = sys.exc_info()[1]
        return not (
            isinstance(record.args, tuple) and record.args
            and record.args[0] == "EventsWorker"
            and isinstance(error, RETRYABLE_EXCEPTIONS)
        )


def _url(record: logging.LogRecord) -> str:
    return str(record.args[0]) if isinstance(record.args, tuple) and record.args else "?"


def _error_now() -> str:
    error = sys.exc_info()[1]
    return "unknown error" if error is None else f"{type(error).__name__}: {error}"
