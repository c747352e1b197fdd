"""The examples under examples/, each run as users run it: one command, a plain script, on a
local Dask cluster, here on small data and against the session's Prefect test server."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.settings import PREFECT_API_URL
from sklearn.datasets import load_digits, load_iris

pytestmark = pytest.mark.usefixtures("prefect_server")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(script: str, work: Path, *options: str) -> str:
    """Run `examples/<script>` with `--work-dir work` from another folder; return its stdout."""
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    finished = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *options, "--work-dir", str(work)],
        cwd=work.parent, env=environment, capture_output=True, text=True, timeout=240,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert f"output file:  {work / 'output' / 'parallel_run_step.txt'}" in finished.stdout
    assert f"logs:         {work / 'output' / 'logs'}" in finished.stdout
    return finished.stdout


def output_lines(work: Path) -> list[list[str]]:
    text = (work / "output" / "parallel_run_step.txt").read_text()
    return [line.split(" ") for line in text.splitlines()]


def attempts(work: Path) -> list[dict[str, str]]:
    report = work / "output" / "logs" / "sys" / "job_report" / "processed_mini-batches.csv"
    with report.open(newline="") as file:
        return list(csv.DictReader(file))


def entry_script_log(work: Path) -> str:
    folder = work / "output" / "logs" / "user" / "entry_script_log"
    return "".join(path.read_text() for path in sorted(folder.rglob("*.log.txt")))


def flow_run_state(name: str) -> str | None:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
    return runs[0].state_name if runs else None


def test_image_scoring_predicts_each_digit_image_once(tmp_path: Path) -> None:
    work = tmp_path / "digits"
    run_example("image_scoring/run_image_scoring.py", work, "--images", "40")
    rows = output_lines(work)
    names = [f"digit-{number:04d}.png" for number in range(40)]
    assert [row[0] for row in rows] == names
    assert all(len(row) == 2 and row[1] in set("0123456789") for row in rows)
    true_digits = load_digits().target
    right = sum(int(row[1]) == true_digits[number] for number, row in enumerate(rows))
    assert right >= 34, f"only {right} of 40 digits predicted right"
    assert sorted(int(row["items"]) for row in attempts(work)) == [15, 25]
    assert "init: loaded the model from" in entry_script_log(work)
    assert flow_run_state("digits-image-scoring") == "Completed"


def test_tabular_scoring_returns_a_dataframe_row_per_input_row(tmp_path: Path) -> None:
    work = tmp_path / "iris"
    run_example("tabular_scoring/run_tabular_scoring.py", work, "--rows", "300", "--files", "3")
    rows = output_lines(work)
    assert [int(row[0]) for row in rows] == list(range(300))
    iris = load_iris()
    for row in rows:
        flower = int(row[0]) % 150
        assert [float(value) for value in row[1:5]] == iris.data[flower].tolist()
        assert row[5] == iris.target_names[iris.target[flower]]
    right = sum(row[5] == row[6] for row in rows)
    assert right >= 285, f"only {right} of 300 species predicted right"
    assert len(attempts(work)) > 3, "each CSV file should be split into several mini-batches"
    assert flow_run_state("iris-tabular-scoring") == "Completed"


def test_partition_per_folder_gives_run_one_folder_and_its_key_values(tmp_path: Path) -> None:
    work = tmp_path / "recordings"
    run_example("partition_per_folder/run_partition_per_folder.py", work, "--tracks", "2")
    rows = output_lines(work)
    files = sorted(path.relative_to(work / "recordings").as_posix()
                   for path in (work / "recordings").rglob("*.wav"))
    assert len(files) == 10
    assert sorted(row[3] for row in rows) == files
    mini_batches: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for user, genre, index, file, seconds, _ in rows:
        assert file.split("/")[:2] == [user, genre], "the context names another partition"
        assert seconds == "0.250"
        mini_batches[(user, genre)].add(index)
    assert sorted(mini_batches) == [
        ("alice", "jazz"), ("alice", "rock"), ("bob", "rock"),
        ("carol", "classical"), ("carol", "jazz"),
    ]
    indexes = [index for partition_indexes in mini_batches.values() for index in partition_indexes]
    assert sorted(indexes) == ["0", "1", "2", "3", "4"], "one mini-batch per folder"
    assert len(attempts(work)) == 5
    log = entry_script_log(work)
    assert all(f"is {user}/{genre}, 2 recordings" in log for user, genre in mini_batches)
    assert flow_run_state("recordings-per-user-and-genre") == "Completed"


def test_partition_per_column_gives_run_every_row_of_one_store_and_brand(tmp_path: Path) -> None:
    work = tmp_path / "sales"
    run_example(
        "partition_per_column/run_partition_per_column.py", work, "--weeks", "6", "--files", "3"
    )
    rows = output_lines(work)
    sales = pd.concat(pd.read_csv(path) for path in sorted((work / "sales").glob("*.csv")))
    assert len(sales) == 54
    expected = Counter(
        (str(week), str(store), brand, str(units))
        for week, store, brand, units in sales[["week", "store", "brand", "units"]].itertuples(
            index=False
        )
    )
    assert Counter(tuple(row[:4]) for row in rows) == expected
    mini_batches: defaultdict[str, set[str]] = defaultdict(set)
    weeks: defaultdict[str, list[str]] = defaultdict(list)
    for week, store, brand, _, _, partition, index in rows:
        assert partition == f"{store}/{brand}", "the context names another partition"
        mini_batches[partition].add(index)
        weeks[partition].append(week)
    assert len(mini_batches) == 9
    assert all(len(indexes) == 1 for indexes in mini_batches.values()), "one mini-batch each"
    assert len(set().union(*mini_batches.values())) == 9
    assert all(found == ["1", "2", "3", "4", "5", "6"] for found in weeks.values())
    assert len(attempts(work)) == 9
    assert flow_run_state("sales-per-store-and-brand") == "Completed"
