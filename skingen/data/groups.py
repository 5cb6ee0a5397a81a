"""Lesion groups for the split: lesions merged through near-duplicate images (unreadable files are
quarantined before hashing), the group-size report, and the cap that stops a runaway chain."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .dedup import hash_files, near_pairs

PAIR_COLUMNS = ("image_a", "lesion_a", "image_b", "lesion_b", "hamming")
CHAIN_SHOWN = 30  # merged pairs spelled out in the error of a group over the cap
LARGEST_SHOWN = 5  # largest groups listed in split.json


class UnionFind:
    """Disjoint sets of ids; a set is named by its smallest id (deterministic group ids)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        """The name of ``x``'s set (adds ``x`` as a set of its own when new)."""
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        """Merge the sets of ``a`` and ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Groups:
    """The rows kept, image_id -> group id, the pairs that merged two lesions' groups, the quarantine."""

    rows: list[dict]
    of: dict[str, str]
    merged: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)


def readable(rows: list[dict]) -> tuple[list[dict], np.ndarray, list[dict]]:
    """Rows whose image decodes, their pHashes, and a quarantine row (with the reason) for each other row."""
    hashes, bad = hash_files([r["path"] for r in rows])
    quarantine = [{"source": rows[i].get("source", ""), "image_id": rows[i]["image_id"], "path": rows[i]["path"],
                   "reason": f"{reason}; restore the file or re-run 'skingen data ingest'"} for i, reason in bad.items()]
    return [r for i, r in enumerate(rows) if i not in bad], hashes, quarantine


def group_rows(rows: list[dict], dedup: bool, distance: int) -> Groups:
    """Group images by lesion; with ``dedup``, quarantine unreadable files, then merge the lesions of near pairs."""
    quarantine, merged, hashes = [], [], None
    if dedup:
        rows, hashes, quarantine = readable(rows)
    uf = UnionFind()
    for row in rows:
        uf.find(row["lesion_id"])
    for i, j, d in near_pairs(hashes, distance) if dedup else ():
        a, b = rows[i], rows[j]
        if uf.find(a["lesion_id"]) != uf.find(b["lesion_id"]):
            merged.append({"image_a": a["image_id"], "lesion_a": a["lesion_id"], "image_b": b["image_id"],
                           "lesion_b": b["lesion_id"], "hamming": d})
            uf.union(a["lesion_id"], b["lesion_id"])
    return Groups(rows, {r["image_id"]: uf.find(r["lesion_id"]) for r in rows}, merged, quarantine)


def _sizes(groups: Groups) -> tuple[Counter, dict[str, set[str]]]:
    images = Counter(groups.of.values())
    lesions: dict[str, set[str]] = {}
    for row in groups.rows:
        lesions.setdefault(groups.of[row["image_id"]], set()).add(row["lesion_id"])
    return images, lesions


def size_report(groups: Groups) -> dict:
    """For split.json: number of groups per group size (in images) and the largest groups."""
    images, lesions = _sizes(groups)
    by_size = Counter(images.values())
    largest = sorted(images, key=lambda g: (-images[g], g))[:LARGEST_SHOWN]
    return {"group_sizes": {str(n): by_size[n] for n in sorted(by_size)},
            "largest_groups": [{"group_id": g, "images": images[g], "lesions": len(lesions[g])} for g in largest]}


def check_group_sizes(groups: Groups, cap: int, source: Path, pairs_file: Path) -> None:
    """One-line error naming the chain of merged pairs of the largest merged group over ``cap`` images.

    A single lesion's own images are one group whatever their number; only merged groups are capped."""
    images, lesions = _sizes(groups)
    over = [g for g, n in images.items() if n > cap and len(lesions[g]) > 1]
    if not over:
        return
    gid = min(over, key=lambda g: (-images[g], g))
    links = [p for p in groups.merged if groups.of[p["image_a"]] == gid]
    chain = ", ".join(f"{p['image_a']} ({p['lesion_a']}) ~ {p['image_b']} ({p['lesion_b']}) hamming {p['hamming']}"
                      for p in links[:CHAIN_SHOWN])
    more = f" and {len(links) - CHAIN_SHOWN} more pairs" if len(links) > CHAIN_SHOWN else ""
    raise UserError(f"{source}: near-duplicate merging made group {gid} of {images[gid]} images from "
                    f"{len(lesions[gid])} lesions, over the cap of {cap} ({len(over)} group(s) over it); chain: "
                    f"{chain}{more} (all pairs in {pairs_file}); inspect these images, then lower --dedup-distance "
                    "or raise --max-group-size ([split] max_group_size)")


def group_lines(meta: dict) -> list[str]:
    """Console lines on de-dup groups from a split.json's contents."""
    sizes = ", ".join(f"{n} image(s): {k}" for n, k in meta["group_sizes"].items())
    big = ", ".join(f"{g['group_id']} ({g['images']} images, {g['lesions']} lesion(s))" for g in meta["largest_groups"])
    return [f"groups by size: {sizes}", f"largest groups: {big}",
            f"quarantined (unreadable at hashing): {meta['quarantined']}"]
