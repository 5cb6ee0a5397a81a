"""Perceptual-hash near-duplicate detection (64-bit DCT pHash, Hamming distance threshold)."""
from __future__ import annotations

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import BadImage
from .images import load_rgb


def phash(rgb: np.ndarray) -> np.uint64:
    """64-bit pHash: grey, 32x32 area resize, DCT, top-left 8x8 bits above their median (DC excluded)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA)
    block = cv2.dct(small)[:8, :8].flatten()
    bits = block > np.median(block[1:])
    return np.uint64(int("".join("1" if b else "0" for b in bits), 2))


def hash_files(paths: list[str]) -> tuple[np.ndarray, dict[int, str]]:
    """pHashes of the readable files, in order, and index -> reason for each unreadable one.

    Unreadable files get no hash at all (a shared placeholder would make them near-duplicates of
    each other); callers quarantine them before searching pairs."""
    hashes, bad = [], {}
    for i, p in enumerate(tqdm(paths, desc="perceptual hashes", unit="img", disable=None)):
        try:
            hashes.append(phash(load_rgb(p)))
        except BadImage as exc:
            bad[i] = str(exc)
    return np.array(hashes, dtype=np.uint64), bad


def near_pairs(hashes: np.ndarray, max_distance: int = 6, block: int = 2048) -> list[tuple[int, int, int]]:
    """All index pairs (i < j) whose Hamming distance is at most ``max_distance``."""
    pairs = []
    n = len(hashes)
    for start in range(0, n, block):
        a = hashes[start:start + block]
        dist = np.bitwise_count(a[:, None] ^ hashes[None, :])
        rows, cols = np.nonzero(dist <= max_distance)
        for r, c in zip(rows, cols):
            i = start + int(r)
            if int(c) > i:
                pairs.append((i, int(c), int(dist[r, c])))
    return pairs
