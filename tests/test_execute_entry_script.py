"""The log records a run() sends back with its result: kept between `start` and `take`, within
the job's `max_log_records_per_run` and `max_log_message_chars` (no process, no cluster)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from prefect_parallelrun.execute.entry_script import RunLogCollector


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"test-run-log-collector-{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    logger.handlers.clear()


def collecting(logger: logging.Logger, max_records: int, max_message_chars: int) -> RunLogCollector:
    collector = RunLogCollector(max_records, max_message_chars)
    collector.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(collector)
    collector.start()
    return collector


def test_a_run_sends_back_max_log_records_per_run_records_and_counts_the_rest(
    logger: logging.Logger,
) -> None:
    collector = collecting(logger, max_records=2, max_message_chars=100)
    for number in range(5):
        logger.info("record %d", number)

    assert collector.take() == [
        ("INFO", "record 0"),
        ("INFO", "record 1"),
        ("WARNING", "3 more log records of this run are only in the process's log file."),
    ]


def test_a_message_longer_than_max_log_message_chars_is_cut(logger: logging.Logger) -> None:
    collector = collecting(logger, max_records=10, max_message_chars=5)
    logger.warning("abcdefgh")
    logger.warning("abcde")

    assert collector.take() == [("WARNING", "abcde [...]"), ("WARNING", "abcde")]


def test_nothing_is_kept_between_runs_and_each_run_has_its_own_cap(
    logger: logging.Logger,
) -> None:
    collector = collecting(logger, max_records=1, max_message_chars=100)
    logger.info("first run")
    assert collector.take() == [("INFO", "first run")]
    logger.info("between runs")

    collector.start()
    logger.info("second run")
    assert collector.take() == [("INFO", "second run")]
