"""StyleGAN2-ADA benchmark (issue 5): seconds per kimg of G+D steps at 32 and 64 px (batch 8), with R1
on every step vs without, the augment pipeline's share of a step (p = 1, all 12 transforms), and the
parameter counts of paper256 at 256 px. Configurations alternate in one process (best of repeats).

Usage: python benchmarks/bench_stylegan2.py [--presets small paper256] [--steps 3] [--repeats 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardWriter
from skingen.generators.ddpm_data import TrainImages
from skingen.generators.stylegan2.summary import parameter_summary
from skingen.generators.stylegan2.steps import train_step
from skingen.generators.stylegan2.train import Run, StyleGAN2Config


def shard(path: Path, size: int) -> Path:
    rng = np.random.default_rng(0)
    with ShardWriter(path, size, attrs={"split": "train"}) as w:
        for i in range(32):
            w.add(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), CLASS_INDEX["MEL"], f"i{i}", f"l{i}", "b")
    return path


def sec_per_kimg(train: Path, preset: str, res: int, r1: bool, steps: int) -> float:
    cfg = StyleGAN2Config(resolution=res, preset=preset, batch_size=8, r1_interval=1, r1_gamma=None if r1 else 0,
                          pl_weight=0, augment="fixed:1")
    run = Run(cfg, TrainImages(train, ("MEL",), res), Accelerator(cpu=True))
    train_step(run)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        train_step(run)
        run.step += 1
    return (time.perf_counter() - start) / steps / (cfg.batch_size / 1000)


def augment_share(train: Path, preset: str, res: int, steps: int) -> float:
    """Time of the augment calls a step makes (3 batches of 8) over the time of the step."""
    cfg = StyleGAN2Config(resolution=res, preset=preset, batch_size=8, pl_weight=0, augment="fixed:1")
    run = Run(cfg, TrainImages(train, ("MEL",), res), Accelerator(cpu=True))
    x = torch.rand(8, 3, res, res) * 2 - 1
    start = time.perf_counter()
    for _ in range(steps * 3):
        run.augment(x, run.gen)
    aug = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        train_step(run)
    return aug / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["small", "paper256"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, CPU")
    with tempfile.TemporaryDirectory() as tmp:
        for res in (32, 64):
            train = shard(Path(tmp) / f"t{res}.h5", res)
            for preset in args.presets:
                with_r1, without = [], []
                for _ in range(args.repeats):
                    without.append(sec_per_kimg(train, preset, res, False, args.steps))
                    with_r1.append(sec_per_kimg(train, preset, res, True, args.steps))
                share = augment_share(train, preset, res, args.steps)
                print(f"{preset:>9} {res:>3}px bs8: {min(without):8.1f} s/kimg without R1, {min(with_r1):8.1f} s/kimg "
                      f"with R1 every step (x{min(with_r1) / min(without):.2f}); augment share {share:.1%}")
    s = parameter_summary(256, "paper256")
    print(f"paper256 @256: G mapping {s['G_mapping']:,}, G synthesis {s['G_synthesis']:,}, G {s['G_total']:,}, "
          f"D {s['D']:,}")


if __name__ == "__main__":
    main()
