"""Runs the speed benchmarks and regenerates the report (`make bench`).

Each benchmark runs in its own process, exactly as when run alone.

    python -m benchmarks
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
STEPS = (
    "step_time",
    "inference",
    "optimizer",
    "crf",
    "generators",
    "distillation_speed",
    "memory",
    "report",
)


def main():
    for name in STEPS:
        print(f"== python -m benchmarks.{name}", flush=True)
        subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}"], cwd=ROOT, check=True
        )


if __name__ == "__main__":
    main()
