"""Feature extraction throughput per feature space (issue 27 item 5): images/s of each timm space's real architecture
(random weights: the speed does not depend on them) through its own resize and normalisation, and of the bare
forward on pre-resized batches, side by side in one process. Meant for the GPU session (benchmarks/gpu.sh); on a
CPU pass a small --n.

Usage: python benchmarks/bench_extractors.py [--n 256] [--batch 64] [--spaces dinov2_vitl14 clip_vitl14_336]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from skingen.metrics.extractors import TIMM_SPACES, network_input, timm_kwargs


def model_for(name: str, device: torch.device) -> torch.nn.Module:
    import timm

    space = TIMM_SPACES[name]
    model = timm.create_model(space.timm_id.split(".")[0], pretrained=False, **timm_kwargs(space)).to(device).eval()
    return model.half() if device.type == "cuda" else model


@torch.no_grad()
def throughput(name: str, n: int, batch: int, device: torch.device) -> tuple[float, float]:
    """(images/s with the resize and normalisation, images/s of the bare forward)."""
    space, model = TIMM_SPACES[name], model_for(name, device)
    dtype = next(model.parameters()).dtype
    images = list(np.random.default_rng(0).integers(0, 256, size=(batch, 256, 256, 3), dtype=np.uint8))
    ready = network_input(images, space).to(device, dtype)
    model(ready)  # warm-up
    full = bare = 0.0
    for _ in range(max(1, n // batch)):
        start = time.perf_counter()
        model(network_input(images, space).to(device, dtype))
        if device.type == "cuda":
            torch.cuda.synchronize()
        full += time.perf_counter() - start
        start = time.perf_counter()
        model(ready)
        if device.type == "cuda":
            torch.cuda.synchronize()
        bare += time.perf_counter() - start
    done = max(1, n // batch) * batch
    return done / full, done / bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--spaces", nargs="+", default=["dinov2_vitl14", "clip_vitl14_336"])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for name in args.spaces:
        full, bare = throughput(name, args.n, args.batch, device)
        print(f"{name:16s} on {device.type}: {full:8.1f} images/s with resize + normalisation, {bare:8.1f} bare "
              f"forward ({full / bare:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
