"""What `ParallelRunConfig`'s fields take, apart from their descriptions.

`PARAMETER_ORDER` is the constructor's order of the fields, for positional calls. The checks
are pydantic `BeforeValidator`s, placed in a field's `Annotated` type, so that one check serves
every field of its kind; each runs before pydantic's own type check, so that a bad value gets a
message naming the rule rather than pydantic's. Apart from the choices, they let `None` (an
unset optional field) through to the type check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from prefect.types import SecretDict
from pydantic import BeforeValidator

from prefect_parallelrun.config.choices import LOGGING_LEVELS, OUTPUT_ACTIONS
from prefect_parallelrun.config.sizes import parse_mini_batch_size

# The seed API's constructor order, so that positional calls written for Azure ML keep working.
PARAMETER_ORDER = (
    "environment",
    "entry_script",
    "error_threshold",
    "output_action",
    "compute_target",
    "node_count",
    "process_count_per_node",
    "mini_batch_size",
    "source_directory",
    "description",
    "logging_level",
    "run_invocation_timeout",
    "run_max_try",
    "append_row_file_name",
    "allowed_failed_count",
    "allowed_failed_percent",
    "partition_keys",
    "environment_variables",
)
_FORBIDDEN_FILE_NAME_CHARACTERS = re.compile(r'[/\\~"#%&*:<>?{|}]')


def with_positional_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor's keywords, with its positional arguments named in `PARAMETER_ORDER`.

    Args:
        args: The positional arguments, in the order of Azure ML's constructor.
        kwargs: The keyword arguments; updated in place with the named positional ones.

    Returns:
        `kwargs`, holding every argument.

    Raises:
        ValueError: There are more positional arguments than fields, or a field is given both
            by position and by keyword.
    """
    if len(args) > len(PARAMETER_ORDER):
        raise ValueError(
            f"ParallelRunConfig takes at most {len(PARAMETER_ORDER)} positional arguments."
        )
    for name, value in zip(PARAMETER_ORDER[: len(args)], args, strict=True):
        if name in kwargs:
            raise ValueError(f"ParallelRunConfig got two values for '{name}'.")
        kwargs[name] = value
    return kwargs


def check_partition_keys_alone(partition_keys: list[str] | None, mini_batch_size: Any) -> None:
    """Check that a config sets `partition_keys` or `mini_batch_size`, not both.

    Args:
        partition_keys: The config's partition keys, if any.
        mini_batch_size: The config's mini-batch size, if any.

    Raises:
        ValueError: Both are set; with partition keys each mini-batch holds one combination of
            key values.
    """
    if partition_keys and mini_batch_size is not None:
        raise ValueError(
            "partition_keys and mini_batch_size cannot be used together: with partition "
            "keys each mini-batch holds one combination of key values. Remove one of them."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unless_unset(check: Callable[[Any], Any]) -> BeforeValidator:
    """A validator running `check` on every value but `None`."""
    return BeforeValidator(lambda value: value if value is None else check(value))


def _rule(accepts: Callable[[Any], bool], requirement: str) -> BeforeValidator:
    """A validator refusing the values `accepts` rejects, with "<requirement>; got <value>."."""

    def check(value: Any) -> Any:
        if not accepts(value):
            raise ValueError(f"{requirement}; got {value!r}.")
        return value

    return _unless_unset(check)


def _choice(field: str, choices: tuple[str, ...], case: Callable[[str], str]) -> BeforeValidator:
    """A validator taking one of `choices` in any letter case, and returning it in `case`."""

    def normalized(value: Any) -> str:
        if not isinstance(value, str) or case(value) not in choices:
            raise ValueError(f"{field} must be one of {choices}; got {value!r}.")
        return case(value)

    return BeforeValidator(normalized)


def _plain_file_name(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip() or value in (".", ".."):
        raise ValueError(f"append_row_file_name must be a plain file name; got {value!r}.")
    if _FORBIDDEN_FILE_NAME_CHARACTERS.search(value):
        raise ValueError(
            f"append_row_file_name must be a plain file name without path separators or "
            f'any of ~"#%&*:<>?\\{{|}}; got {value!r}.'
        )
    return value


def _partition_keys(value: Any) -> Any:
    """A list of strings, or a JSON list of them (as the UI's form and the CLI send it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f'partition_keys must be a list of strings or a JSON list like ["user"]; '
                f"got {value!r}."
            ) from error
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(key, str) for key in value)
    ):
        raise ValueError(f"partition_keys must be a list of strings; got {value!r}.")
    return value


def _mini_batch_size(value: Any) -> Any:
    parse_mini_batch_size(value)
    return value


def _string_to_string(value: Any) -> Any:
    if isinstance(value, SecretDict):
        return value
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        # The values are secrets: name the offending keys only.
        raise ValueError(
            "environment_variables must map strings to strings; check the values of: "
            + ", ".join(
                str(key) for key, item in (value.items() if isinstance(value, dict) else [])
                if not isinstance(item, str)
            )
        )
    return value


POSITIVE_INTEGER = _rule(
    lambda value: _is_int(value) and value > 0, "must be an integer greater than 0"
)
FAILURE_LIMIT = _rule(
    lambda value: _is_int(value) and value >= -1, "must be an integer >= -1 (-1 ignores failures)"
)
PERCENT = _rule(
    lambda value: _is_number(value) and 0 <= value <= 100,
    "must be a number from 0 to 100 (100 ignores)",
)
OUTPUT_ACTION = _choice("output_action", OUTPUT_ACTIONS, str.lower)
LOGGING_LEVEL = _choice("logging_level", LOGGING_LEVELS, str.upper)
PLAIN_FILE_NAME = _unless_unset(_plain_file_name)
PARTITION_KEYS = BeforeValidator(_partition_keys)  # not _unless_unset: the text "null" is unset
MINI_BATCH_SIZE = _unless_unset(_mini_batch_size)
STRING_TO_STRING = _unless_unset(_string_to_string)
