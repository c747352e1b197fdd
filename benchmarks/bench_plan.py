"""Benchmark of the plan stage: planning many small files, and splitting and reading big CSVs.

    python benchmarks/bench_plan.py            # 100,000 files; 200 MB and 2 GB CSVs
    python benchmarks/bench_plan.py --quick    # 10,000 files; 20 MB and 200 MB CSVs

Every measured step runs in its own child process, and the parent reads that child's peak RSS
(`ru_maxrss`) from `os.wait4`. The parent never imports the package, pandas or pyarrow: a
child's `ru_maxrss` starts at its parent's RSS when it is forked, so a heavy parent would hide
the children's real figures. Generated data is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MINI_BATCH_SIZE = "8 MB"
MINI_BATCH_BYTES = 8 * 1024 * 1024
TIMING_ROUNDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a fast check")
    parser.add_argument("--workdir", default=None, help="where to generate data (default: tmp)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(*args.child)
        return
    file_count = 10_000 if args.quick else 100_000
    csv_sizes = [20 * 1024**2, 200 * 1024**2] if args.quick else [200 * 1024**2, 2 * 1024**3]
    workdir = Path(tempfile.mkdtemp(prefix="bench-plan-", dir=args.workdir))
    try:
        bench_small_files(workdir / "files", file_count)
        bench_csv(workdir, csv_sizes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def bench_small_files(folder: Path, file_count: int) -> None:
    make_small_files(folder, file_count)
    report, _ = measure_child("files", str(folder))
    listing, planning = report["listing"], report["plan"]
    print(
        f"\n## Planning {file_count:,} small files (10 per mini-batch, best of {TIMING_ROUNDS})\n"
    )
    print("| step | seconds |")
    print("|---|---|")
    print(f"| os.scandir walk, names only | {report['names_only']:.3f} |")
    print(f"| os.scandir walk with size and mtime (a listing) | {listing:.3f} |")
    print(f"| two such listings | {2 * listing:.3f} |")
    print(f"| plan_job ({report['mini_batches']:,} mini-batches) | {planning:.3f} |")
    print(f"\nplan_job / two listings = {planning / (2 * listing):.2f}")


def make_small_files(folder: Path, file_count: int) -> None:
    per_folder = 1000
    for number in range(file_count):
        if number % per_folder == 0:
            current = folder / f"part-{number // per_folder:04d}"
            current.mkdir(parents=True)
        (current / f"img-{number:07d}.png").write_bytes(b"x")


def scandir_listing(folder: str) -> list[tuple[str, int, int]]:
    files, pending = [], [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    status = entry.stat()
                    if stat.S_ISREG(status.st_mode):
                        files.append((entry.path, status.st_size, status.st_mtime_ns))
    return files


def scandir_names(folder: str) -> list[str]:
    files, pending = [], [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                (pending if entry.is_dir(follow_symlinks=False) else files).append(entry.path)
    return files


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def bench_csv(workdir: Path, sizes: list[int]) -> None:
    imports_mb = measure_child("imports")[1]
    rows = []
    for size in sizes:
        path = workdir / f"data-{size // 1024**2}MB.csv"
        written_rows = make_csv(path, size)
        plan_path = workdir / "plan.pickle"
        plan_report, plan_mb = measure_child("plan", str(path), str(plan_path))
        read_report, read_mb = measure_child("read", str(plan_path))
        if read_report["rows"] != written_rows:
            raise SystemExit(f"read {read_report['rows']} rows of {path}, wrote {written_rows}")
        rows.append((size, written_rows, plan_report, plan_mb, read_report, read_mb))
        path.unlink()
    print(f"\n## Splitting and reading a CSV in {MINI_BATCH_SIZE} mini-batches\n")
    print(
        f"Peak RSS (ru_maxrss of a child process). A child that only imports the libraries "
        f"peaks at {imports_mb:.0f} MB.\n"
    )
    print(
        "| input | rows | mini-batches | plan s | plan peak MB | read s | read peak MB "
        "| read peak - imports, in mini-batch sizes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size, written_rows, plan_report, plan_mb, read_report, read_mb in rows:
        ratio = (read_mb - imports_mb) * 1024**2 / MINI_BATCH_BYTES
        print(
            f"| {human(size)} | {written_rows:,} | {plan_report['mini_batches']} "
            f"| {plan_report['seconds']:.1f} | {plan_mb:.0f} | {read_report['seconds']:.1f} "
            f"| {read_mb:.0f} | {ratio:.1f}x |"
        )


def make_csv(path: Path, size: int) -> int:
    """Write about `size` bytes of CSV with quoted commas, quotes and newlines; return rows."""
    rows = [
        f'{row},user-{row % 977},"comment {row}, with ""quotes""\nand a second line",{row * 0.25}\n'
        if row % 7 == 0
        else f"{row},user-{row % 977},plain comment {row},{row * 0.25}\n"
        for row in range(20_000)
    ]
    block = "".join(rows).encode()
    repeats = max(1, size // len(block))
    with path.open("wb") as stream:
        stream.write(b"id,user,comment,score\n")
        for _ in range(repeats):
            stream.write(block)
    return repeats * len(rows)


def human(size: int) -> str:
    return f"{size / 1024**3:.0f} GB" if size >= 1024**3 else f"{size / 1024**2:.0f} MB"


def measure_child(*child_args: str) -> tuple[dict, float]:
    """Run one step in a fresh Python process; return its JSON report and peak RSS in MB."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", *child_args],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"benchmark child {child_args} failed with status {child.returncode}")
    return json.loads(output), usage.ru_maxrss / 1024


def run_child(step: str, *paths: str) -> None:
    sys.path.insert(0, os.getcwd())
    import pandas  # noqa: F401 - the import baseline includes what a reader imports

    from prefect_parallelrun.plan import FileDataset, TabularDataset, open_mini_batch, plan_job

    started = time.perf_counter()
    report: dict = {}
    if step == "files":
        folder = paths[0]
        dataset = FileDataset.from_files(folder)
        report["mini_batches"] = len(plan_job([dataset], 10, None).mini_batches)
        # Rounds interleave the three, so that a busy machine slows all of them alike.
        timings: dict[str, list[float]] = {"names_only": [], "listing": [], "plan": []}
        for _ in range(TIMING_ROUNDS):
            timings["names_only"].append(timed(lambda: scandir_names(folder)))
            timings["listing"].append(timed(lambda: scandir_listing(folder)))
            timings["plan"].append(timed(lambda: plan_job([dataset], 10, None)))
        report.update({name: min(values) for name, values in timings.items()})
    elif step == "plan":
        csv_path, plan_path = paths
        plan = plan_job([TabularDataset.from_delimited_files(csv_path)], MINI_BATCH_SIZE, None)
        Path(plan_path).write_bytes(pickle.dumps(plan))
        report["mini_batches"] = len(plan.mini_batches)
    elif step == "read":
        plan = pickle.loads(Path(paths[0]).read_bytes())
        rows = 0
        with tempfile.TemporaryDirectory() as scratch:
            for mini_batch in plan.mini_batches:
                with open_mini_batch(mini_batch, scratch) as frame:
                    rows += len(frame)
                del frame  # as a worker does: one mini-batch in memory at a time
        report["rows"] = rows
    report["seconds"] = time.perf_counter() - started
    print(json.dumps(report))


if __name__ == "__main__":
    main()
