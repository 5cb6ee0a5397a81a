"""Orchestration benchmark (issue 8): plan time of the paper study; `skingen run` on an already finished
smoke study (target: 0 cells run, <= 10 s); optionally the demo's wall time (--demo; target <= 15 min).

Usage: python benchmarks/bench_grid.py [--demo]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skingen.grid.plan import plan_study
from skingen.grid.run import run_study
from skingen.grid.spec import load_study

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", action="store_true", help="also time the whole demo study (minutes)")
    args = parser.parse_args()
    start = time.perf_counter()
    for _ in range(10):
        cells = plan_study(load_study(REPO / "jobs" / "paper.toml"))
    print(f"plan paper study: {len(cells)} cells in {(time.perf_counter() - start) / 10 * 1000:.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "smoke"
        run_study(REPO / "jobs" / "smoke.toml", executor="debug", out=out)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "skingen.cli", "run", str(REPO / "jobs" / "smoke.toml"),
                               "--out", str(out)], capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - start
        ran = proc.stdout.count("cell(s) to run")
        print(f"skingen run on the finished smoke study: {seconds:.1f} s, stages with cells to run: {ran} "
              f"(target 0 and <= 10 s), exit {proc.returncode}")
        if args.demo:
            start = time.perf_counter()
            run_study(REPO / "jobs" / "demo.toml", executor="local", out=Path(tmp) / "demo")
            print(f"demo study wall time: {(time.perf_counter() - start) / 60:.1f} min (target <= 15 min)")


if __name__ == "__main__":
    main()
