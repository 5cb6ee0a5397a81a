"""Classifier loop benchmark: training images/s of our loop (arm dataset, seeded batches, stop checks,
Accelerate) vs a bare timm + Accelerate loop on the same model, batch, data and transforms, alternated
in one process. Target (issue 7): ours >= 0.95x bare, for resnet18 and efficientnet_b0 at 64 px on CPU.

Usage: python benchmarks/bench_classify.py [--n 400] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from skingen.classify.arms import ArmConfig
from skingen.classify.loop import StopFlag
from skingen.classify.models import create_model
from skingen.classify.train import TrainConfig, _setup, _train_epoch
from skingen.data.ingest import ingest
from skingen.data.pack import pack
from skingen.data.phantom import make_phantom
from skingen.data.split import SplitConfig, make_split


def make_shards(tmp: Path, n: int) -> Path:
    """Phantom -> manifest -> split -> 64 px shards."""
    make_phantom(tmp / "ph", n, size=96, seed=0, workers=2)
    ingest([tmp / "ph"], tmp / "m.csv")
    make_split(tmp / "m.csv", tmp / "s.csv", SplitConfig(seed=0))
    pack(tmp / "s.csv", tmp / "sh", 64, workers=2)
    return tmp / "sh"


def ours(shards: Path, out: Path, model: str, batch: int) -> float:
    """Images/s of one epoch of our training loop."""
    run, _, _ = _setup(shards, out, TrainConfig(model=model, batch_size=batch, epochs=1), ArmConfig("real"))
    start = time.perf_counter()
    with StopFlag() as stop:
        _train_epoch(run, stop, None)
    return len(run.train_ds) / (time.perf_counter() - start)


def bare(shards: Path, out: Path, model_name: str, batch: int) -> float:
    """Images/s of a plain timm + Accelerate epoch over the same dataset object."""
    run, _, _ = _setup(shards, out, TrainConfig(model=model_name, batch_size=batch, epochs=1), ArmConfig("real"))
    acc = Accelerator()
    model = create_model(model_name, image_size=64)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    dl = torch.utils.data.DataLoader(run.train_ds, batch_size=batch, shuffle=True)
    model, opt, dl = acc.prepare(model, opt, dl)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for x, y in dl:
        loss = loss_fn(model(x), y)
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
    return len(run.train_ds) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = make_shards(tmp, args.n)
        for model in ("resnet18", "efficientnet_b0"):
            a, b = [], []
            for r in range(args.repeats):  # alternate so drift hits both alike
                b.append(bare(shards, tmp / f"bare{model}{r}", model, args.batch))
                a.append(ours(shards, tmp / f"ours{model}{r}", model, args.batch))
            print(f"{model:>16} 64px bs{args.batch}: ours {max(a):7.1f} img/s, bare {max(b):7.1f} img/s, "
                  f"ratio {max(a) / max(b):.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
