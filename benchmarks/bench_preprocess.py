"""Preprocessing benchmark at 600x450 (HAM10000 size), side by side in one process:
plain DullRazor alone vs the full advanced pipeline on 1 worker, and the full pipeline on 1 vs 2 workers.

Targets (issue 3): advanced >= 0.5x DullRazor alone; 2 workers >= 1.8x one.
Usage: python benchmarks/bench_preprocess.py [--n 80]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2

from skingen.data.images import load_rgb
from skingen.data.phantom import make_phantom
from skingen.parallel import process_pool
from skingen.preprocess import get_pipeline
from skingen.preprocess.steps import dullrazor


def _advanced(path: str) -> None:
    get_pipeline("advanced")(load_rgb(path), 256)


def _dullrazor(path: str) -> None:
    dullrazor(load_rgb(path))


def rate(fn, paths: list[str], workers: int) -> float:
    """Images per second of ``fn`` over ``paths`` (decode included) with ``workers`` processes."""
    if workers == 1:
        start = time.perf_counter()
        for p in paths:
            fn(p)
        return len(paths) / (time.perf_counter() - start)
    with process_pool(workers) as pool:
        list(pool.map(fn, paths[:workers]))  # start-up outside the timing
        start = time.perf_counter()
        list(pool.map(fn, paths, chunksize=4))
        return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=80)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_phantom(Path(tmp) / "p", args.n, size=450, seed=0, workers=2)
        paths = sorted(str(p) for p in (root / "images").glob("*.jpg"))
        assert load_rgb(paths[0]).shape == (450, 600, 3)
        r_dull = rate(_dullrazor, paths, 1)
        r_adv1 = rate(_advanced, paths, 1)
        r_adv2 = rate(_advanced, paths, 2)
    print(f"dullrazor alone, 1 worker: {r_dull:7.1f} images/s (600x450)")
    print(f"advanced full,   1 worker: {r_adv1:7.1f} images/s")
    print(f"advanced full,  2 workers: {r_adv2:7.1f} images/s")
    print(f"ratio advanced/dullrazor: {r_adv1 / r_dull:.2f}x (target >= 0.5x); "
          f"2 workers / 1: {r_adv2 / r_adv1:.2f}x (target >= 1.8x)")


if __name__ == "__main__":
    main()
