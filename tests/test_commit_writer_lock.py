"""One writer per output folder, and resume after a fix: the output folder's side."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from prefect_parallelrun.commit import (
    CODE,
    CommitRecord,
    OutputFolder,
    OutputFolderInUseError,
    ResumeRefusedError,
)

HOLD_AND_WAIT = """
import sys, time
from prefect_parallelrun.commit import OutputFolder
OutputFolder(sys.argv[1], None).claim("run-in-child")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture(params=["local", "memory"])
def output_url(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "output")
    return f"memory://writer-{uuid.uuid4().hex}"


def fingerprint(script: str = "v1", mini_batch_size: str = "1") -> dict:
    return {"inputs": "abc", "mini_batch_size": mini_batch_size, CODE: {"script": script}}


def commit(folder: OutputFolder, index: int) -> None:
    folder.commit(CommitRecord(f"{index:06d}-id", index, 1, 1, 1, 0), None)


def write_lock(folder: Path, **fields: object) -> None:
    now = time.time()
    holder = dict(
        token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(),
        process_started=None, run_id=None, started=now, heartbeat=now,
    )
    (folder / ".parallel_run").mkdir(parents=True, exist_ok=True)
    (folder / ".parallel_run" / "writer.lock").write_text(json.dumps({**holder, **fields}))


def test_a_second_writer_is_refused_naming_the_holder(output_url: str):
    holder = OutputFolder(output_url, "rows.txt")
    holder.claim("run-1")
    second = OutputFolder(output_url, "rows.txt")
    try:
        with pytest.raises(OutputFolderInUseError) as refused:
            second.prepare(fingerprint(), resume=True)
        message = str(refused.value)
        assert f"host {socket.gethostname()}, pid {os.getpid()}, flow run run-1" in message
        assert "choose another output folder" in message
    finally:
        holder.close()
        second.close()


def test_the_folder_is_free_again_once_its_holder_closes(output_url: str):
    holder = OutputFolder(output_url, "rows.txt")
    holder.prepare(fingerprint(), resume=True)
    holder.close()
    second = OutputFolder(output_url, "rows.txt")
    second.prepare(fingerprint(), resume=True)
    second.close()


def test_a_holder_killed_on_this_host_does_not_block(tmp_path: Path):
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(OutputFolderInUseError, match=f"pid {child.pid}, flow run run-in"):
            OutputFolder(str(tmp_path), None).claim()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    folder = OutputFolder(str(tmp_path), None)
    folder.claim("next")
    lock = json.loads((tmp_path / ".parallel_run" / "writer.lock").read_text())
    assert (lock["pid"], lock["run_id"]) == (os.getpid(), "next")
    folder.close()
    assert not (tmp_path / ".parallel_run" / "writer.lock").exists()


def test_a_pid_now_used_by_another_process_is_not_the_holder(tmp_path: Path):
    write_lock(tmp_path, pid=os.getpid(), process_started=1.0)
    folder = OutputFolder(str(tmp_path), None)
    folder.claim()
    folder.close()


def test_a_holder_on_another_host_blocks_until_its_heartbeat_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PREFECT_PARALLELRUN_WRITER_STALE_AFTER_SECONDS", "60")
    write_lock(tmp_path, host="other-host", pid=1, run_id="remote-run")
    with pytest.raises(OutputFolderInUseError, match="host other-host, pid 1, flow run remote"):
        OutputFolder(str(tmp_path), None).claim()
    stale = time.time() - 61
    write_lock(tmp_path, host="other-host", pid=1, heartbeat=stale)
    folder = OutputFolder(str(tmp_path), None)
    folder.claim()
    folder.close()


def test_the_heartbeat_keeps_the_lock_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PREFECT_PARALLELRUN_WRITER_HEARTBEAT_SECONDS", "0.05")
    folder = OutputFolder(str(tmp_path), None)
    folder.claim()
    lock = tmp_path / ".parallel_run" / "writer.lock"
    first = json.loads(lock.read_text())["heartbeat"]
    deadline = time.monotonic() + 10
    while json.loads(lock.read_text())["heartbeat"] == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(lock.read_text())["heartbeat"] > first
    folder.close()
    assert not lock.exists()


def test_starting_over_keeps_the_lock(output_url: str):
    folder = OutputFolder(output_url, "rows.txt")
    folder.prepare(fingerprint(), resume=True)
    commit(folder, 0)
    assert folder.prepare(fingerprint(mini_batch_size="2"), resume=False) == {}
    with pytest.raises(OutputFolderInUseError):
        OutputFolder(output_url, "rows.txt").claim()
    folder.close()


def test_a_changed_code_resumes_and_warns_how_many_mini_batches_keep_earlier_rows(
    output_url: str,
):
    folder = OutputFolder(output_url, "rows.txt")
    folder.prepare(fingerprint("v1"), resume=True)
    assert folder.resume_warning is None
    commit(folder, 0)
    commit(folder, 1)
    folder.close()
    fixed = OutputFolder(output_url, "rows.txt")
    assert set(fixed.prepare(fingerprint("v2"), resume=True)) == {"000000-id", "000001-id"}
    assert fixed.resume_warning.startswith(
        "Resuming with a different entry script, source_directory, arguments or environment "
        "(changed since the last run: script): 2 committed mini-batches keep their rows from an "
        "earlier version"
    )
    assert "resume=False" in fixed.resume_warning
    fixed.close()


def test_the_warning_counts_only_mini_batches_committed_under_earlier_code(tmp_path: Path):
    folder = OutputFolder(str(tmp_path), None)
    folder.prepare(fingerprint("v1"), resume=True)
    commit(folder, 0)
    folder.prepare(fingerprint("v2"), resume=True)
    commit(folder, 1)
    folder.prepare(fingerprint("v2"), resume=True)
    assert folder.resume_warning == (
        "Resuming with a different entry script, source_directory, arguments or environment: "
        "1 committed mini-batch keeps its counts from an earlier version and will not run "
        "again. Run with resume=False (command line: --no-resume) to recompute them."
    )
    folder.prepare(fingerprint("v2"), resume=False)
    assert folder.resume_warning is None
    folder.close()


def test_a_change_that_would_misalign_the_output_is_still_refused(tmp_path: Path):
    folder = OutputFolder(str(tmp_path), "rows.txt")
    folder.prepare(fingerprint("v1"), resume=True)
    with pytest.raises(ResumeRefusedError, match=r"changed: mini_batch_size\)"):
        folder.prepare(fingerprint("v2", mini_batch_size="2"), resume=True)
    folder.close()
