"""`ProcessSpec`: what every entry-script process of one job is started with."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prefect_parallelrun.config.choices import LOGGING_LEVELS, OUTPUT_ACTIONS

DEFAULT_MINI_BATCH_READER = "prefect_parallelrun.plan:open_mini_batch"


@dataclass(frozen=True, kw_only=True)
class ProcessSpec:
    """The job-wide settings of the entry-script processes, sent once to every worker.

    Paths must be valid on the workers (the same machine, or a shared filesystem); local ones
    are made absolute here, on the machine that builds the spec. `environment_variables` are
    secrets: they are kept out of `repr` and never logged. The fields are below.

    Raises:
        ValueError: A field is out of range: an unknown `output_action` or `logging_level`,
            append_row without a `staging_dir`, or a count, interval or timeout not > 0.
    """

    job_id: str
    """Names the job's worker plugin and its processes (shown by `ps`)."""
    entry_script: str
    """The script, relative to `source_directory` when that is given."""
    logs_dir: str
    """The job's logs folder; processes write under its `user/` folder."""
    source_directory: str | None = None
    """The script's folder, put first on its `sys.path`; None: the script's own folder."""
    arguments: list[str] = field(default_factory=list)
    """The script's `sys.argv[1:]`."""
    environment_variables: dict[str, str] = field(default_factory=dict, repr=False)
    """Set in each process before the script is imported."""
    output_dir: str | None = None
    """`AZUREML_BI_OUTPUT_PATH` and `EntryScript().output_dir`; None when the job has none."""
    staging_dir: str | None = None
    """Where append_row results are staged (a path or fsspec URL); needed for append_row."""
    output_action: str = "append_row"
    """What run()'s results become: "append_row" (rows staged for the output file) or
    "summary_only" (only counted)."""
    logging_level: str = "INFO"
    """The level of the `EntryScript` logger."""
    run_invocation_timeout: float = 60.0
    """Seconds one run() call may take before its process is killed."""
    process_count_per_node: int | None = None
    """Process slots per worker; None: one per visible GPU, else one per worker thread."""
    init_timeout: float | None = None
    """Seconds a process may take to import the script and run init(); None: no limit."""
    max_failed_starts: int = 3
    """Failed starts in a row in one slot after which attempts are marked `fatal`."""
    liveness_check_seconds: float = 1.0
    """How often a worker thread waiting for a result checks that its process still lives."""
    orphan_check_seconds: float = 1.0
    """How often an entry-script process checks that its worker still lives."""
    max_log_records_per_run: int = 500
    """Log records one run() call sends to the Prefect logs; the rest stay in its log file."""
    max_log_message_chars: int = 4000
    """Longest log message sent to the Prefect logs; longer ones are cut there."""
    requirements: list[str] = field(default_factory=list)
    """Pip requirements each worker is checked for when it sets up (`check_environment`)."""
    mini_batch_reader: str = DEFAULT_MINI_BATCH_READER
    """`module:function` of the context manager that opens a mini-batch in the process."""

    def __post_init__(self) -> None:
        """Check the values, and make local paths absolute (`entry_script` joined to its folder)."""
        # Made absolute here, on the machine that builds the spec, so that a worker whose
        # working directory differs still finds the same files.
        for name in ("logs_dir", "source_directory", "output_dir", "staging_dir"):
            object.__setattr__(self, name, _absolute(getattr(self, name)))
        script = os.path.join(self.source_directory or "", self.entry_script)
        object.__setattr__(self, "entry_script", _absolute(script))
        object.__setattr__(self, "output_action", self.output_action.lower())
        object.__setattr__(self, "logging_level", self.logging_level.upper())
        if self.output_action not in OUTPUT_ACTIONS:
            raise ValueError(
                f"output_action must be one of {OUTPUT_ACTIONS}; got {self.output_action!r}."
            )
        if self.output_action == "append_row" and not self.staging_dir:
            raise ValueError("output_action 'append_row' needs a staging_dir for the result rows.")
        if self.logging_level not in LOGGING_LEVELS:
            raise ValueError(
                f"logging_level must be one of {LOGGING_LEVELS}; got {self.logging_level!r}."
            )
        if self.run_invocation_timeout <= 0:
            raise ValueError(
                f"run_invocation_timeout must be > 0; got {self.run_invocation_timeout}."
            )
        if self.process_count_per_node is not None and self.process_count_per_node <= 0:
            raise ValueError(
                f"process_count_per_node must be > 0; got {self.process_count_per_node}."
            )
        for name in ("max_failed_starts", "liveness_check_seconds", "orphan_check_seconds",
                     "max_log_records_per_run", "max_log_message_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}.")
        if self.init_timeout is not None and self.init_timeout <= 0:
            raise ValueError(f"init_timeout must be > 0 or None; got {self.init_timeout}.")

    @property
    def import_root(self) -> str:
        """The folder put first on the script's `sys.path`."""
        return self.source_directory or os.path.dirname(self.entry_script)


def _absolute(path: str | None) -> str | None:
    if path is None or "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))
