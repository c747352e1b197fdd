"""Bad inputs: a mini-batch whose files cannot be read fails with all its items, and an input
that cannot be planned is refused before any flow run starts (step, flow and command line)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.settings import PREFECT_API_URL

from prefect_parallelrun import FileDataset, TabularDataset
from tests.jobs import JobBench

pytestmark = pytest.mark.usefixtures("prefect_server")

VANISHING_INPUTS_SCRIPT = '''\
"""init() deletes every input file: each mini-batch's files vanish after planning."""
from pathlib import Path

INPUTS = Path({inputs!r})


def init():
    for path in sorted(INPUTS.glob("*")):
        path.unlink(missing_ok=True)


def run(mini_batch):
    return [f"{{Path(path).name}} ok" for path in mini_batch]
'''


def vanishing_inputs_config(bench: JobBench, **overrides: object):
    """A config whose entry script deletes the inputs before any mini-batch is read."""
    scripts = bench.root / "scripts"
    scripts.mkdir()
    (scripts / "vanish.py").write_text(VANISHING_INPUTS_SCRIPT.format(inputs=str(bench.inputs)))
    return bench.config(source_directory=str(scripts), entry_script="vanish.py", **overrides)


def flow_runs_named(name: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )


def test_mini_batches_whose_files_vanished_fail_with_all_their_items(bench: JobBench):
    bench.items(["ok"] * 4)
    result = bench.step(vanishing_inputs_config(bench, run_max_try=2)).run()

    assert result.status == "Failed"
    assert result.failed_mini_batches == 4
    assert result.failed_items == 4
    assert result.total_items == 4
    assert result.message.startswith("No item succeeded (out of 4 failed items in 4 ")
    failed_lines = (bench.output / "logs" / "failed_items.txt").read_text().split()
    assert sorted(Path(line).name for line in failed_lines) == [
        f"item-{number:03d}.txt" for number in range(4)
    ]
    for row in bench.attempt_rows():
        assert (row["status"], row["items"], row["failed"]) == ("failed", "1", "1"), row
        assert "cannot read" in row["error"]


def test_an_unreadable_mini_batch_counts_its_items_when_the_job_aborts(bench: JobBench):
    bench.items(["ok"] * 4)
    config = vanishing_inputs_config(bench, run_max_try=3, allowed_failed_count=0)
    result = bench.step(config).run()

    assert result.status == "Failed"
    assert "allowed_failed_count crossed" in result.message
    assert result.failed_mini_batches >= 1
    assert result.failed_items == result.failed_mini_batches


def write_broken_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": list(range(10))}), path)
    path.write_bytes(path.read_bytes()[:-20])  # the footer is cut: no reader can open it


def test_a_path_matching_nothing_is_refused_before_any_flow_run(bench: JobBench):
    name = f"nowhere-{uuid.uuid4().hex[:8]}"
    step = bench.step(
        bench.config(), name=name, inputs=[FileDataset.from_files(str(bench.root / "nowhere"))]
    )
    with pytest.raises(ValueError, match="nowhere.*matches no file or folder") as raised:
        step.run()
    assert type(raised.value).__name__ == "InputNotFoundError"
    assert flow_runs_named(name) == []


def test_a_file_outside_the_partition_format_is_refused_before_any_flow_run(bench: JobBench):
    (bench.inputs / "alice").mkdir()
    (bench.inputs / "alice" / "a.png").write_text("ok")
    (bench.inputs / "loose.txt").write_text("ok")
    name = f"partitions-{uuid.uuid4().hex[:8]}"
    dataset = FileDataset.from_files(str(bench.inputs), partition_format="{user}/*.png")
    config = bench.config(mini_batch_size=None, partition_keys=["user"])
    with pytest.raises(ValueError, match="loose.txt") as raised:
        bench.step(config, name=name, inputs=[dataset]).run()
    assert type(raised.value).__name__ == "PartitionFormatError"
    assert flow_runs_named(name) == []


def test_a_corrupt_table_is_refused_before_any_flow_run(bench: JobBench):
    write_broken_parquet(bench.inputs / "broken.parquet")
    name = f"corrupt-{uuid.uuid4().hex[:8]}"
    dataset = TabularDataset.from_parquet_files(str(bench.inputs))
    with pytest.raises(ValueError, match="broken.parquet") as raised:
        bench.step(bench.config(mini_batch_size="1MB"), name=name, inputs=[dataset]).run()
    assert type(raised.value).__name__ == "CorruptInputError"
    assert flow_runs_named(name) == []


def test_the_step_plans_its_inputs_once(bench: JobBench, monkeypatch: pytest.MonkeyPatch):
    from prefect_parallelrun.dispatch import job_plan

    plans: list[int] = []
    real_plan_job = job_plan.plan_job

    def counted_plan_job(*arguments, **options):
        plan = real_plan_job(*arguments, **options)
        plans.append(len(plan.mini_batches))
        return plan

    monkeypatch.setattr(job_plan, "plan_job", counted_plan_job)
    bench.items(["ok", "ok", "ok"])
    result = bench.run()
    assert result.succeeded, result.message
    assert bench.rows() == [f"item-{number:03d}.txt ok" for number in range(3)]
    assert plans == [3]


def test_the_flow_on_its_own_fails_with_one_line_naming_the_input(
    bench: JobBench, caplog: pytest.LogCaptureFixture
):
    from prefect_parallelrun import parallel_run
    from prefect_parallelrun.step import result_of

    missing = str(bench.root / "nowhere")
    state = parallel_run(
        config=bench.config(), inputs=[FileDataset.from_files(missing)],
        output=str(bench.output), name="flow-alone", return_state=True,
    )
    assert state.is_failed() and state.name == "InvalidInputs"
    assert missing in state.message and "fix the path" in state.message
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert [record.getMessage() for record in errors] == [state.message]
    assert all(record.exc_info is None for record in caplog.records)
    with pytest.raises(ValueError, match="matches no file or folder"):
        result_of(state)


def test_the_command_line_refuses_a_missing_input_with_one_error_line(bench: JobBench):
    from tests.test_dispatch_cli import write_config

    name = f"cli-nowhere-{uuid.uuid4().hex[:8]}"
    missing = bench.root / "nowhere"
    completed = subprocess.run(
        [sys.executable, "-m", "prefect_parallelrun.cli", "run",
         str(write_config(bench.root / "config.yml")), "--input", str(missing),
         "--output", str(bench.output), "--name", name],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
    )
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), completed.stderr
    assert str(missing) in lines[0] and "fix the path" in lines[0]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert flow_runs_named(name) == []
