"""One process slot's lifecycle, driven directly as a worker thread would (no Dask, no Prefect):
empty, spawned, ready, running, stopped; a stopped slot starts no other process."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psutil
import pytest

from prefect_parallelrun.execute.process_slot import ProcessSlot, SlotStatus
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.results import AttemptResult
from tests.test_execute_processes import SCRIPTS, STAND_IN_READER, Job

pytestmark = pytest.mark.slow  # starts entry-script processes


class Slot(ProcessSlot):
    """A slot of a job that runs `behaviours.py`, fed mini-batches made of item texts."""

    def __init__(self, folder: Path, **spec_options: Any):
        spec = ProcessSpec(
            job_id=f"slot-{uuid.uuid4().hex[:8]}",
            entry_script="behaviours.py",
            source_directory=str(SCRIPTS),
            logs_dir=str(folder / "logs"),
            output_action="summary_only",
            environment_variables={"NOTES_FILE": str(folder / "notes.txt")},
            mini_batch_reader=STAND_IN_READER,
            **spec_options,
        )
        super().__init__(spec, "node", "process000", str(folder), None)
        self.job = Job(None, folder, spec)  # makes the mini-batches and reads the notes

    def run_items(self, *item_texts: str) -> AttemptResult:
        return self.run(self.job.mini_batch(*item_texts), 1)

    def events(self) -> list[str]:
        return [event for event, _ in self.job.notes()]


@pytest.fixture
def make_slot(tmp_path: Path) -> Iterator[Callable[..., Slot]]:
    made: list[Slot] = []

    def make(**spec_options: Any) -> Slot:
        made.append(Slot(tmp_path, **spec_options))
        return made[-1]

    yield make
    for slot in made:
        slot.kill()


@pytest.fixture
def warm_slot(make_slot: Callable[..., Slot]) -> Slot:
    """A slot whose process has run init() and one mini-batch."""
    slot = make_slot()
    first = slot.run_items("ok")
    assert first.status == "succeeded", first.error
    assert slot.status is SlotStatus.READY and slot.pid is not None
    return slot


def gone(pid: int | None) -> bool:
    return pid is not None and not psutil.pid_exists(pid)


def test_a_slot_starts_runs_and_once_stopped_starts_no_other_process(
    make_slot: Callable[..., Slot],
) -> None:
    slot = make_slot()
    assert slot.status is SlotStatus.EMPTY and slot.pid is None
    slot.start()
    assert slot.status is SlotStatus.SPAWNED
    pid = slot.pid

    result = slot.run_items("ok", "ok")
    assert result.status == "succeeded", result.error
    assert slot.status is SlotStatus.READY and slot.pid == pid

    slot.kill()
    assert slot.status is SlotStatus.STOPPED and slot.pid is None and gone(pid)
    after = slot.run_items("ok")
    assert after.status == "failed" and "the job was stopped" in str(after.error)
    assert slot.pid is None and slot.events() == ["init"]


def test_a_timeout_empties_the_slot_and_the_next_mini_batch_starts_a_new_process(
    make_slot: Callable[..., Slot],
) -> None:
    slot = make_slot(run_invocation_timeout=1.0)
    assert slot.run_items("ok").status == "succeeded"
    old_pid = slot.pid

    timed_out = slot.run_items("sleep 600")
    assert timed_out.status == "timeout"
    assert "run_invocation_timeout=1 seconds" in str(timed_out.error)
    assert slot.status is SlotStatus.EMPTY and gone(old_pid)

    again = slot.run_items("ok")
    assert again.status == "succeeded", again.error
    assert slot.status is SlotStatus.READY and slot.pid not in (None, old_pid)
    assert slot.events() == ["init", "init"]


def test_killing_a_running_slot_ends_its_mini_batch_as_stopped(warm_slot: Slot) -> None:
    pid = warm_slot.pid
    running: Future[AttemptResult] = Future()
    worker = threading.Thread(target=lambda: running.set_result(warm_slot.run_items("sleep 600")))
    worker.start()
    deadline = time.monotonic() + 60
    while warm_slot.status is not SlotStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.02)
    assert warm_slot.status is SlotStatus.RUNNING

    warm_slot.kill()
    result = running.result(timeout=60)
    worker.join()
    assert result.status == "failed" and "the job was stopped" in str(result.error)
    assert warm_slot.status is SlotStatus.STOPPED and warm_slot.pid is None and gone(pid)


def test_a_drain_calls_shutdown_and_leaves_the_slot_stopped(warm_slot: Slot) -> None:
    pid = warm_slot.pid
    reply = warm_slot.shutdown(time.monotonic() + 60)
    assert reply is not None and reply.error is None
    assert warm_slot.events() == ["init", "shutdown"]
    assert warm_slot.status is SlotStatus.STOPPED and warm_slot.pid is None and gone(pid)
    assert warm_slot.shutdown(time.monotonic() + 60) is None


def test_the_log_caps_of_the_spec_reach_the_process(make_slot: Callable[..., Slot]) -> None:
    slot = make_slot(max_log_records_per_run=2, max_log_message_chars=10)
    result = slot.run_items("log", "log", "log")

    assert result.status == "succeeded", result.error
    kept, note = result.log_records[:2], result.log_records[2:]
    assert [level for level, _ in kept] == ["WARNING", "WARNING"]
    assert all(message == "scoring mb [...]" for _, message in kept), kept
    assert note == [
        ("WARNING", "1 more log records of this run are only in the process's log file.")
    ]
