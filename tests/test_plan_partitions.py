"""partition_format, hive folders and partition_keys, for file and tabular inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefect_parallelrun.plan import (
    FileDataset,
    MiniBatch,
    MiniBatchSizeError,
    PartitionFormatError,
    PartitionKeyError,
    TabularDataset,
    open_mini_batch,
    plan_job,
)
from tests.files import touch


def test_partition_format_gives_one_mini_batch_per_key_value(tmp_path: Path) -> None:
    touch(tmp_path, "bob/d1/a.png", "alice/d1/a.png", "alice/d2/b.png", "bob/d1/c.png")
    dataset = FileDataset.from_files(tmp_path, partition_format="{user}/{date}/*.png")
    plan = plan_job([dataset], None, ["user"])
    assert [mini_batch.partition_key_value for mini_batch in plan.mini_batches] == [
        {"user": "alice"},
        {"user": "bob"},
    ]
    assert [mini_batch.item_count for mini_batch in plan.mini_batches] == [2, 2]
    assert plan.mini_batches[1].describe() == "user=bob: 2 files: a.png, c.png"


def test_several_partition_keys_combine(tmp_path: Path) -> None:
    touch(tmp_path, "alice/d1/a.png", "alice/d2/b.png", "alice/d2/c.png")
    dataset = FileDataset.from_files(tmp_path, partition_format="{user}/{date}/*.png")
    plan = plan_job([dataset], None, ["date", "user"])
    assert [(mb.partition_key_value, mb.item_count) for mb in plan.mini_batches] == [
        ({"date": "d1", "user": "alice"}, 1),
        ({"date": "d2", "user": "alice"}, 2),
    ]


def test_partition_format_with_a_date_field(tmp_path: Path) -> None:
    touch(tmp_path, "sales/2024/01/31/a.csv", "sales/2024/02/01/b.csv")
    dataset = FileDataset.from_files(
        tmp_path, partition_format="{team}/{day:yyyy/MM/dd}/{name}.csv"
    )
    plan = plan_job([dataset], None, ["day"])
    assert [mb.partition_key_value for mb in plan.mini_batches] == [
        {"day": "2024/01/31"},
        {"day": "2024/02/01"},
    ]


def test_hive_folders_give_partition_fields(tmp_path: Path) -> None:
    touch(tmp_path, "country=FR/year=2024/a.bin", "country=US%20East/year=2024/b.bin")
    plan = plan_job([FileDataset.from_files(tmp_path)], None, ["country"])
    assert [mb.partition_key_value for mb in plan.mini_batches] == [
        {"country": "FR"},
        {"country": "US East"},
    ]


def test_partition_key_missing_from_the_format_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path, "alice/a.png")
    dataset = FileDataset.from_files(tmp_path, partition_format="{user}/*.png")
    with pytest.raises(PartitionKeyError, match=r"\['date'\].*a.png.*user"):
        plan_job([dataset], None, ["date"])


def test_file_not_matching_the_partition_format_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path, "alice/a.png", "loose.txt")
    dataset = FileDataset.from_files(tmp_path, partition_format="{user}/*.png")
    with pytest.raises(PartitionFormatError, match="loose.txt"):
        plan_job([dataset], None, ["user"])


def test_malformed_partition_format_is_refused_when_the_dataset_is_built() -> None:
    with pytest.raises(ValueError, match="stray brace"):
        FileDataset.from_files("data", partition_format="{user/*.png")


def test_partition_keys_with_mini_batch_size_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path, "alice/a.png")
    dataset = FileDataset.from_files(tmp_path, partition_format="{user}/*.png")
    with pytest.raises(MiniBatchSizeError, match="partition_keys and mini_batch_size"):
        plan_job([dataset], 5, ["user"])


def write_sales(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("store,zip,amount\nA,007,1\nB,010,2\nA,007,3\nC,,4\n")


def load(mini_batch: MiniBatch, scratch: Path) -> pd.DataFrame:
    with open_mini_batch(mini_batch, str(scratch)) as frame:
        return frame


def test_csv_partitioned_by_a_column_reads_only_that_partition(tmp_path: Path) -> None:
    write_sales(tmp_path / "sales.csv")
    plan = plan_job([TabularDataset.from_delimited_files(tmp_path / "sales.csv")], None, ["store"])
    assert [(mb.partition_key_value, mb.item_count) for mb in plan.mini_batches] == [
        ({"store": "A"}, 2),
        ({"store": "B"}, 1),
        ({"store": "C"}, 1),
    ]
    frame = load(plan.mini_batches[0], tmp_path)
    assert frame["amount"].tolist() == [1, 3]
    assert plan.mini_batches[0].failed_items_lines() == [
        f"{tmp_path / 'sales.csv'} rows where store=A"
    ]


def test_csv_key_column_keeps_its_text(tmp_path: Path) -> None:
    write_sales(tmp_path / "sales.csv")
    plan = plan_job([TabularDataset.from_delimited_files(tmp_path / "sales.csv")], None, ["zip"])
    assert [mb.partition_key_value for mb in plan.mini_batches] == [
        {"zip": "007"},
        {"zip": "010"},
        {"zip": ""},
    ]
    assert load(plan.mini_batches[0], tmp_path)["zip"].tolist() == ["007", "007"]


def test_one_partition_spans_several_files_in_file_order(tmp_path: Path) -> None:
    write_sales(tmp_path / "a.csv")
    write_sales(tmp_path / "b.csv")
    plan = plan_job([TabularDataset.from_delimited_files(tmp_path)], None, ["store"])
    assert len(plan.mini_batches) == 3
    first = plan.mini_batches[0]
    assert [part.url for part in first.table_parts] == [
        str(tmp_path / "a.csv"),
        str(tmp_path / "b.csv"),
    ]
    assert first.item_count == 4
    assert load(first, tmp_path)["amount"].tolist() == [1, 3, 1, 3]


def test_table_partitioned_by_path_fields_and_columns(tmp_path: Path) -> None:
    write_sales(tmp_path / "region=north/s.csv")
    write_sales(tmp_path / "region=south/s.csv")
    dataset = TabularDataset.from_delimited_files(tmp_path)
    plan = plan_job([dataset], None, ["region", "store"])
    assert [mb.partition_key_value for mb in plan.mini_batches][:2] == [
        {"region": "north", "store": "A"},
        {"region": "north", "store": "B"},
    ]
    frame = load(plan.mini_batches[3], tmp_path)
    assert frame["region"].tolist() == ["south", "south"]
    assert frame["store"].tolist() == ["A", "A"]


def test_table_partitioned_by_path_fields_only_reads_whole_files(tmp_path: Path) -> None:
    write_sales(tmp_path / "2024/jan/s.csv")
    write_sales(tmp_path / "2024/feb/s.csv")
    dataset = TabularDataset.from_delimited_files(tmp_path, partition_format="{year}/{month}/s.csv")
    plan = plan_job([dataset], None, ["month"])
    assert [mb.partition_key_value for mb in plan.mini_batches] == [
        {"month": "feb"},
        {"month": "jan"},
    ]
    frame = load(plan.mini_batches[0], tmp_path)
    assert len(frame) == 4
    assert set(frame["month"]) == {"feb"}
    assert set(frame["year"]) == {"2024"}


def test_path_fields_become_columns_of_split_tables(tmp_path: Path) -> None:
    write_sales(tmp_path / "shop=paris/s.csv")
    plan = plan_job([TabularDataset.from_delimited_files(tmp_path)], "1 KB", None)
    assert load(plan.mini_batches[0], tmp_path)["shop"].tolist() == ["paris"] * 4


def test_parquet_partitioned_by_a_column_knows_its_row_counts(tmp_path: Path) -> None:
    table = pa.table({"user": ["u1", "u2", None, "u1"], "value": [1, 2, 3, 4]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    plan = plan_job([TabularDataset.from_parquet_files(tmp_path)], None, ["user"])
    assert [(mb.partition_key_value, mb.item_count) for mb in plan.mini_batches] == [
        ({"user": "u1"}, 2),
        ({"user": "u2"}, 1),
        ({"user": ""}, 1),
    ]
    assert load(plan.mini_batches[0], tmp_path)["value"].tolist() == [1, 4]
    assert load(plan.mini_batches[2], tmp_path)["value"].tolist() == [3]


def test_jsonl_partitioned_by_a_field(tmp_path: Path) -> None:
    rows = [{"k": 1, "v": "a"}, {"v": "b"}, {"k": 2, "v": "c"}, {"k": 1, "v": "d"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    plan = plan_job([TabularDataset.from_json_lines_files(tmp_path)], None, ["k"])
    assert [mb.partition_key_value for mb in plan.mini_batches] == [
        {"k": "1"},
        {"k": ""},
        {"k": "2"},
    ]
    assert load(plan.mini_batches[0], tmp_path)["v"].tolist() == ["a", "d"]
    assert load(plan.mini_batches[1], tmp_path)["v"].tolist() == ["b"]


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_table_partition_key_that_is_no_column_is_an_error(tmp_path: Path, kind: str) -> None:
    if kind == "csv":
        write_sales(tmp_path / "s.csv")
        dataset = TabularDataset.from_delimited_files(tmp_path)
    elif kind == "parquet":
        pq.write_table(pa.table({"store": ["A"]}), tmp_path / "s.parquet")
        dataset = TabularDataset.from_parquet_files(tmp_path)
    else:
        (tmp_path / "s.jsonl").write_text('{"store": "A"}\n')
        dataset = TabularDataset.from_json_lines_files(tmp_path)
    with pytest.raises(PartitionKeyError, match=r"\['shop'\].*s\."):
        plan_job([dataset], None, ["shop"])


def test_parquet_and_jsonl_partitioned_by_path_fields_read_whole_files(tmp_path: Path) -> None:
    for day in ("mon", "tue"):
        (tmp_path / f"day={day}").mkdir()
        pq.write_table(pa.table({"n": [1, 2, 3]}), tmp_path / f"day={day}/p.parquet")
        (tmp_path / f"day={day}/j.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    parquet = plan_job(
        [TabularDataset.from_parquet_files(f"{tmp_path}/*/*.parquet")], None, ["day"]
    )
    assert [(mb.partition_key_value, mb.item_count) for mb in parquet.mini_batches] == [
        ({"day": "mon"}, 3),
        ({"day": "tue"}, 3),
    ]
    assert load(parquet.mini_batches[1], tmp_path)["n"].tolist() == [1, 2, 3]
    jsonl = plan_job([TabularDataset.from_json_lines_files(f"{tmp_path}/*/*.jsonl")], None, ["day"])
    frame = load(jsonl.mini_batches[0], tmp_path)
    assert frame.to_dict("list") == {"n": [1, 2], "day": ["mon", "mon"]}


def test_csv_without_header_is_partitioned_by_a_numbered_column(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("A,1\nB,2\nA,3\n")
    dataset = TabularDataset.from_delimited_files(tmp_path, header=False)
    plan = plan_job([dataset], None, ["Column1"])
    assert [mb.partition_key_value for mb in plan.mini_batches] == [
        {"Column1": "A"},
        {"Column1": "B"},
    ]
    assert load(plan.mini_batches[0], tmp_path)["Column2"].tolist() == [1, 3]
