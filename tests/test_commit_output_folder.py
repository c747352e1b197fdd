"""The output folder commits parts atomically, once per mini-batch, and assembles them in order."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from prefect_parallelrun.commit import (
    CommitRecord,
    OutputFolder,
    ResumeRefusedError,
    format_rows,
    stage_rows,
)


def record(index: int, attempt: int = 1, items: int = 2) -> CommitRecord:
    return CommitRecord(f"{index:06d}-id", index, attempt, items, items, 0)


def commit(folder: OutputFolder, index: int, lines: list[str], attempt: int = 1) -> str:
    staged = stage_rows(folder.staging_dir, f"{index:06d}-id", attempt, iter(lines))
    folder.commit(record(index, attempt, len(lines)), staged)
    return staged


@pytest.fixture(params=["local", "memory"])
def output_url(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "output")
    return f"memory://output-{uuid.uuid4().hex}"


def read(url: str) -> str:
    with fsspec.open(url, "r") as file:
        return file.read()


def test_lists_and_tuples_are_written_as_str_of_each_element():
    assert list(format_rows([1, "a b", (2, 3)], limit=10)) == ["1", "a b", "(2, 3)"]
    assert list(format_rows((1.5, None), limit=10)) == ["1.5", "None"]


def test_dataframes_are_space_separated_without_header_or_index():
    frame = pd.DataFrame({"name": ["a.png", "b.png"], "score": [0.5, 2]}, index=[7, 8])
    assert list(format_rows(frame, limit=10)) == ["a.png 0.5", "b.png 2.0"]


def test_a_long_result_is_cut_to_the_limit():
    assert list(format_rows(list(range(5)), limit=3)) == ["0", "1", "2"]
    assert len(list(format_rows(pd.DataFrame({"a": range(5)}), limit=2))) == 2


def test_parts_are_assembled_in_mini_batch_order_not_commit_order(output_url: str):
    folder = OutputFolder(output_url, "parallel_run_step.txt")
    folder.prepare({"job": 1}, resume=True)
    commit(folder, 2, ["c1"])
    commit(folder, 0, ["a1", "a2"])
    commit(folder, 1, ["b1"])
    folder.assemble(f"{index:06d}-id" for index in range(3))
    assert read(folder.output_file) == "a1\na2\nb1\nc1\n"


def test_committing_a_mini_batch_twice_keeps_one_copy_of_its_rows(output_url: str):
    folder = OutputFolder(output_url, "parallel_run_step.txt")
    folder.prepare({"job": 1}, resume=True)
    commit(folder, 0, ["a1"], attempt=1)
    commit(folder, 0, ["a1"], attempt=2)
    folder.assemble(["000000-id"])
    assert read(folder.output_file) == "a1\n"
    assert list(folder.committed()) == ["000000-id"]


def test_staged_rows_of_an_uncommitted_attempt_never_reach_the_output(output_url: str):
    folder = OutputFolder(output_url, "parallel_run_step.txt")
    folder.prepare({"job": 1}, resume=True)
    lost = stage_rows(folder.staging_dir, "000000-id", 1, iter(["timed out"]))
    commit(folder, 0, ["kept"], attempt=2)
    folder.discard(lost)
    folder.assemble(["000000-id"])
    assert read(folder.output_file) == "kept\n"
    fs, path = fsspec.core.url_to_fs(lost)
    assert not fs.exists(path)


def test_a_mini_batch_without_a_commit_record_is_not_committed(tmp_path: Path):
    folder = OutputFolder(str(tmp_path), "out.txt")
    folder.prepare({"job": 1}, resume=True)
    commit(folder, 0, ["a"])
    # A part left by a flow killed between its rename and its ledger record.
    (tmp_path / ".parallel_run" / "parts" / "000001-id.rows").write_text("orphan\n")
    folder.assemble(["000000-id", "000001-id"])
    assert (tmp_path / "out.txt").read_text() == "a\n"
    assert set(folder.committed()) == {"000000-id"}


def test_zero_committed_parts_give_an_empty_file(output_url: str):
    folder = OutputFolder(output_url, "parallel_run_step.txt")
    folder.prepare({"job": 1}, resume=True)
    folder.assemble([])
    assert read(folder.output_file) == ""


def test_resume_keeps_committed_records_of_the_same_job(tmp_path: Path):
    folder = OutputFolder(str(tmp_path), "out.txt")
    folder.prepare({"job": 1}, resume=True)
    commit(folder, 0, ["a"])
    folder.close()
    again = OutputFolder(str(tmp_path), "out.txt")
    assert list(again.prepare({"job": 1}, resume=True)) == ["000000-id"]


def test_a_different_job_is_refused_naming_what_changed(tmp_path: Path):
    folder = OutputFolder(str(tmp_path), "out.txt")
    folder.prepare({"entry_script_sha256": "a", "inputs": "x"}, resume=True)
    with pytest.raises(ResumeRefusedError, match=r"changed: entry_script_sha256\).*resume=False"):
        folder.prepare({"entry_script_sha256": "b", "inputs": "x"}, resume=True)


def test_resume_false_starts_over(tmp_path: Path):
    folder = OutputFolder(str(tmp_path), "out.txt")
    folder.prepare({"job": 1}, resume=True)
    commit(folder, 0, ["a"])
    folder.assemble(["000000-id"])
    assert folder.prepare({"job": 2}, resume=False) == {}
    assert not (tmp_path / "out.txt").exists()


def test_summary_only_has_no_output_file(tmp_path: Path):
    folder = OutputFolder(str(tmp_path), None)
    folder.prepare({"job": 1}, resume=True)
    folder.commit(record(0), None)
    folder.assemble(["000000-id"])
    assert folder.output_file is None
    assert [path.name for path in tmp_path.iterdir()] == [".parallel_run"]


def test_memory_output_stages_rows_on_this_machine():
    folder = OutputFolder(f"memory://out-{uuid.uuid4().hex}", "rows.txt")
    assert Path(folder.staging_dir).is_dir()
    folder.close()
