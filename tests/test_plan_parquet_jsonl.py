"""Parquet inputs (split by row groups) and JSON-lines inputs (split by byte range)."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefect_parallelrun.plan import (
    CorruptInputError,
    MiniBatchReadError,
    TabularDataset,
    open_mini_batch,
    plan_job,
)


def write_parquet(path: Path | str, rows: int, row_group_size: int) -> None:
    table = pa.table({"id": list(range(rows)), "name": [f"row-{row}" for row in range(rows)]})
    with fsspec.open(str(path), "wb") as stream:
        pq.write_table(table, stream, row_group_size=row_group_size)


def test_parquet_is_split_by_row_groups_with_known_row_counts(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    write_parquet(path, rows=1000, row_group_size=100)
    plan = plan_job([TabularDataset.from_parquet_files(path)], 1, None)
    assert len(plan.mini_batches) == 10
    assert [mini_batch.item_count for mini_batch in plan.mini_batches] == [100] * 10
    assert plan.mini_batches[3].describe() == "data.parquet rows 300-399"
    with open_mini_batch(plan.mini_batches[3], str(tmp_path)) as frame:
        assert frame["id"].tolist() == list(range(300, 400))


def test_parquet_row_groups_are_grouped_up_to_the_mini_batch_size(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    write_parquet(path, rows=1000, row_group_size=100)
    metadata = pq.read_metadata(path)
    group_bytes = sum(metadata.row_group(0).column(c).total_compressed_size for c in range(2))
    plan = plan_job([TabularDataset.from_parquet_files(path)], group_bytes * 3, None)
    assert [part.row_groups for mb in plan.mini_batches for part in mb.table_parts][0] == (0, 1, 2)
    assert sum(mini_batch.item_count for mini_batch in plan.mini_batches) == 1000


def test_remote_parquet_is_read_by_row_groups(tmp_path: Path, memory_root: str) -> None:
    write_parquet(f"{memory_root}/a.parquet", rows=50, row_group_size=10)
    plan = plan_job([TabularDataset.from_parquet_files(memory_root)], 1, None)
    with open_mini_batch(plan.mini_batches[-1], str(tmp_path)) as frame:
        assert frame["id"].tolist() == list(range(40, 50))


def test_parquet_with_a_bad_footer_is_an_error_at_plan_time(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    write_parquet(path, rows=10, row_group_size=10)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CorruptInputError, match="broken.parquet"):
        plan_job([TabularDataset.from_parquet_files(path)], None, None)


def test_parquet_with_bad_data_pages_fails_when_its_mini_batch_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "pages.parquet"
    write_parquet(path, rows=1000, row_group_size=100)
    column = pq.read_metadata(path).row_group(3).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    path.write_bytes(bytes(data))
    plan = plan_job([TabularDataset.from_parquet_files(path)], 1, None)
    with open_mini_batch(plan.mini_batches[2], str(tmp_path)) as frame:
        assert len(frame) == 100
    with pytest.raises(MiniBatchReadError, match="pages.parquet"):
        with open_mini_batch(plan.mini_batches[3], str(tmp_path)):
            pass


def test_parquet_without_rows_gives_zero_mini_batches(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), path)
    assert plan_job([TabularDataset.from_parquet_files(path)], None, None).mini_batches == []


def test_parquet_folder_skips_spark_markers(tmp_path: Path) -> None:
    write_parquet(tmp_path / "part-0.parquet", rows=5, row_group_size=5)
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".part-0.parquet.crc").write_text("crc")
    plan = plan_job([TabularDataset.from_parquet_files(tmp_path)], None, None)
    assert [mini_batch.describe() for mini_batch in plan.mini_batches] == [
        "part-0.parquet rows 0-4"
    ]


def write_jsonl(path: Path | str, rows: int) -> None:
    lines = [json.dumps({"id": row, "text": f"line {row}\nwith newline"}) for row in range(rows)]
    with fsspec.open(str(path), "w") as stream:
        stream.write("\n".join(lines) + "\n")


def test_jsonl_split_by_bytes_reads_every_line_once(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    write_jsonl(path, rows=300)
    plan = plan_job([TabularDataset.from_json_lines_files(path)], 500, None)
    ids = []
    for mini_batch in plan.mini_batches:
        assert mini_batch.describe().startswith("data.jsonl bytes ")
        with open_mini_batch(mini_batch, str(tmp_path)) as frame:
            ids += frame["id"].tolist()
            assert frame["text"].str.contains("\n").all()
    assert len(plan.mini_batches) > 5
    assert ids == list(range(300))


def test_remote_jsonl_without_trailing_newline(tmp_path: Path, memory_root: str) -> None:
    fsspec.filesystem("memory").pipe(f"{memory_root}/d.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": 3}')
    plan = plan_job([TabularDataset.from_json_lines_files(f"{memory_root}/*.jsonl")], 5, None)
    values = []
    for mini_batch in plan.mini_batches:
        with open_mini_batch(mini_batch, str(tmp_path)) as frame:
            values += frame["a"].tolist()
    assert values == [1, 2, 3]


def test_empty_jsonl_gives_zero_mini_batches(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    assert plan_job([TabularDataset.from_json_lines_files(tmp_path)], None, None).mini_batches == []


def test_bad_json_line_fails_when_its_mini_batch_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    (mini_batch,) = plan_job([TabularDataset.from_json_lines_files(path)], None, None).mini_batches
    with pytest.raises(MiniBatchReadError, match="bad.jsonl"):
        with open_mini_batch(mini_batch, str(tmp_path)):
            pass
