"""Does the demo's classifier learn on every CPU? (issue 22) The real-arm ResNet-18 with the demo's
training settings (``jobs/demo.toml``, optionally overridden) on the demo's own phantom, for several
classifier seeds, each with 1 and 2 torch threads and with the machine's default kernels and with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` -- rounding differs between these, so a setting
that learns only on a lucky trajectory shows up as a spread. Each run is its own process (the kernel
choice is read at import). Prints test balanced accuracy per run and min/median per setting.

Usage: python benchmarks/bench_demo_learns.py [--seeds 0 1 2 3 4] [--pipelines basic]
                                              [--set epochs=4 --set lr=0.01 ...] [--parallel 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "jobs" / "demo.toml"
KERNELS = {"default": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def build_shards(root: Path, pipelines: list[str], phantom_seed: int, n: int | None) -> dict[str, Path]:
    """The demo's phantom, split and shards (the demo's sizes and split; another phantom seed if asked)."""
    from skingen.data.ingest import ingest
    from skingen.data.pack import pack
    from skingen.data.phantom import make_phantom
    from skingen.data.split import SplitConfig, make_split
    from skingen.grid.spec import load_study

    study = load_study(DEMO)
    ph = study.data.phantom
    make_phantom(root / "phantom", n or ph.n, size=ph.size, seed=phantom_seed, workers=2)
    ingest([root / "phantom"], root / "manifest.csv")
    split = study.split
    make_split(root / "manifest.csv", root / "split.csv",
               SplitConfig(val=split.val, test=split.test, seed=split.seed, dedup=split.dedup))
    return {p: pack(root / "split.csv", root / p, study.image_size, pipeline=p, workers=2) and root / p
            for p in pipelines}


def worker(shards: str, out: str, overrides: str, seed: int, threads: int) -> None:
    """One training run in this process; prints a JSON line with its test metrics."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from skingen.classify.arms import ArmConfig
    from skingen.classify.train import train_classifier
    from skingen.grid.spec import load_study
    from skingen.metrics.diagnostic import all_metrics
    from skingen.metrics.predictions import read_predictions

    study = load_study(DEMO)
    cfg = dataclasses.replace(study.classify.train, model="resnet18", gradcam_per_class=0, checkpoint_every=0,
                              seed=seed, **json.loads(overrides))
    start = time.perf_counter()
    train_classifier(Path(shards), Path(out), cfg, ArmConfig(name="real"))
    _, _, y, prob = read_predictions(Path(out) / "predictions.csv")
    m = all_metrics(y, prob)
    print(json.dumps({"balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
                      "classes_predicted": len(np.unique(prob.argmax(1))), "seconds": time.perf_counter() - start,
                      "capability": torch.backends.cpu.get_cpu_capability()}))


def run_one(job: dict, tmp: Path) -> dict:
    """Start one worker process with its kernel environment; return its result row."""
    env = {**os.environ, **KERNELS[job["kernels"]], "OMP_NUM_THREADS": str(job["threads"])}
    out = tmp / "runs" / f"{job['pipeline']}_{job['seed']}_{job['threads']}_{job['kernels']}"
    cmd = [sys.executable, __file__, "--worker", str(job["shards"]), str(out), job["overrides"], str(job["seed"]),
           str(job["threads"])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return {**job, **json.loads(proc.stdout.strip().splitlines()[-1])}


def parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` pairs (values as JSON where they parse) for TrainConfig fields."""
    out = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def summarise(rows: list[dict]) -> None:
    """Per-run lines and, per pipeline, min / median / max balanced accuracy."""
    import numpy as np

    for r in rows:
        print(f"{r['pipeline']:8s} seed {r['seed']} threads {r['threads']} {r['kernels']:7s} ({r['capability']}): "
              f"balanced accuracy {r['balanced_accuracy']:.3f}, macro-F1 {r['macro_f1']:.3f}, "
              f"{r['classes_predicted']} classes predicted, {r['seconds']:.0f} s")
    for pipeline in sorted({r["pipeline"] for r in rows}):
        ba = np.array([r["balanced_accuracy"] for r in rows if r["pipeline"] == pipeline])
        print(f"{pipeline}: {len(ba)} runs, balanced accuracy min {ba.min():.3f} median {np.median(ba):.3f} "
              f"max {ba.max():.3f}; runs >= 0.5: {(ba >= 0.5).sum()}/{len(ba)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--pipelines", nargs="+", default=["basic"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    parser.add_argument("--set", action="append", default=[], help="TrainConfig override key=value")
    parser.add_argument("--phantom-seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=None, help="phantom images (default: the demo's)")
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    overrides = json.dumps(parse_overrides(args.set))
    print(f"overrides of jobs/demo.toml [classify.train]: {overrides}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = build_shards(tmp, args.pipelines, args.phantom_seed, args.n)
        jobs = [{"pipeline": p, "shards": shards[p], "seed": s, "threads": t, "kernels": k, "overrides": overrides}
                for p in args.pipelines for s in args.seeds for t in args.threads for k in args.kernels]
        start = time.perf_counter()
        with ThreadPoolExecutor(args.parallel) as pool:
            rows = list(pool.map(lambda job: run_one(job, tmp), jobs))
        summarise(rows)
        print(f"{len(rows)} runs in {time.perf_counter() - start:.0f} s ({args.parallel} at a time)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5], int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
