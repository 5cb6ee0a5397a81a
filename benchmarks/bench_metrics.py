"""Generative-metrics benchmark (issue 6).

1. Feature extraction: images/s of ``extract_features``' per-batch work (shard read + clean resize +
   forward) vs the extractor's bare forward on the same pre-resized batches, alternated batch by
   batch in one process (medians). Target >= 0.9x. The Inception-sized extractor is timm's inception_v3
   at 299 px with random weights (the real TorchScript file cannot be had offline; same cost class);
   ``tiny`` shows the overhead when the network is nearly free.
2. All metrics of one pair from cached 2,048-d features, N = 5,000 each (FID, KID 100 subsets of
   1,000, IS from 1,008 logits, precision/recall k=3, memorisation against 1,000 test features),
   bootstrap excluded. Target <= 1 s. Printed per metric, beside the float64 work FID cannot skip.

Usage: python benchmarks/bench_metrics.py [--n-images 64] [--n-feats 5000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardWriter
from skingen.metrics import generative as gm
from skingen.metrics.extractors import Extractor, load_extractor
from skingen.metrics.features import ImageSet, _batches, extract_features
from skingen.data.shards import ShardReader


def random_shard(path: Path, n: int, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    with ShardWriter(path, size) as w:
        for i in range(n):
            w.add(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), CLASS_INDEX["MEL"], f"i{i}", f"l{i}", "bench")
    return path


def inception_sized() -> Extractor:
    import timm

    model = timm.create_model("inception_v3", num_classes=0).eval()
    return Extractor("inception_v3_random", 299, 2048, lambda x: (model(x / 255.0), None), "random", "timm",
                     torch.device("cpu"))


def extraction(shard: Path, extractor: Extractor, batch: int, repeats: int) -> tuple[float, float]:
    """Images/s of extract_features' per-batch work (shard read + clean resize + forward) and of the bare
    forward on the same pre-resized batch, alternated batch by batch (medians) so drift hits both alike."""
    reader = ShardReader(shard)
    idx = np.arange(len(reader))
    resized = list(_batches(reader, idx, extractor, batch))
    extract_features(ImageSet(shard), extractor, None, batch)  # warm-up of the whole function
    ours, bare = [], []
    for _ in range(repeats):
        batches = _batches(reader, idx, extractor, batch)
        for pre in resized:
            start = time.perf_counter()
            extractor(pre)
            bare.append(len(pre) / (time.perf_counter() - start))
            start = time.perf_counter()
            extractor(next(batches))
            ours.append(len(pre) / (time.perf_counter() - start))
    return float(np.median(ours)), float(np.median(bare))


def all_metrics(n: int) -> dict[str, float]:
    """Seconds per metric of one pair (N real, N fake, 1,000 test) from cached features, and the total."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(n, 2048)).astype(np.float32)
    fake = (rng.normal(size=(n, 2048)) + 0.05).astype(np.float32)
    test = rng.normal(size=(1000, 2048)).astype(np.float32)
    logits = rng.normal(size=(n, 1008)).astype(np.float32)
    grams = gm.Grams(real, fake)
    steps = {"gram matrices": lambda: [grams.dot(w) for w in ("xx", "yy", "xy")],
             "fid (float64)": lambda: gm.fid(real, fake), "kid": lambda: gm.kid(grams, 100, 1000),
             "precision/recall": lambda: gm.precision_recall(grams, 3), "is": lambda: gm.inception_score(logits),
             "memorisation": lambda: gm.memorisation(fake, real, test, grams=grams)}
    times = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        times[name] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return times


def fid_floor(n: int, d: int = 2048) -> float:
    """The float64 work FID cannot skip: two d x d covariances of N rows and one d x d eigvalsh."""
    x = torch.randn(n, d, dtype=torch.float64, device="cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    cov = gm.symmetric_product(x.T)
    gm.symmetric_product(x.T)
    float(torch.linalg.eigvalsh(cov).sum())  # float(): waits for the GPU
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-images", type=int, default=64)
    parser.add_argument("--n-feats", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    with tempfile.TemporaryDirectory() as tmp:
        shard = random_shard(Path(tmp) / "s.h5", args.n_images)
        for extractor in (inception_sized(), load_extractor("tiny", device="cpu")):
            ours, bare = extraction(shard, extractor, args.batch, args.repeats)
            print(f"extract {extractor.name:>20} {extractor.input_size}px: ours {ours:8.1f} img/s, bare forward "
                  f"{bare:8.1f} img/s, ratio {ours / bare:.3f} (target >= 0.9)")
    for repeat in range(args.repeats):
        times = all_metrics(args.n_feats)
        parts = ", ".join(f"{k} {v:.2f}" for k, v in times.items() if k != "total")
        print(f"all metrics, N={args.n_feats} x 2048-d (run {repeat + 1}): {times['total']:.2f} s "
              f"(target <= 1 s): {parts}")
    print(f"floor of FID alone (two float64 covariances + eigvalsh): {fid_floor(args.n_feats):.2f} s")

if __name__ == "__main__":
    main()
