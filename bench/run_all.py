"""Run every benchmark in turn (`make bench`). Each prints its own numbers; see docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHES = [
    ["-m", "bench.notify_bench", "10"],
    ["-m", "bench.apns_bench", "10"],
    ["bench/fcm_bench.py", "--duration", "10"],
    ["bench/timinfo_bench.py"],
]


def main() -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    failed = 0
    for args in BENCHES:
        print(f"\n=== {' '.join(args)}", flush=True)
        failed |= subprocess.run([sys.executable, *args], cwd=REPO, env=env).returncode
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
