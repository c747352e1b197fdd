"""Entry script of the sample pipeline: scores one file of sensor readings per item.

Each input file holds one reading (a number) per line. `run()` returns one row per file:
`<file name> <readings> <mean> <peak>`, the mean rounded to 4 decimals.
"""

from pathlib import Path


def run(mini_batch: list[str]) -> list[str]:
    rows = []
    for path in mini_batch:
        readings = [float(line) for line in Path(path).read_text().split()]
        if not readings:
            raise ValueError(f"{path} holds no readings; prepare_inputs writes at least one.")
        mean = sum(readings) / len(readings)
        rows.append(f"{Path(path).name} {len(readings)} {mean:.4f} {max(readings):.4f}")
    return rows
