"""StyleGAN2-ADA on a GPU (benchmarks/gpu.sh): seconds per kimg of paper256 at 256 px on one GPU, batch 64
(paper256's own), G+D steps with lazy R1 (every 16) and path length (every 4), ADA at p = 0.2: fp32, bf16,
and bf16 with ``compile = true`` (compilation happens in the untimed warm-up). The published StyleGAN2-ADA
figure for paper256 at 256 px on one V100 is about 22 s/kimg (anchors.md 1.5; issue 16 item 8).

Usage: python benchmarks/bench_stylegan2_gpu.py [--steps 20] [--batch 64]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from skingen.generators.ddpm_data import TrainImages
from skingen.generators.stylegan2.steps import train_step
from skingen.generators.stylegan2.train import Run, StyleGAN2Config, _ema_update

from bench_stylegan2 import shard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a GPU"
    with tempfile.TemporaryDirectory() as tmp:
        train = shard(Path(tmp) / "t.h5", 256)
        for mp, compiled in (("no", False), ("bf16", False), ("bf16", True)):
            cfg = StyleGAN2Config(resolution=256, preset="paper256", batch_size=args.batch, augment="fixed:0.2",
                                  mixed_precision=mp, compile=compiled)
            run = Run(cfg, TrainImages(train, ("MEL",), 256), Accelerator())
            for i in range(args.steps + 16):
                if i == 16:  # after warm-up (incl. one R1 step), time a window with its share of lazy steps
                    torch.cuda.synchronize()
                    start = time.perf_counter()
                train_step(run)
                _ema_update(run)
                run.step += 1
            torch.cuda.synchronize()
            sec = (time.perf_counter() - start) / args.steps
            print(f"paper256 256px bs{args.batch} {mp}{' compile' if compiled else ''}: "
                  f"{sec / (args.batch / 1000):.1f} s/kimg "
                  f"({sec * 1000:.0f} ms/step; V100 reference ~22 s/kimg)")


if __name__ == "__main__":
    main()
