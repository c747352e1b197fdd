"""Checks of the `arguments` a step passes to its entry script."""

from __future__ import annotations

from prefect_parallelrun.config.parallel_run_config import PARAMETER_ORDER


class ArgumentsError(ValueError):
    """The step's `arguments` cannot be passed to the entry script."""


def check_arguments(arguments: list[str] | None) -> list[str]:
    """Return the arguments as strings; refuse positional values and reserved names.

    Arguments must be keyword style (`--name value` or `--name=value`) so that scripts can use
    `argparse.parse_known_args`; the config's own parameter names are reserved, as in Azure ML.

    Args:
        arguments: The step's arguments for the entry script; None for none.

    Returns:
        The arguments, each as a string.

    Raises:
        ArgumentsError: (a `ValueError`) an argument is positional or a reserved name.
    """
    values = [str(argument) for argument in arguments or []]
    expect_value = False
    for argument in values:
        if argument.startswith("--"):
            name = argument[2:].split("=", 1)[0]
            if name.replace("-", "_") in PARAMETER_ORDER:
                raise ArgumentsError(
                    f"argument '--{name}' is reserved: it is a ParallelRunConfig parameter. "
                    f"Rename it in the step's arguments and in the entry script."
                )
            expect_value = "=" not in argument
        elif not expect_value:
            raise ArgumentsError(
                f"argument {argument!r} is positional; arguments must be keyword style, "
                f"such as ['--model', 'model.pkl']."
            )
        else:
            expect_value = False
    return values
