"""plan_job as a whole: stable ids, serialisation, fingerprints, several inputs, input errors."""

from __future__ import annotations

import gc
import json
import os
import pickle
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from prefect_parallelrun.plan import (
    FileDataset,
    InputError,
    MiniBatch,
    MiniBatchSizeError,
    MixedInputKindsError,
    TabularDataset,
    plan_job,
)
from tests.files import touch


def test_the_same_inputs_give_the_same_mini_batches_and_ids(tmp_path: Path) -> None:
    touch(tmp_path, *(f"{number}.png" for number in range(7)))
    first = plan_job([FileDataset.from_files(tmp_path)], 3, None)
    second = plan_job([FileDataset.from_files(str(tmp_path) + "/")], 3, None)
    assert first == second
    assert [mini_batch.id for mini_batch in first.mini_batches][0].startswith("000000-")
    assert len({mini_batch.id for mini_batch in first.mini_batches}) == 3


def test_ids_change_with_the_split_but_not_with_file_contents(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "b.png")
    before = plan_job([FileDataset.from_files(tmp_path)], 1, None)
    (tmp_path / "a.png").write_text("new contents, new size")
    after = plan_job([FileDataset.from_files(tmp_path)], 1, None)
    regrouped = plan_job([FileDataset.from_files(tmp_path)], 2, None)
    assert [mb.id for mb in before.mini_batches] == [mb.id for mb in after.mini_batches]
    assert before.fingerprint != after.fingerprint
    assert regrouped.mini_batches[0].id not in {mb.id for mb in before.mini_batches}
    assert regrouped.fingerprint != after.fingerprint


def test_fingerprint_notices_a_touched_file(tmp_path: Path) -> None:
    touch(tmp_path, "a.csv")
    dataset = TabularDataset.from_delimited_files(tmp_path)
    before = plan_job([dataset], None, None).fingerprint
    os.utime(tmp_path / "a.csv", ns=(0, 10**9))
    assert plan_job([dataset], None, None).fingerprint != before


def test_mini_batches_survive_pickle_and_json(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    plan = plan_job(
        [TabularDataset.from_delimited_files(tmp_path).as_named_input("sales")], 4, None
    )
    assert pickle.loads(pickle.dumps(plan)) == plan
    for mini_batch in plan.mini_batches:
        assert MiniBatch.from_json(json.loads(json.dumps(mini_batch.to_json()))) == mini_batch
        assert mini_batch.input_name == "sales"
    assert len(pickle.dumps(plan.mini_batches[0])) < 1000


def test_several_inputs_are_split_one_after_another(tmp_path: Path) -> None:
    touch(tmp_path, "x/1.png", "x/2.png", "y/1.png")
    inputs = [
        FileDataset.from_files(tmp_path / "y"),
        FileDataset.from_files(tmp_path / "x").as_named_input("xs"),
    ]
    plan = plan_job(inputs, 10, None)
    assert [(mb.index, mb.input_name, mb.item_count) for mb in plan.mini_batches] == [
        (0, "input_0", 1),
        (1, "xs", 2),
    ]


def test_mixing_file_and_tabular_inputs_is_an_error(tmp_path: Path) -> None:
    inputs = [FileDataset.from_files(tmp_path), TabularDataset.from_parquet_files(tmp_path)]
    with pytest.raises(MixedInputKindsError, match="cannot be mixed"):
        plan_job(inputs, None, None)


def test_duplicate_input_names_are_an_error(tmp_path: Path) -> None:
    dataset = FileDataset.from_files(tmp_path).as_named_input("images")
    with pytest.raises(InputError, match="images"):
        plan_job([dataset, dataset], None, None)


def test_no_inputs_is_an_error() -> None:
    with pytest.raises(InputError, match="no inputs"):
        plan_job([], None, None)


def test_bad_mini_batch_size_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MiniBatchSizeError, match="mini_batch_size"):
        plan_job([FileDataset.from_files(tmp_path)], "ten", None)


def test_input_errors_are_value_errors() -> None:
    assert issubclass(InputError, ValueError)
    assert issubclass(MixedInputKindsError, InputError)


def test_as_named_input_returns_a_named_copy() -> None:
    dataset = FileDataset.from_files(["a", "b"])
    named = dataset.as_named_input("images")
    assert (dataset.name, named.name, named.paths) == (None, "images", ["a", "b"])
    with pytest.raises(ValueError, match="input name"):
        dataset.as_named_input("my images")


def test_datasets_round_trip_as_json_flow_parameters() -> None:
    adapter = TypeAdapter(list[FileDataset | TabularDataset])
    inputs = [
        TabularDataset.from_delimited_files("s3://bucket/*.csv", separator=";", header=False),
        TabularDataset.from_parquet_files(["a.parquet"], partition_format="{day}/*.parquet"),
    ]
    assert adapter.validate_json(adapter.dump_json(inputs)) == inputs
    assert adapter.validate_python([{"paths": ["x"]}]) == [FileDataset(paths=["x"])]


def test_separator_must_be_one_character() -> None:
    with pytest.raises(ValueError, match="separator"):
        TabularDataset.from_delimited_files("a.csv", separator="||")


def test_describe_shortens_long_file_lists(tmp_path: Path) -> None:
    touch(tmp_path, *(f"{number}.png" for number in range(5)))
    (mini_batch,) = plan_job([FileDataset.from_files(tmp_path)], 10, None).mini_batches
    assert mini_batch.describe() == "5 files: 0.png, 1.png, 2.png and 2 more"
    assert mini_batch.failed_items_lines() == [str(tmp_path / f"{n}.png") for n in range(5)]


def test_planning_leaves_the_cycle_collector_as_it_was(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    assert gc.isenabled()
    plan_job([FileDataset.from_files(tmp_path)], None, None)
    assert gc.isenabled()
    gc.disable()
    try:
        plan_job([FileDataset.from_files(tmp_path)], None, None)
        assert not gc.isenabled()
    finally:
        gc.enable()
