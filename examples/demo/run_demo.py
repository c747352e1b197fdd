"""The demo job: 200 generated text files, scored in mini-batches of 10 on a local Dask cluster.

Runs on the embedded defaults: Prefect's ephemeral API (SQLite) and a Dask LocalCluster.
    make demo            (or: .venv/bin/python examples/demo/run_demo.py)
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

# The first start of Prefect's ephemeral API creates its database, which can take a while on a
# small machine; and this machine may be offline, so no usage telemetry.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = Path.cwd() / "demo-output"


def make_inputs(folder: Path, count: int = 200) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    generator = random.Random(7)
    for number in range(count):
        text = " ".join(generator.choice(words) for _ in range(generator.randint(1, 50)))
        (folder / f"doc-{number:04d}.txt").write_text(text, encoding="utf-8")


def main() -> int:
    make_inputs(WORK / "inputs")
    config = ParallelRunConfig(
        source_directory=str(HERE),
        entry_script="score.py",
        mini_batch_size="10",
        error_threshold=10,
        output_action="append_row",
        environment=None,
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        run_invocation_timeout=60,
    )
    step = ParallelRunStep(
        name="demo-word-count",
        parallel_run_config=config,
        inputs=[FileDataset.from_files(str(WORK / "inputs")).as_named_input("documents")],
        output=str(WORK / "output"),
        arguments=["--multiplier", "2"],
        allow_reuse=False,
    )
    result = step.run(resume=False)
    print()
    print(f"status:       {result.status}")
    print(f"message:      {result.message}")
    print(f"mini-batches: {result.succeeded_mini_batches}/{result.total_mini_batches} succeeded")
    print(f"items:        {result.succeeded_items}/{result.total_items} succeeded")
    print(f"output file:  {result.output_file}")
    print(f"logs:         {result.logs_dir}")
    if result.output_file:
        lines = Path(result.output_file).read_text(encoding="utf-8").splitlines()
        print("first rows:   " + " | ".join(lines[:3]))
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
