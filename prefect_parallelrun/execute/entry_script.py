"""`EntryScript`: what an entry script knows about the process it runs in.

Scripts written for Azure ML use it unchanged::

    from azureml_user.parallel_run import EntryScript

    def init():
        EntryScript().logger.info("model loaded")

Every `EntryScript()` of one process shares one logger, which writes to
`<logs>/user/entry_script_log/<node>/<process>.log.txt`; what it logs while `run()` runs is also
sent back with the attempt's result, so it shows in the Prefect task run's log too.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

LOGGER_NAME = "prefect_parallelrun.entry_script"
MAX_RECORDS_PER_RUN = 500
MAX_MESSAGE_CHARS = 4000
_LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(message)s"


@dataclass(frozen=True)
class MiniBatchContext:
    """The second argument of `run(mini_batch, mini_batch_context)`."""

    partition_key_value: dict[str, Any] = field(default_factory=dict)
    minibatch_index: int = 0


@dataclass(frozen=True)
class _ProcessPlace:
    node: str
    process: str
    log_dir: str
    output_dir: str | None


_place: _ProcessPlace | None = None


class EntryScript:
    """The entry-script process's logger, log folder, output folder and name.

    Outside an entry-script process (a script run by hand) the logger has no handlers of its
    own, `log_dir` is the working directory and `agent_name` is "local".
    """

    @property
    def logger(self) -> logging.Logger:
        """A logger at the job's `logging_level`, writing to this process's log file."""
        return logging.getLogger(LOGGER_NAME)

    @property
    def log_dir(self) -> str:
        """This node's folder under `logs/user/entry_script_log/`, for the script's own files."""
        return _place.log_dir if _place else os.getcwd()

    @property
    def output_dir(self) -> str | None:
        """The job's output folder (also in `AZUREML_BI_OUTPUT_PATH`), or None when it has none."""
        return _place.output_dir if _place else os.environ.get("AZUREML_BI_OUTPUT_PATH")

    @property
    def agent_name(self) -> str:
        """`<node>.<process>`, unique in the job."""
        return f"{_place.node}.{_place.process}" if _place else "local"


class RunLogCollector(logging.Handler):
    """Keeps the records logged while one `run()` runs, to send them back with its result."""

    def __init__(self) -> None:
        super().__init__()
        self._records: list[tuple[str, str]] = []
        self._dropped = 0
        self._collecting = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if not self._collecting.is_set():
            return
        if len(self._records) >= MAX_RECORDS_PER_RUN:
            self._dropped += 1
            return
        message = self.format(record)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " [...]"
        self._records.append((record.levelname, message))

    def start(self) -> None:
        assert self.lock is not None  # made by logging.Handler.__init__
        with self.lock:
            self._records, self._dropped = [], 0
        self._collecting.set()

    def take(self) -> list[tuple[str, str]]:
        """Stop collecting and return what was logged, with a note when some was left out."""
        self._collecting.clear()
        assert self.lock is not None
        with self.lock:
            records, dropped = self._records, self._dropped
            self._records, self._dropped = [], 0
        if dropped:
            note = f"{dropped} more log records of this run are only in the process's log file."
            records.append(("WARNING", note))
        return records


def configure_process(
    node: str, process: str, logs_dir: str, output_dir: str | None, level: str
) -> RunLogCollector:
    """Set this process's place and its logger; return the collector of run() records."""
    global _place
    log_dir = os.path.join(logs_dir, "user", "entry_script_log", node)
    os.makedirs(log_dir, exist_ok=True)
    _place = _ProcessPlace(node=node, process=process, log_dir=log_dir, output_dir=output_dir)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    logger.propagate = False
    to_file = logging.FileHandler(os.path.join(log_dir, f"{process}.log.txt"), encoding="utf-8")
    to_file.setFormatter(logging.Formatter(_LOG_FORMAT))
    collector = RunLogCollector()
    collector.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(to_file)
    logger.addHandler(collector)
    return collector
