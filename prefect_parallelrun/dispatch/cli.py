"""The `prefect-parallelrun` command: `run` a job from a YAML config, or `validate` one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prefect_parallelrun.config import ParallelRunConfig

TABULAR_READERS = {
    "csv": "from_delimited_files",
    "parquet": "from_parquet_files",
    "jsonl": "from_json_lines_files",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefect-parallelrun",
        description="Run an Azure ML-style parallel run step on Prefect and Dask.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run a job", description="Run a job; arguments after -- go to the script."
    )
    run.add_argument("config", help="YAML file with a top-level parallel_run_config: mapping")
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
    validate = commands.add_parser("validate", help="check a YAML config and print it")
    validate.add_argument("config")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_arguments: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, script_arguments = argv[:split], argv[split + 1 :]
    options = build_parser().parse_args(argv)
    try:
        config = ParallelRunConfig.load_yaml(None, options.config)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if options.command == "validate":
        print(f"{options.config}: valid parallel_run_config")
        for name, value in config.to_yaml_mapping().items():
            shown = "(secret)" if name == "environment_variables" and value else value
            print(f"  {name}: {shown}")
        return 0
    return _run(config, options, script_arguments)


def _run(config: ParallelRunConfig, options: argparse.Namespace, arguments: list[str]) -> int:
    from prefect_parallelrun.dispatch.step import ParallelRunStep
    from prefect_parallelrun.plan import FileDataset, TabularDataset

    if options.tabular:
        dataset = getattr(TabularDataset, TABULAR_READERS[options.tabular])(options.input)
    else:
        dataset = FileDataset.from_files(options.input)
    try:
        step = ParallelRunStep(
            name=options.name, parallel_run_config=config, inputs=[dataset],
            output=options.output, arguments=arguments, allow_reuse=not options.no_reuse,
            mini_batches_per_task=options.mini_batches_per_task,
        )
        result = step.run(resume=not options.no_resume)
    except (OSError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(result.summary_lines()))
    if not result.succeeded:
        print(f"error: {result.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
