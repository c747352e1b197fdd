"""The choices of the config's enumerated fields, defined once for the config and the processes.

Literal types: the block form in the Prefect UI shows them as choices, and the values stay plain
strings, so callers that compare or pass strings ("append_row", "info") work unchanged. This
module imports nothing heavy: entry-script processes use it too.
"""

from __future__ import annotations

from typing import Literal, get_args

OutputAction = Literal["append_row", "summary_only"]
LoggingLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
OUTPUT_ACTIONS: tuple[str, ...] = get_args(OutputAction)
LOGGING_LEVELS: tuple[str, ...] = get_args(LoggingLevel)
