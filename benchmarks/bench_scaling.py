"""Scaling: the same job at more processes, speed-up and efficiency.

    digits   the image scoring example's entry script (examples/image_scoring/score.py: PNG
             files read with Pillow, a scikit-learn SVC predicting each digit) over 20,000
             images, 25 per mini-batch, at 1 and 2 processes
    sleep    2,000 mini-batches of 200 ms asleep (as for a GPU or a remote service, the
             cores stay free), one file each, at 1, 8 and 32 processes

Each job runs in a fresh process, with the embedded API server and a local cluster started
before the clock, and is timed from the call to its end (fixed costs included, as a user gets
them). Speed-up at n processes = time at 1 / time at n, pair by pair within each run;
efficiency = speed-up / n; the table shows the medians over the runs, and the plot speed-up
against processes.

    .venv/bin/python benchmarks/bench_scaling.py [--quick | --tiny] [--write-docs]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import common

EXAMPLE = common.ROOT / "examples" / "image_scoring"
DIGITS_TARGET = {2: 1.8}  # speed-up
SLEEP_TARGET = {32: 0.9}  # efficiency


def write_images(folder: Path, count: int) -> None:
    """`count` PNG files cycling through the digits the example's classifier was not trained
    on, written as the example writes them."""
    sys.path.insert(0, str(EXAMPLE))
    import numpy as np
    from PIL import Image
    from prepare_data import PIXEL_SCALE
    from sklearn.datasets import load_digits

    digits = load_digits()
    held_out = digits.images[: len(digits.images) // 2]
    folder.mkdir(parents=True)
    for number in range(count):
        grey = np.rint(held_out[number % len(held_out)] * PIXEL_SCALE).astype(np.uint8)
        Image.fromarray(grey, mode="L").save(folder / f"digit-{number:05d}.png")


def write_model(model_file: Path) -> None:
    sys.path.insert(0, str(EXAMPLE))
    from prepare_data import train_model

    train_model(model_file)


def write_files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for number in range(count):
        (folder / f"{number:06d}").write_text(str(number))


def digits_spec(images: Path, model: Path, output: Path, processes: int) -> dict:
    return {
        "config": {"source_directory": str(EXAMPLE), "entry_script": "score.py",
                   "mini_batch_size": "25", "error_threshold": 10,
                   "output_action": "append_row", "run_invocation_timeout": 60},
        "inputs": {"files": str(images)}, "arguments": ["--model", str(model)],
        "output": str(output), "processes": processes,
    }


def sleep_spec(inputs: Path, seconds: float, output: Path, processes: int) -> dict:
    return {
        "config": {"source_directory": str(common.SCRIPTS), "entry_script": "busy.py",
                   "mini_batch_size": "1", "error_threshold": -1,
                   "output_action": "append_row", "run_invocation_timeout": 600,
                   "environment_variables": {"BUSY_SECONDS": str(seconds),
                                             "BUSY_KIND": "sleep"}},
        "inputs": {"files": str(inputs)}, "output": str(output), "processes": processes,
    }


def time_job(spec: dict, expected_items: int) -> float:
    report = common.run_child(__file__, [json.dumps(spec)]).report
    if report["items"] != expected_items:
        raise RuntimeError(f"the job scored {report['items']} items of {expected_items}")
    return report["seconds"]


def scale(name: str, make_spec: object, processes: list[int], items: int, runs: int,
          folder: Path) -> dict[int, list[float]]:
    """Seconds at each process count, run after run (the process counts alternate)."""
    seconds: dict[int, list[float]] = {count: [] for count in processes}
    for run in range(runs):
        for count in processes:
            output = folder / f"{name}-output-{run}-{count}"
            seconds[count].append(time_job(make_spec(output, count), items))
            print(f"{name}: {count} processes, run {run + 1}: {seconds[count][-1]:.1f} s",
                  flush=True)
    return seconds


def summary(seconds: dict[int, list[float]]) -> list[dict]:
    """Median time, speed-up and efficiency per process count, ratios run by run."""
    base = seconds[min(seconds)]
    lines = []
    for count, times in seconds.items():
        speedups = [one / many for one, many in zip(base, times, strict=True)]
        lines.append({"processes": count, "seconds": common.median(times),
                      "speedup": common.median(speedups),
                      "efficiency": common.median(speedups) / count})
    return lines


def table(results: dict[str, tuple[str, list[dict]]], mode: common.Mode) -> str:
    text = [common.header(mode, "Scaling (`benchmarks/bench_scaling.py`)"),
            "| workload | processes | seconds | speed-up | efficiency | target |",
            "|---|---|---|---|---|---|"]
    for name, (work, lines) in results.items():
        for line in lines:
            count = line["processes"]
            cell = "—"
            if name == "digits" and count in DIGITS_TARGET:
                cell = common.target_cell(line["speedup"] >= DIGITS_TARGET[count],
                                          f"speed-up >= {DIGITS_TARGET[count]}")
            if name == "sleep" and count in SLEEP_TARGET:
                cell = common.target_cell(line["efficiency"] >= SLEEP_TARGET[count],
                                          f"efficiency >= {SLEEP_TARGET[count]}")
            text.append(f"| {work} | {count} | {line['seconds']:.1f} s | "
                        f"{line['speedup']:.2f} | {line['efficiency']:.2f} | {cell} |")
    return "\n".join(text) + "\n"


def plot(results: dict[str, tuple[str, list[dict]]], mode: common.Mode,
         write_docs: bool) -> None:
    def draw(axes: object) -> None:
        largest = max(line["processes"] for _, lines in results.values() for line in lines)
        axes.plot([1, largest], [1, largest], color="grey", linestyle="--", label="ideal")
        for work, lines in results.values():
            axes.plot([line["processes"] for line in lines],
                      [line["speedup"] for line in lines], marker="o", label=work)
        axes.set_xscale("log", base=2)
        axes.set_yscale("log", base=2)
        counts = sorted({line["processes"] for _, lines in results.values() for line in lines})
        axes.set_xticks(counts, [str(count) for count in counts])
        axes.set_yticks(counts, [str(count) for count in counts])
        axes.minorticks_off()
        axes.set_xlabel("processes")
        axes.set_ylabel("speed-up over 1 process")
        axes.set_title("Speed-up against processes" + common.mode_caption(mode))
        axes.legend(fontsize=8)

    common.save_plot("scaling", draw, write_docs)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0])
    options = parser.parse_args()
    if options.child:
        common.child_report(common.timed_job(json.loads(options.child[0])))
        return
    mode = common.mode_of(options)
    images = int(mode.pick(20_000, 2_000, 100))
    sleeps = int(mode.pick(2_000, 160, 32))
    sleep_seconds = float(mode.pick(0.2, 0.2, 0.05))
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_images(folder / "images", images)
        write_model(folder / "model.pkl")
        write_files(folder / "sleep-inputs", sleeps)

        def digits(output: Path, count: int) -> dict:
            return digits_spec(folder / "images", folder / "model.pkl", output, count)

        def sleep(output: Path, count: int) -> dict:
            return sleep_spec(folder / "sleep-inputs", sleep_seconds, output, count)

        results = {
            "digits": (f"digits, {images:,} images, 25 per mini-batch",
                       summary(scale("digits", digits, [1, 2], images, mode.runs, folder))),
            "sleep": (f"sleep, {sleeps:,} x {sleep_seconds * 1000:g} ms",
                      summary(scale("sleep", sleep, [1, 8, 32], sleeps, mode.runs, folder))),
        }
    common.publish("scaling", table(results, mode), options.write_docs)
    plot(results, mode, options.write_docs)


if __name__ == "__main__":
    main()
