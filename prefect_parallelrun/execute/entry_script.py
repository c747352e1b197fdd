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
_LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(message)s"


@dataclass(frozen=True)
class MiniBatchContext:
    """The second argument of `run(mini_batch, mini_batch_context)`.

    Args:
        partition_key_value: The partition key values that made the mini-batch (empty without
            `partition_keys`).
        minibatch_index: The mini-batch's position in the job, from 0.
    """

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

    Make one wherever the script needs it (at import, in `init()`, in `run()`): every
    `EntryScript()` of a process reads the same process-wide values, so none has to be kept.

    In an entry-script process, `logger` writes at the job's `logging_level` to
    `<logs>/user/entry_script_log/<node>/<process>.log.txt`. What it logs while `run()` runs
    also shows in the Prefect task run's log, within the settings `max_log_records_per_run`
    (records a run) and `max_log_message_chars` (longer messages are cut); the file keeps every
    record whole. Outside an entry-script process (a script run by hand) the logger has no
    handlers of its own, `log_dir` is the working directory, `output_dir` is
    `AZUREML_BI_OUTPUT_PATH` (or None) and `agent_name` is "local".

    Example:
        ```python
        from azureml_user.parallel_run import EntryScript

        def init():
            EntryScript().logger.info("model loaded")

        def run(mini_batch):
            entry_script = EntryScript()
            entry_script.logger.info("%s: %d items", entry_script.agent_name, len(mini_batch))
            return [len(item) for item in mini_batch]
        ```
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
    """Keeps the records logged while one `run()` runs, to send them back with its result.

    Between `start` and `take` it keeps `(level name, formatted message)` pairs, the first
    `max_records` of them, each cut at `max_message_chars`; it counts the records it leaves
    out. Outside that window it keeps nothing.

    Args:
        max_records: Records kept per run; later ones are counted, not kept.
        max_message_chars: Longest message kept; a longer one is cut and ends with " [...]".
    """

    def __init__(self, max_records: int, max_message_chars: int) -> None:
        super().__init__()
        self._max_records = max_records
        self._max_message_chars = max_message_chars
        self._records: list[tuple[str, str]] = []
        self._dropped = 0
        self._collecting = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep `record` while collecting, within the caps.

        Args:
            record: A record logged to the `EntryScript` logger.
        """
        if not self._collecting.is_set():
            return
        if len(self._records) >= self._max_records:
            self._dropped += 1
            return
        message = self.format(record)
        if len(message) > self._max_message_chars:
            message = message[: self._max_message_chars] + " [...]"
        self._records.append((record.levelname, message))

    def start(self) -> None:
        """Forget what was kept and start collecting (when a run() starts)."""
        assert self.lock is not None  # made by logging.Handler.__init__
        with self.lock:
            self._records, self._dropped = [], 0
        self._collecting.set()

    def take(self) -> list[tuple[str, str]]:
        """Stop collecting and hand over what was kept.

        Returns:
            The `(level name, message)` pairs in the order logged, with a last WARNING saying
            how many records were left out, when some were.
        """
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
    node: str,
    process: str,
    logs_dir: str,
    output_dir: str | None,
    level: str,
    *,
    max_records_per_run: int,
    max_message_chars: int,
) -> RunLogCollector:
    """Set this process's place (what `EntryScript` says) and its logger; once per process.

    Args:
        node: The worker's name in the job.
        process: The process slot's name.
        logs_dir: The job's logs folder; the log file goes under `user/entry_script_log/`.
        output_dir: The job's output folder, or None.
        level: The logger's level name (`logging_level`).
        max_records_per_run: Records one run() may send back (`max_log_records_per_run`).
        max_message_chars: Longest message sent back (`max_log_message_chars`).

    Returns:
        The collector of the records logged during each run(), already on the logger.

    Raises:
        OSError: The log folder or file cannot be made.
    """
    global _place
    log_dir = os.path.join(logs_dir, "user", "entry_script_log", node)
    os.makedirs(log_dir, exist_ok=True)
    _place = _ProcessPlace(node=node, process=process, log_dir=log_dir, output_dir=output_dir)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    logger.propagate = False
    to_file = logging.FileHandler(os.path.join(log_dir, f"{process}.log.txt"), encoding="utf-8")
    to_file.setFormatter(logging.Formatter(_LOG_FORMAT))
    collector = RunLogCollector(max_records_per_run, max_message_chars)
    collector.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(to_file)
    logger.addHandler(collector)
    return collector
