"""Every tunable number of the package, set by environment variable or Prefect's settings files.

Each field of `ParallelRunSettings` is read from `PREFECT_PARALLELRUN_<FIELD>` (upper case),
else from a `[parallelrun]` table in `prefect.toml` or `[tool.prefect.parallelrun]` in
`pyproject.toml` in the working directory, else its default; as Prefect's own settings are.

Where each is read:

- In the process that starts the job (the flow run's process, or the CLI), once per job.
  The ones marked *travels with the job* are sent to the workers and the entry-script
  processes in the job's process spec, so remote workers need no environment of their own.
- `packages_dir` alone is read on each worker, where the installed packages are kept.

Example:
    ```bash
    export PREFECT_PARALLELRUN_INIT_TIMEOUT_SECONDS=300   # init() may take 5 minutes
    export PREFECT_PARALLELRUN_DRAIN_TIMEOUT_SECONDS=120
    python score.py
    ```

    ```python
    from prefect_parallelrun import get_settings

    print(get_settings().init_timeout_seconds)
    ```
"""

from __future__ import annotations

from typing import Any

from prefect.settings.base import PrefectBaseSettings, build_settings_config
from pydantic import Field, ValidationError

ENV_PREFIX = "PREFECT_PARALLELRUN_"


def _seconds(default: float, description: str) -> Any:
    """A duration setting: a number of seconds above zero."""
    return Field(default=default, gt=0, description=description)


def _count(default: int, minimum: int, description: str) -> Any:
    """A count setting: a whole number of at least `minimum`."""
    return Field(default=default, ge=minimum, description=description)


class ParallelRunSettings(PrefectBaseSettings):
    """The package's tunables; see the module docstring for where each is read.

    Args:
        **values: Fields to set directly, ahead of the environment (as for any pydantic
            settings model); mostly for tests.

    Raises:
        pydantic.ValidationError: A value is out of range or not a number. `get_settings`
            turns this into a `ValueError` that names the environment variable.
    """

    model_config = build_settings_config(("parallelrun",))

    # --- The job (the flow run's process) ---
    drain_timeout_seconds: float = _seconds(
        60.0,
        "How long the end of a job waits for the entry-script processes to run "
        "their shutdown() and exit, before they are killed.",
    )
    cancel_poll_seconds: float = _seconds(
        2.0,
        "How often the job asks the Prefect API whether its flow run (or a "
        "parent) was cancelled.",
    )
    progress_interval_seconds: float = _seconds(
        5.0,
        "How often the job rewrites its progress file (logs/job_progress_overview.txt) "
        "and its progress artifact in the Prefect UI.",
    )
    terminal_interval_seconds: float = _seconds(
        5.0,
        "How often the CLI prints a progress line when its output is not a "
        "terminal (a pipe or a log file).",
    )
    terminal_failures_shown: int = _count(
        20, 0,
        "How many failed mini-batches `prefect-parallelrun status` lists with their "
        "last error; the rest are counted.",
    )
    group_target_seconds: float = _seconds(
        2.0,
        "With mini_batches_per_task='auto': the seconds of work one Prefect task "
        "run aims to cover; mini-batches this long or longer get a task run each.",
    )
    tail_task_runs_per_slot: int = _count(
        2, 1,
        "With mini_batches_per_task='auto': task runs kept per process slot near "
        "the end of the job, so that no slot waits idle for the others.",
    )
    api_client_max_retries: int = _count(
        8, 0,
        "Retries of the job's own Prefect API calls when the server cannot be "
        "reached, used when PREFECT_CLIENT_MAX_RETRIES is not set (8: about 8.5 minutes).",
    )
    writer_heartbeat_seconds: float = _seconds(
        30.0,
        "How often a job rewrites its output folder's writer lock.",
    )
    writer_stale_after_seconds: float = _seconds(
        120.0,
        "Age after which another host takes over a writer lock whose holder "
        "stopped rewriting it (the hosts' clocks must agree to well within this).",
    )
    cluster_workers_timeout_seconds: float = _seconds(
        600.0,
        "With a DaskCompute cluster_class and no adapt_kwargs: how long the job waits "
        "for its node_count workers to join (a batch queue may hold their jobs) before "
        "it fails, before any mini-batch has run.",
    )
    local_cluster_parent_check_seconds: float = _seconds(
        1.0,
        "How often the local cluster's scheduler and workers check that the "
        "process which started them still lives, and stop when it does not.",
    )

    # --- Travels with the job to the workers and entry-script processes ---
    init_timeout_seconds: float | None = Field(
        default=None, gt=0,
        description="Travels with the job. Seconds an entry-script process may take to import "
        "the script and run init() before the attempt fails; unset: no limit.",
    )
    max_failed_starts: int = _count(
        3, 1,
        "Travels with the job. Failed starts (import or init() failing) in a row "
        "in one process slot after which its mini-batches fail without another try.",
    )
    owner_check_seconds: float = _seconds(
        5.0,
        "Travels with the job. How often each worker checks that the job's "
        "client is still connected, and stops the job's processes when it is gone.",
    )
    liveness_check_seconds: float = _seconds(
        1.0,
        "Travels with the job. How often a worker waiting for a mini-batch's "
        "result checks that its entry-script process still lives.",
    )
    orphan_check_seconds: float = _seconds(
        1.0,
        "Travels with the job. How often an entry-script process checks that its "
        "worker still lives, and exits when it does not.",
    )
    max_log_records_per_run: int = _count(
        500, 1,
        "Travels with the job. Log records one run() call may send to the Prefect "
        "logs; later ones go to the process's log file only.",
    )
    max_log_message_chars: int = _count(
        4000, 100,
        "Travels with the job. Longest log message sent to the Prefect logs; "
        "longer ones are cut, and kept whole in the process's log file.",
    )

    # --- Environment installs on the workers ---
    packages_dir: str = Field(
        default="~/.cache/prefect-parallelrun/packages", min_length=1,
        description="Read on each worker. Where install_environment=True keeps the packages "
        "it installs, one folder per Python version and requirement list.",
    )
    pip_timeout_seconds: float = _seconds(
        600.0,
        "How long one worker's pip install may take before the job fails.",
    )
    first_worker_timeout_seconds: float = _seconds(
        60.0,
        "With install_environment=True: how long the job waits for a first "
        "worker to install on.",
    )


def get_settings() -> ParallelRunSettings:
    """Read the settings now, from the environment and the settings files.

    Returns:
        A fresh `ParallelRunSettings`; read once per job, so a changed environment variable
        takes effect at the next job.

    Raises:
        ValueError: A setting's value is invalid; the message names its environment variable,
            the value given and what it must be.

    Example:
        ```python
        from prefect_parallelrun import get_settings

        timeout = get_settings().drain_timeout_seconds
        ```
    """
    try:
        return ParallelRunSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(str(part) for part in problem['loc']).upper()}="
            f"{problem.get('input')!r}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ValueError(
            f"Invalid prefect-parallelrun setting: {problems}. Fix or unset it "
            "(the environment variable, or the [parallelrun] table of prefect.toml)."
        ) from None
