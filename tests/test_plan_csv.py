"""Delimited files: byte-range splitting on safe row boundaries, headers, and CSV errors."""

from __future__ import annotations

import io
import random
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow.csv as pa_csv
import pytest

from prefect_parallelrun.plan import (
    CorruptInputError,
    InputReadError,
    MiniBatchReadError,
    PartitionFormatError,
    TabularDataset,
    open_mini_batch,
    plan_job,
)
from prefect_parallelrun.plan.byte_ranges import csv_row_ends


def load_all(dataset: TabularDataset, mini_batch_size: int | str, scratch: Path) -> pd.DataFrame:
    plan = plan_job([dataset], mini_batch_size, None)
    frames = []
    for mini_batch in plan.mini_batches:
        with open_mini_batch(mini_batch, str(scratch)) as frame:
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def tricky_csv(rows: int, seed: int, newline: str = "\n") -> str:
    """Rows with quoted separators, quoted newlines (LF and CRLF) and escaped quotes."""
    generator = random.Random(seed)
    values = ["plain", '"a, b"', '"two\nlines"', '"say ""hi"""', '"crlf\r\ninside"', '"q"""', "x"]
    lines = ["id,text,score"]
    lines += [f"{row},{generator.choice(values)},{row * 0.5}" for row in range(rows)]
    return newline.join(lines) + newline


@pytest.mark.parametrize("piece_bytes", [1, 2, 3, 7, 64, 4096])
def test_csv_row_ends_only_cut_after_whole_rows(piece_bytes: int) -> None:
    data = b'h\n"a\nb",1\nc,2\n"d""\n",3\ne,4'
    ends = list(csv_row_ends(io.BytesIO(data), 0, 1, "t.csv", piece_bytes=piece_bytes))
    assert ends == [2, 10, 14, 23]


def test_csv_row_ends_honour_the_minimum_bytes() -> None:
    data = b"aaaa\nbb\ncc\nddddddd\ne\n"
    assert list(csv_row_ends(io.BytesIO(data), 0, 6, "t.csv")) == [8, 19]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("mini_batch_size", [1, 17, 64, 1000, 10**6])
def test_csv_split_reads_every_row_exactly_once(
    tmp_path: Path, newline: str, mini_batch_size: int
) -> None:
    text = tricky_csv(200, seed=mini_batch_size, newline=newline)
    path = tmp_path / "data.csv"
    path.write_bytes(text.encode())
    expected = pa_csv.read_csv(
        str(path), parse_options=pa_csv.ParseOptions(newlines_in_values=True)
    ).to_pandas()
    loaded = load_all(TabularDataset.from_delimited_files(path), mini_batch_size, tmp_path)
    assert loaded["id"].tolist() == list(range(200))
    assert loaded["text"].tolist() == expected["text"].tolist()


def test_csv_quoted_newline_never_breaks_a_row(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,note\n1,"first line\nsecond line\nthird line"\n2,short\n')
    plan = plan_job([TabularDataset.from_delimited_files(path)], 1, None)
    notes = []
    for mini_batch in plan.mini_batches:
        with open_mini_batch(mini_batch, str(tmp_path)) as frame:
            notes += frame["note"].tolist()
    assert len(plan.mini_batches) == 2
    assert notes == ["first line\nsecond line\nthird line", "short"]


def test_csv_header_is_applied_to_every_byte_range(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("name,age\n" + "".join(f"p{row},{row}\n" for row in range(100)))
    plan = plan_job([TabularDataset.from_delimited_files(path)], 100, None)
    assert len(plan.mini_batches) > 3
    for mini_batch in plan.mini_batches:
        with open_mini_batch(mini_batch, str(tmp_path)) as frame:
            assert list(frame.columns) == ["name", "age"]
            assert frame["age"].dtype.kind == "i"


def test_csv_without_trailing_newline_keeps_the_last_row(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n3,4\n5,6")
    assert load_all(TabularDataset.from_delimited_files(path), 1, tmp_path)["a"].tolist() == [
        1,
        3,
        5,
    ]


def test_csv_without_header_gets_numbered_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("1,x\n2,y\n3,z\n")
    loaded = load_all(TabularDataset.from_delimited_files(path, header=False), 1, tmp_path)
    assert list(loaded.columns) == ["Column1", "Column2"]
    assert loaded["Column2"].tolist() == ["x", "y", "z"]


def test_csv_separator_is_used(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("a\tb\n1\thello, world\n")
    loaded = load_all(TabularDataset.from_delimited_files(path, separator="\t"), 10, tmp_path)
    assert loaded["b"].tolist() == ["hello, world"]


def test_csv_mini_batch_never_spans_two_files(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("x\n1\n2\n")
    plan = plan_job([TabularDataset.from_delimited_files(tmp_path)], "1 MB", None)
    assert [mini_batch.describe() for mini_batch in plan.mini_batches] == [
        "a.csv bytes 2-5",
        "b.csv bytes 2-5",
    ]
    assert plan.mini_batches[0].failed_items_lines() == [f"{tmp_path / 'a.csv'} bytes 2-5"]


def test_csv_mini_batch_size_is_about_the_given_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("value\n" + "".join(f"{row:09d}\n" for row in range(10_000)))
    plan = plan_job([TabularDataset.from_delimited_files(path)], "10 KB", None)
    ranges = [
        part.byte_range for mini_batch in plan.mini_batches for part in mini_batch.table_parts
    ]
    sizes = [end - start for start, end in ranges]
    assert all(10 * 1024 <= size < 10 * 1024 + 10 for size in sizes[:-1])
    assert sum(sizes) == path.stat().st_size - len("value\n")


def test_empty_csv_and_header_only_csv_give_zero_mini_batches(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n")
    plan = plan_job([TabularDataset.from_delimited_files(tmp_path)], 10, None)
    assert plan.kind == "tabular"
    assert plan.mini_batches == []


def test_csv_with_an_unclosed_quote_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('a,b\n1,"open\n2,3\n')
    with pytest.raises(CorruptInputError, match="bad.csv.*odd number of quote"):
        plan_job([TabularDataset.from_delimited_files(path)], 1, None)


def test_csv_row_with_extra_fields_fails_loading_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    plan = plan_job([TabularDataset.from_delimited_files(path)], "1 MB", None)
    with pytest.raises(MiniBatchReadError, match="ragged.csv"):
        with open_mini_batch(plan.mini_batches[0], str(tmp_path)):
            pass


def test_csv_rows_are_unknown_until_read(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a\n1\n2\n")
    (mini_batch,) = plan_job([TabularDataset.from_delimited_files(path)], 100, None).mini_batches
    assert mini_batch.item_count is None
    with open_mini_batch(mini_batch, str(tmp_path)) as frame:
        assert len(frame) == 2


def test_remote_csv_is_split_and_read_by_byte_range(tmp_path: Path) -> None:
    root = f"memory://plan-test-{uuid.uuid4().hex}"
    filesystem = fsspec.filesystem("memory")
    filesystem.pipe(f"{root}/d.csv", tricky_csv(50, seed=1).encode())
    try:
        dataset = TabularDataset.from_delimited_files(f"{root}/d.csv")
        plan = plan_job([dataset], 200, None)
        assert len(plan.mini_batches) > 2
        assert load_all(dataset, 200, tmp_path)["id"].tolist() == list(range(50))
    finally:
        filesystem.rm(root, recursive=True)


def test_csv_file_gone_before_loading_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a\n1\n")
    (mini_batch,) = plan_job([TabularDataset.from_delimited_files(path)], None, None).mini_batches
    path.unlink()
    with pytest.raises(MiniBatchReadError, match="data.csv"):
        with open_mini_batch(mini_batch, str(tmp_path)):
            pass


def test_unreadable_table_file_is_an_error_at_plan_time(tmp_path: Path) -> None:
    (tmp_path / "link.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(InputReadError, match="link.csv"):
        plan_job([TabularDataset.from_delimited_files(tmp_path / "link.csv")], None, None)


def test_table_file_not_matching_the_partition_format_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "loose.csv").write_text("a\n1\n")
    dataset = TabularDataset.from_delimited_files(tmp_path, partition_format="{day}/part-*.csv")
    with pytest.raises(PartitionFormatError, match="loose.csv"):
        plan_job([dataset], None, None)
