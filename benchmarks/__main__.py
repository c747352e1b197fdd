"""`python -m benchmarks [--quick | --tiny] [--write-docs]` (`make bench`, `make bench-quick`):
every benchmark, in turn.

Each prints its tables; docs/benchmarks.md and docs/inputs.md hold the published ones. The
benchmarks against the alternatives (bench_peers, bench_scaling, bench_tabular,
bench_startup) take every option and, with --write-docs, write their tables and plots into
the docs; bench_dispatch and bench_plan take --quick only, and --tiny leaves them out. A
benchmark that fails does not stop the others; the exit status says that one did.
"""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("bench_dispatch.py", "bench_plan.py")
# (script, its own arguments): bench_peers runs twice, the second time for workload 2's table.
AGAINST_THE_ALTERNATIVES = (("bench_peers.py", []), ("bench_peers.py", ["--rows", "W2"]),
                            ("bench_scaling.py", []), ("bench_tabular.py", []),
                            ("bench_startup.py", []))


def main() -> int:
    options = sys.argv[1:]
    folder = Path(__file__).resolve().parent
    runs = [(name, [option for option in options if option == "--quick"])
            for name in BENCHMARKS if "--tiny" not in options]
    runs += [(name, [*options, *own]) for name, own in AGAINST_THE_ALTERNATIVES]
    failed = []
    for name, passed in runs:
        print(f"\n## {name} {' '.join(passed)}\n", flush=True)
        done = subprocess.run([sys.executable, str(folder / name), *passed], check=False)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nFailed: {', '.join(failed)} (its output above says why).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
