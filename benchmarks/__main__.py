"""`python -m benchmarks [--quick]` (`make bench`, `make bench-quick`): every benchmark, in turn.

Each prints its tables; docs/benchmarks.md and docs/inputs.md hold the published ones.
"""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("bench_dispatch.py", "bench_plan.py")


def main() -> int:
    options = sys.argv[1:]
    folder = Path(__file__).resolve().parent
    for name in BENCHMARKS:
        print(f"\n## {name} {' '.join(options)}\n", flush=True)
        done = subprocess.run([sys.executable, str(folder / name), *options], check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
