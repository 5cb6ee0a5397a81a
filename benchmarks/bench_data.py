"""Data-path benchmark: phantom generation speed, and reading the same images from a JPEG folder
(PIL and cv2) vs an HDF5 shard through ShardDataset, side by side in one process.

Target (issue 2): shard >= 5x the JPEG folder. Shards carry Fletcher-32 checksums per chunk (issue 25); the same
images in a shard without them are read beside it, for the checksum's cost.
Usage: python benchmarks/bench_data.py [--n 2000] [--size 256]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from skingen.data.phantom import make_phantom
from skingen.data.shards import ShardDataset, ShardWriter
from skingen.data.images import load_rgb
from skingen.preprocess import square_resize


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        make_phantom(tmp / "phantom", args.n, size=args.size, seed=0, workers=args.workers)
        gen = time.perf_counter() - start
        print(f"phantom generation: {args.n / gen:.1f} images/s ({args.size} px short side, {args.workers} workers,"
              " incl. ground truth PNGs)")
        files = sorted((tmp / "phantom" / "images").glob("*.jpg"))
        folder = tmp / "jpeg256"
        folder.mkdir()
        with ShardWriter(tmp / "shard.h5", args.size, capacity=len(files)) as w, \
                ShardWriter(tmp / "plain.h5", args.size, capacity=len(files), checksum=False) as plain:
            for k, f in enumerate(files):
                img = square_resize(load_rgb(f), args.size)
                cv2.imwrite(str(folder / f"{f.stem}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
                w.add(img, 0, f.stem, f.stem, "phantom")
                plain.add(img, 0, f.stem, f.stem, "phantom")
        jpgs = sorted(folder.glob("*.jpg"))
        ds, ds_plain = ShardDataset([tmp / "shard.h5"]), ShardDataset([tmp / "plain.h5"])

        def pil_read():
            for p in jpgs:
                with Image.open(p) as im:
                    np.asarray(im.convert("RGB"))

        def cv2_read():
            for p in jpgs:
                cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)

        def shard_read():
            for i in range(len(ds)):
                ds[i]

        def plain_read():
            for i in range(len(ds_plain)):
                ds_plain[i]

        results = {name: len(jpgs) / _best(fn, args.repeats)
                   for name, fn in (("jpeg_pil", pil_read), ("jpeg_cv2", cv2_read), ("shard_dataset", shard_read),
                                    ("shard_no_checksum", plain_read))}
    for name, rate in results.items():
        print(f"{name:>14}: {rate:9.0f} images/s")
    print(f"ratio shard/jpeg_pil: {results['shard_dataset'] / results['jpeg_pil']:.2f}x  "
          f"shard/jpeg_cv2: {results['shard_dataset'] / results['jpeg_cv2']:.2f}x  (target >= 5x)")
    print(f"checksummed/unchecked shard reads: {results['shard_dataset'] / results['shard_no_checksum']:.2f}x")


if __name__ == "__main__":
    main()
