"""Helpers for tests that run whole jobs: inputs from item texts, a config, the calls made."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from prefect_parallelrun import FileDataset, ParallelRunConfig, ParallelRunStep
from prefect_parallelrun.report import ParallelRunResult

SCRIPTS = Path(__file__).parent / "scripts"


class JobBench:
    """A folder for one test's job: inputs, output, call log and retry counters."""

    def __init__(self, root: Path, monkeypatch: Any) -> None:
        self.root = root
        self.inputs = root / "inputs"
        self.output = root / "output"
        self.calls_file = root / "calls.txt"
        counters = root / "counters"
        counters.mkdir(parents=True)
        self.inputs.mkdir()
        monkeypatch.setenv("CALLS_FILE", str(self.calls_file))
        monkeypatch.setenv("COUNTER_DIR", str(counters))

    def items(self, texts: list[str]) -> None:
        for number, text in enumerate(texts):
            (self.inputs / f"item-{number:03d}.txt").write_text(text)

    def config(self, **overrides: Any) -> ParallelRunConfig:
        fields: dict[str, Any] = dict(
            source_directory=str(SCRIPTS),
            entry_script="job_behaviours.py",
            mini_batch_size="1",
            error_threshold=-1,
            output_action="append_row",
            compute_target="local",
            node_count=1,
            process_count_per_node=2,
            run_invocation_timeout=30,
            run_max_try=3,
        )
        return ParallelRunConfig(**{**fields, **overrides})

    def step(self, config: ParallelRunConfig, **overrides: Any) -> ParallelRunStep:
        arguments: dict[str, Any] = dict(
            name="test-job",
            parallel_run_config=config,
            inputs=[FileDataset.from_files(str(self.inputs))],
            output=str(self.output),
            allow_reuse=False,
        )
        return ParallelRunStep(**{**arguments, **overrides})

    def run(self, resume: bool = True, **config_overrides: Any) -> ParallelRunResult:
        return self.step(self.config(**config_overrides)).run(resume=resume)

    def rows(self) -> list[str]:
        return (self.output / "parallel_run_step.txt").read_text().splitlines()

    def calls(self) -> Counter[str]:
        """How many run() calls each item was part of."""
        if not self.calls_file.exists():
            return Counter()
        return Counter(
            name for line in self.calls_file.read_text().splitlines() for name in line.split()
        )

    def attempt_rows(self) -> list[dict[str, str]]:
        import csv

        report = self.output / "logs" / "sys" / "job_report" / "processed_mini-batches.csv"
        with report.open() as file:
            return list(csv.DictReader(file))


def process_tree_pids() -> set[int]:
    """Our descendant processes, less multiprocessing's resource tracker: Python starts that
    once per interpreter (LocalCluster's first spawn does) and it lives until exit."""
    import psutil

    pids = set()
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return pids
