"""Entry script: measure each recording of one user's genre.

With `partition_keys`, each mini-batch holds every file of one partition, here one
`<user>/<genre>` folder, and `run()` gets a second argument telling which one. It returns one
line per file: "<user> <genre> <mini-batch index> <user>/<genre>/<file> <seconds> <loudness>",
the user and genre taken from the context.
"""

from __future__ import annotations

import array
import math
import wave
from pathlib import PurePath
from typing import Any

from azureml_user.parallel_run import EntryScript


def run(mini_batch: list[str], mini_batch_context: Any) -> list[str]:
    partition = mini_batch_context.partition_key_value
    user, genre = partition["user"], partition["genre"]
    EntryScript().logger.info(
        "run: mini-batch %d is %s/%s, %d recordings",
        mini_batch_context.minibatch_index, user, genre, len(mini_batch),
    )
    rows = []
    for path in mini_batch:
        seconds, loudness = _measure(path)
        name = PurePath(path).parts[-3:]
        rows.append(
            f"{user} {genre} {mini_batch_context.minibatch_index} "
            f"{'/'.join(name)} {seconds:.3f} {loudness:.4f}"
        )
    return rows


def _measure(path: str) -> tuple[float, float]:
    """The recording's length in seconds and its root-mean-square level (0 to 1)."""
    with wave.open(path, "rb") as recording:
        samples = array.array("h", recording.readframes(recording.getnframes()))
        seconds = recording.getnframes() / recording.getframerate()
    level = math.sqrt(sum(sample * sample for sample in samples) / max(len(samples), 1))
    return seconds, level / 32768
