"""The `prefect-parallelrun` command: `run` a job, `validate` a config, read a job's `status`.

Exit status: 0 on success, 1 when the job failed (or `status` finds it failed or stopped), 2 on
a usage or configuration error (an invalid PREFECT_PARALLELRUN_* setting included), 130 when
interrupted (Ctrl-C).

Over 250 lines as one concern: the command line's parser, help texts and its three commands,
which share the exit statuses; the work itself is the step's and the report stage's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import cast

from prefect_parallelrun.config import ParallelRunConfig
from prefect_parallelrun.settings import ParallelRunSettings, get_settings

TABULAR_READERS = {
    "csv": "from_delimited_files",
    "parquet": "from_parquet_files",
    "jsonl": "from_json_lines_files",
}
USAGE_ERROR = 2
JOB_FAILED = 1
INTERRUPTED = 130

RUN_EXAMPLES = """\
examples:
  prefect-parallelrun run config.yml --input images/ --output scores/ -- --model model.pkl
  prefect-parallelrun run --config-block nightly --input 'data/*.csv' --tabular csv \\
      --output s3://bucket/scores/
  prefect-parallelrun run config.yml --input images/ --output scores/ > run.log

On a terminal, a progress bar; otherwise a progress line every few seconds. Then a summary
and the paths of the output file and the logs folder. Run the same command again to resume
a job that failed or stopped. Exit status: 0 success, 1 the job failed, 2 usage or config
error.
"""
VALIDATE_EXAMPLES = """\
examples:
  prefect-parallelrun validate config.yml
  prefect-parallelrun validate --config-block nightly

Exit status: 0 valid, 2 invalid (the reason on stderr).
"""
STATUS_EXAMPLES = """\
examples:
  prefect-parallelrun status scores/
  watch -n 5 prefect-parallelrun status scores/

Shows whether a run holds the folder now (and its progress), the result of the last run, and
the failed mini-batches with their last error. Exit status: 0 the job completed or is
running, 1 it failed or stopped before the end, 2 not an output folder.
"""
MAIN_EXAMPLES = """\
examples:
  prefect-parallelrun validate config.yml
  prefect-parallelrun run config.yml --input images/ --output scores/
  prefect-parallelrun status scores/

See 'prefect-parallelrun COMMAND --help' for each command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of the `prefect-parallelrun` command and its `run`, `validate` and `status`.

    Returns:
        The parser; it leaves the arguments after `--` to `main`.
    """
    parser = _parser(
        argparse.ArgumentParser, prog="prefect-parallelrun",
        description="Run an Azure ML-style parallel run step on Prefect and Dask.",
        epilog=MAIN_EXAMPLES,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _parser(
        commands.add_parser, "run", help="run a job",
        description="Run a job; arguments after -- go to the entry script.",
        epilog=RUN_EXAMPLES,
    )
    _config_arguments(run)
    run.add_argument("--input", nargs="+", required=True, action="extend", metavar="PATH",
                     help="input files, folders, globs or fsspec URLs")
    run.add_argument("--output", help="output folder (optional for summary_only)")
    run.add_argument("--tabular", choices=sorted(TABULAR_READERS),
                     help="read the inputs as a table of this format instead of as files")
    run.add_argument("--name", default="parallel-run", help="name of the step and flow run")
    run.add_argument("--no-resume", action="store_true",
                     help="start over instead of resuming the output folder's earlier run")
    run.add_argument("--no-reuse", action="store_true",
                     help="run even when an identical earlier run succeeded")
    run.add_argument("--mini-batches-per-task", default="auto", metavar="N|auto",
                     help="mini-batches per Prefect task run: a number, or auto (default: one "
                          "each, or several consecutive short ones)")
    run.add_argument("--verbose", action="store_true",
                     help="show Prefect's and Dask's log lines as well, and progress lines "
                          "instead of a progress bar")
    validate = _parser(
        commands.add_parser, "validate", help="check a config and print it",
        description="Check a config and print its fields (secrets hidden).",
        epilog=VALIDATE_EXAMPLES,
    )
    _config_arguments(validate)
    status = _parser(
        commands.add_parser, "status", help="show the state of the job in an output folder",
        description="Show the state of the job in an output folder: running, completed or "
                    "failed, its progress, and its failed mini-batches.",
        epilog=STATUS_EXAMPLES,
    )
    status.add_argument("output_dir", metavar="OUTPUT_DIR",
                        help="the output folder given to 'run --output'")
    return parser


def _parser(factory, *arguments: str, **options: object) -> argparse.ArgumentParser:
    return factory(*arguments, formatter_class=argparse.RawDescriptionHelpFormatter, **options)


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(command_parser=parser)
    parser.add_argument("config", nargs="?", metavar="CONFIG.yml",
                        help="YAML file with a top-level parallel_run_config: mapping")
    parser.add_argument("--config-block", metavar="NAME",
                        help="use the ParallelRunConfig block saved under NAME instead of a "
                             "YAML file")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command of `prefect-parallelrun`.

    Errors the user can fix (a bad config, setting, input or argument) are one `error:` line on
    stderr and exit status 2, never a traceback.

    Args:
        argv: The command line, less the program's name; None: `sys.argv[1:]`. Arguments
            after `--` go to the entry script.

    Returns:
        The exit status: 0 success, 1 the job failed (or `status` finds it failed or
        stopped), 2 a usage or configuration error, 130 interrupted.

    Raises:
        SystemExit: `--help`, or arguments the parser refuses (status 2, after the usage).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    script_arguments: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, script_arguments = argv[:split], argv[split + 1 :]
    options = build_parser().parse_args(argv)
    try:
        settings = get_settings()  # a bad setting stops here, before a server or a job starts
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if options.command == "status":
        return _status(options.output_dir, settings)
    if (options.config is None) == (options.config_block is None):
        options.command_parser.error(  # exits 2, after the command's usage line
            "give exactly one of CONFIG.yml (a YAML file) and --config-block NAME "
            "(a saved ParallelRunConfig block)"
        )
    if options.command == "run" or options.config_block is not None:
        _start_embedded_api(getattr(options, "verbose", False))
    try:
        config = _load_config(options)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if options.command == "validate":
        return _validate(config, options.config or f"block {options.config_block!r}")
    return _run(config, options, script_arguments, settings)


def _load_config(options: argparse.Namespace) -> ParallelRunConfig:
    if options.config is not None:
        return ParallelRunConfig.load_yaml(None, options.config)
    try:
        return cast(ParallelRunConfig, ParallelRunConfig.load(options.config_block))
    except ValueError as error:
        if "Unable to find block document" not in str(error):
            raise
        raise ValueError(
            f"no ParallelRunConfig block is saved under the name {options.config_block!r} "
            f"on {_api_name()}; list the saved ones with 'prefect block ls', or save one "
            f"with config.save({options.config_block!r})."
        ) from None


def _start_embedded_api(verbose: bool) -> None:
    """Start Prefect's embedded API server (when no PREFECT_API_URL is set) before anything
    talks to the API, so that it gets the job's settings; unless `verbose`, it keeps its log
    lines off the terminal, as its task-run recorder logs an ERROR for the events it drops
    when it is stopped at exit, after the job is over."""
    from prefect.settings import (
        PREFECT_SERVER_LOGGING_LEVEL,
        get_current_settings,
        temporary_settings,
    )

    from prefect_parallelrun.dispatch.embedded_api import start_embedded_api
    from prefect_parallelrun.report.terminal import quiet_embedded_server

    chosen = get_current_settings().to_environment_variables(exclude_unset=True)
    quiet = not verbose and "PREFECT_SERVER_LOGGING_LEVEL" not in chosen
    if not verbose:
        quiet_embedded_server()
    with temporary_settings(
        updates={PREFECT_SERVER_LOGGING_LEVEL: "CRITICAL"} if quiet else {}
    ):
        start_embedded_api()


def _api_name() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return f"the Prefect API at {url}" if url else "Prefect's embedded API (no PREFECT_API_URL)"


def _validate(config: ParallelRunConfig, source: str) -> int:
    print(f"{source}: valid parallel_run_config")
    for name, value in config.to_yaml_mapping().items():
        shown = "(secret)" if name == "environment_variables" and value else value
        print(f"  {name}: {shown}")
    return 0


def _run(
    config: ParallelRunConfig, options: argparse.Namespace, arguments: list[str],
    settings: ParallelRunSettings,
) -> int:
    from rich.console import Console

    from prefect_parallelrun.plan import FileDataset, TabularDataset
    from prefect_parallelrun.report.terminal import TerminalProgress, job_log_on_terminal
    from prefect_parallelrun.report.terminal_summary import print_summary
    from prefect_parallelrun.step import ParallelRunStep

    if options.tabular:
        dataset = getattr(TabularDataset, TABULAR_READERS[options.tabular])(options.input)
    else:
        dataset = FileDataset.from_files(options.input)
    console = Console()
    live = console.is_terminal and not options.verbose
    try:
        step = ParallelRunStep(
            name=options.name, parallel_run_config=config, inputs=[dataset],
            output=options.output, arguments=arguments, allow_reuse=not options.no_reuse,
            mini_batches_per_task=options.mini_batches_per_task,
        )
        with job_log_on_terminal(options.verbose), TerminalProgress(
            console, options.name, live, settings.terminal_interval_seconds
        ) as progress:
            result = step.run(resume=not options.no_resume, progress_listener=progress)
    except (OSError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(
            "interrupted: the job stopped; what it committed is kept. Run the same command "
            "again to resume it.", file=sys.stderr,
        )
        return INTERRUPTED
    print_summary(console, result)
    if not result.succeeded:
        if not (console.is_terminal and sys.stderr.isatty()):  # else it is on screen already
            print(f"error: {result.message}", file=sys.stderr)
        return JOB_FAILED
    return 0


def _status(output_dir: str, settings: ParallelRunSettings) -> int:
    from rich.console import Console

    from prefect_parallelrun.report.folder_status import (
        NotAnOutputFolderError,
        read_folder_status,
    )
    from prefect_parallelrun.report.terminal_summary import print_folder_status

    try:
        status = read_folder_status(output_dir)
    except NotAnOutputFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    print_folder_status(Console(soft_wrap=True), status, settings.terminal_failures_shown)
    return 0 if status.succeeded or status.state == "running" else JOB_FAILED


if __name__ == "__main__":
    sys.exit(main())
