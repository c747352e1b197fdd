"""File inputs: listing, ordering, mini-batch sizes, remote fetching and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from prefect_parallelrun.plan import (
    FileDataset,
    InputNotFoundError,
    InputReadError,
    MiniBatchReadError,
    MiniBatchSizeError,
    open_mini_batch,
    plan_job,
)


def make_files(root: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        paths.append(str(path))
    return paths


def test_folder_is_walked_recursively_and_split_in_sorted_path_order(tmp_path: Path) -> None:
    make_files(tmp_path, "b/2.png", "a/1.png", "c.png", "a/0.png", "b/1.png")
    plan = plan_job([FileDataset.from_files(tmp_path)], mini_batch_size=2, partition_keys=None)
    assert plan.kind == "files"
    assert [list(mini_batch.files) for mini_batch in plan.mini_batches] == [
        [str(tmp_path / "a/0.png"), str(tmp_path / "a/1.png")],
        [str(tmp_path / "b/1.png"), str(tmp_path / "b/2.png")],
        [str(tmp_path / "c.png")],
    ]
    assert [mini_batch.index for mini_batch in plan.mini_batches] == [0, 1, 2]
    assert [mini_batch.item_count for mini_batch in plan.mini_batches] == [2, 2, 1]


def test_default_mini_batch_size_is_ten_files(tmp_path: Path) -> None:
    make_files(tmp_path, *(f"{number:02d}.txt" for number in range(25)))
    plan = plan_job([FileDataset.from_files(str(tmp_path))], None, None)
    assert [mini_batch.item_count for mini_batch in plan.mini_batches] == [10, 10, 5]


def test_glob_and_explicit_paths_select_files_without_duplicates(tmp_path: Path) -> None:
    make_files(tmp_path, "x/a.png", "x/b.jpg", "y/c.png")
    dataset = FileDataset.from_files(
        [str(tmp_path / "**" / "*.png"), str(tmp_path / "x" / "a.png")]
    )
    plan = plan_job([dataset], 10, None)
    assert plan.mini_batches[0].files == (str(tmp_path / "x/a.png"), str(tmp_path / "y/c.png"))


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(tmp_path, "data/a.png")
    monkeypatch.chdir(tmp_path)
    plan = plan_job([FileDataset.from_files("data")], 10, None)
    assert plan.mini_batches[0].files == (str(tmp_path / "data/a.png"),)


def test_hidden_files_in_folders_are_skipped(tmp_path: Path) -> None:
    make_files(tmp_path, "a.png", ".DS_Store", ".cache/b.png", "_c.png")
    plan = plan_job([FileDataset.from_files(tmp_path)], 10, None)
    assert [os.path.basename(path) for path in plan.mini_batches[0].files] == ["_c.png", "a.png"]


def test_empty_folder_gives_zero_mini_batches(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    plan = plan_job([FileDataset.from_files(tmp_path / "empty")], 10, None)
    assert plan.mini_batches == []


def test_path_matching_nothing_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(InputNotFoundError, match="nowhere.*input_0|input_0.*nowhere"):
        plan_job([FileDataset.from_files(missing)], 10, None)


def test_glob_matching_nothing_is_an_error_naming_it(tmp_path: Path) -> None:
    make_files(tmp_path, "a.png")
    with pytest.raises(InputNotFoundError, match=r"\*\.jpg"):
        plan_job([FileDataset.from_files(str(tmp_path / "*.jpg"))], 10, None)


def test_broken_link_in_folder_is_an_unreadable_file_error(tmp_path: Path) -> None:
    make_files(tmp_path, "a.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(InputReadError, match="b.png"):
        plan_job([FileDataset.from_files(tmp_path)], 10, None)


def test_mini_batch_size_with_a_unit_is_an_error_for_file_inputs(tmp_path: Path) -> None:
    make_files(tmp_path, "a.png")
    with pytest.raises(MiniBatchSizeError, match="file count"):
        plan_job([FileDataset.from_files(tmp_path)], "1 MB", None)


def test_mini_batch_size_as_digits_string_is_a_file_count(tmp_path: Path) -> None:
    make_files(tmp_path, "a.png", "b.png", "c.png")
    plan = plan_job([FileDataset.from_files(tmp_path)], "2", None)
    assert [mini_batch.item_count for mini_batch in plan.mini_batches] == [2, 1]


def test_local_files_are_passed_as_they_are(tmp_path: Path) -> None:
    make_files(tmp_path, "a.png")
    plan = plan_job([FileDataset.from_files(tmp_path)], 10, None)
    scratch = tmp_path / "scratch"
    with open_mini_batch(plan.mini_batches[0], str(scratch)) as files:
        assert files == [str(tmp_path / "a.png")]
        assert len(files) == plan.mini_batches[0].item_count


def test_file_url_gives_local_paths(tmp_path: Path) -> None:
    make_files(tmp_path, "d/a.png", "d/b.png")
    plan = plan_job([FileDataset.from_files(f"file://{tmp_path}/d")], 10, None)
    with open_mini_batch(plan.mini_batches[0], str(tmp_path / "scratch")) as files:
        assert files == [str(tmp_path / "d/a.png"), str(tmp_path / "d/b.png")]


def test_remote_files_are_fetched_to_local_paths_and_removed_after(
    tmp_path: Path, memory_root: str
) -> None:
    filesystem = fsspec.filesystem("memory")
    for name in ("alice/1.png", "bob/1.png", "bob/2.png"):
        filesystem.pipe(f"{memory_root}/{name}", name.encode())
    plan = plan_job([FileDataset.from_files(memory_root)], 10, None)
    mini_batch = plan.mini_batches[0]
    assert all(url.startswith("memory://") for url in mini_batch.files)
    with open_mini_batch(mini_batch, str(tmp_path)) as files:
        assert all(os.path.isabs(path) and path.startswith(str(tmp_path)) for path in files)
        assert [Path(path).read_text() for path in files] == [
            "alice/1.png",
            "bob/1.png",
            "bob/2.png",
        ]
        assert files[1].endswith(os.path.join("bob", "1.png"))
    assert not any(os.path.exists(path) for path in files)
    assert mini_batch.failed_items_lines() == list(mini_batch.files)


def test_remote_glob_and_missing_remote_path(memory_root: str) -> None:
    filesystem = fsspec.filesystem("memory")
    filesystem.pipe(f"{memory_root}/a.png", b"a")
    filesystem.pipe(f"{memory_root}/b.txt", b"b")
    plan = plan_job([FileDataset.from_files(f"{memory_root}/*.png")], 10, None)
    assert [url.rsplit("/", 1)[-1] for url in plan.mini_batches[0].files] == ["a.png"]
    with pytest.raises(InputNotFoundError, match="missing"):
        plan_job([FileDataset.from_files(f"{memory_root}/missing")], 10, None)


def test_remote_file_gone_before_loading_is_a_read_error(tmp_path: Path, memory_root: str) -> None:
    filesystem = fsspec.filesystem("memory")
    filesystem.pipe(f"{memory_root}/a.png", b"a")
    plan = plan_job([FileDataset.from_files(memory_root)], 10, None)
    filesystem.rm(f"{memory_root}/a.png")
    with pytest.raises(MiniBatchReadError, match="a.png"):
        with open_mini_batch(plan.mini_batches[0], str(tmp_path)):
            pass
    assert os.listdir(tmp_path) == []


def test_local_file_gone_before_loading_is_a_read_error(tmp_path: Path) -> None:
    (path,) = make_files(tmp_path, "a.png")
    plan = plan_job([FileDataset.from_files(tmp_path)], 10, None)
    os.remove(path)
    with pytest.raises(MiniBatchReadError, match="a.png.*no such file"):
        with open_mini_batch(plan.mini_batches[0], str(tmp_path / "scratch")):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any file")
def test_unreadable_local_file_fails_loading_with_a_clear_error(tmp_path: Path) -> None:
    (path,) = make_files(tmp_path, "a.png")
    plan = plan_job([FileDataset.from_files(tmp_path)], 10, None)
    os.chmod(path, 0)
    with pytest.raises(MiniBatchReadError, match="permission denied"):
        with open_mini_batch(plan.mini_batches[0], str(tmp_path / "scratch")):
            pass
