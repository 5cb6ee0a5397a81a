"""Density/coverage, precision/recall and CMMD from cached features, ours beside the references (issue 27 item 5).

For each space's feature width (Inception 2,048, DINOv2 ViT-L/14 1,024, CLIP ViT-L/14@336 768), N = 5,000 real and
5,000 fake features: ours -- one ``Grams`` of the pair, ``precision_recall`` and ``density_coverage`` at k = 5 and
``cmmd`` (float64) -- against dgm-eval's ``compute_prdc`` (k = 5) plus the CMMD port's ``mmd`` (float64), timed
alternately in one process, best of ``--repeats``. Target: ours / references <= 1.0. The references are imported
unmodified from DGM_EVAL_PATH and CMMD_PYTORCH_PATH (see make_fidelity_fixtures.py).

Usage: DGM_EVAL_PATH=... CMMD_PYTORCH_PATH=... python benchmarks/bench_fidelity_reference.py [--n 5000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from make_fidelity_fixtures import load  # noqa: E402

from skingen.metrics.fidelity import cmmd, density_coverage  # noqa: E402
from skingen.metrics.generative import Grams, precision_recall  # noqa: E402

SPACES = {"inception": 2048, "dinov2_vitl14": 1024, "clip_vitl14_336": 768}


def ours(real: np.ndarray, fake: np.ndarray) -> dict:
    grams = Grams(real, fake, "cpu")
    p, r = precision_recall(grams, 5)
    d, c = density_coverage(grams, 5)
    return {"precision": p, "recall": r, "density": d, "coverage": c, "cmmd": cmmd(real, fake)}


def reference(prdc, distance, real: np.ndarray, fake: np.ndarray) -> dict:
    with contextlib.redirect_stderr(io.StringIO()):
        out = dict(prdc.compute_prdc(real, fake, nearest_k=5))
    out["cmmd"] = float(distance.mmd(real.astype(np.float64), fake.astype(np.float64)))
    return out


def best(fn, repeats: int) -> tuple[float, dict]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    prdc = load("DGM_EVAL_PATH", "dgm_eval/metrics/prdc.py")
    distance = load("CMMD_PYTORCH_PATH", "distance.py")
    for space, dim in SPACES.items():
        rng = np.random.default_rng(dim)
        real = rng.normal(size=(args.n, dim)).astype(np.float32)
        fake = (0.1 + rng.normal(size=(args.n, dim))).astype(np.float32)
        if space.startswith("clip"):
            real /= np.linalg.norm(real, axis=1, keepdims=True)
            fake /= np.linalg.norm(fake, axis=1, keepdims=True)
        t_ours, r_ours = best(lambda: ours(real, fake), args.repeats)
        t_ref, r_ref = best(lambda: reference(prdc, distance, real, fake), args.repeats)
        same = all(abs(r_ours[k] - float(r_ref[k])) <= 1e-6 * max(1.0, abs(float(r_ref[k]))) for k in r_ours)
        print(f"{space:16s} d={dim:4d} N={args.n}: ours {t_ours:6.2f} s, references {t_ref:6.2f} s -> "
              f"ours/references {t_ours / t_ref:.3f} (target <= 1.0); same values: {same}", flush=True)


if __name__ == "__main__":
    main()
