"""Entry-script processes on a real GPU: one device each, and a hung one killed and replaced.

Skipped where no GPU is visible. It needs neither Dask nor Prefect: it drives the process
slots directly, as a worker would.
"""

from __future__ import annotations

import json
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from prefect_parallelrun.execute.hardware import visible_gpus
from prefect_parallelrun.execute.process_slot import ProcessSlot
from prefect_parallelrun.execute.process_spec import ProcessSpec
from prefect_parallelrun.execute.results import AttemptResult

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from stand_in_batches import StandInMiniBatch  # noqa: E402

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not visible_gpus(), reason="no GPU is visible")


def facts(result: AttemptResult) -> dict:
    assert result.status == "succeeded", result.error
    return json.loads(result.log_records[-1][1])


def test_gpu_processes_get_their_own_device_and_a_hung_one_is_replaced(tmp_path: Path) -> None:
    spec = ProcessSpec(
        job_id=f"gpu-{uuid.uuid4().hex[:8]}",
        entry_script="gpu_probe.py",
        source_directory=str(SCRIPTS),
        logs_dir=str(tmp_path / "logs"),
        output_action="summary_only",
        run_invocation_timeout=20.0,
        mini_batch_reader="stand_in_batches:open_stand_in",
    )
    gpus = visible_gpus()
    slots = [
        ProcessSlot(spec, "gpu-node", f"process{i:03d}", str(tmp_path), gpus[i % len(gpus)])
        for i in range(2)
    ]
    items = iter(range(1000))

    def mini_batch(*texts: str) -> StandInMiniBatch:
        paths = []
        for text in texts:
            path = tmp_path / f"item{next(items)}.txt"
            path.write_text(text)
            paths.append(str(path))
        return StandInMiniBatch(len(paths), uuid.uuid4().hex[:8], tuple(paths))

    try:
        with ThreadPoolExecutor(2) as pool:
            first = list(pool.map(lambda slot: facts(slot.run(mini_batch("facts"), 1)), slots))
        for index, seen in enumerate(first):
            assert seen["cuda_visible_devices"] == gpus[index % len(gpus)]
            assert seen["device_count"] == 1 and seen["allocated"] >= 256 * 2**20
            assert seen["sum"] == 64 * 1024 * 1024

        hung = slots[0].run(mini_batch("sleep 600"), 1)
        assert hung.status == "timeout"
        assert not psutil.pid_exists(first[0]["pid"])

        again = facts(slots[0].run(mini_batch("facts"), 2))
        assert again["pid"] != first[0]["pid"] and again["allocated"] >= 256 * 2**20
        print(json.dumps({"first": first, "after_timeout": again}))
    finally:
        for slot in slots:
            slot.kill()
    assert all(slot.pid is None for slot in slots)
