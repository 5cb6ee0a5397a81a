"""Lesion-grouped, class-stratified train/val/test split, persisted with its seed."""
from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_csv, write_json
from ..errors import UserError
from .classes import ClassSet, load_class_set
from .groups import PAIR_COLUMNS, check_group_sizes, group_rows, size_report
from .ingest import QUARANTINE_COLUMNS
from .tables import read_table

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ("image_id", "lesion_id", "label", "split", "group_id", "source", "path")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of lesion groups per class for val and test, the seed, and dedup options (the pHash
    distance, and the most images a group of merged lesions may hold before the split stops)."""

    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    dedup: bool = False
    dedup_distance: int = 6
    max_group_size: int = 20


def read_manifest(path: Path, class_set: ClassSet | None = None) -> list[dict]:
    """Rows of a manifest.csv, checked: labels of the class set, unique image ids."""
    class_set = load_class_set(class_set)
    if not path.is_file():
        raise UserError(f"{path}: no such manifest; run 'skingen data ingest' first")
    _, rows = read_table(path, ("image_id", "lesion_id", "label", "path"))
    seen = set()
    for i, row in enumerate(rows, start=2):
        if row["label"] not in class_set.index:
            raise UserError(f"{path} line {i}: label {row['label']!r} is not one of {', '.join(class_set.classes)} "
                            f"(class set {class_set.name}); pass the --classes it was ingested with, or re-run "
                            "'skingen data ingest'")
        if row["image_id"] in seen:
            raise UserError(f"{path} line {i}: image id {row['image_id']} appears twice; re-run 'skingen data ingest'")
        seen.add(row["image_id"])
    return rows


def present_classes(rows: list[dict], class_set: ClassSet) -> tuple[tuple[str, ...], dict[str, str]]:
    """(classes with images, in the set's order; dropped class -> note naming the dataset that adds it)."""
    have = {r["label"] for r in rows}
    sources = {r.get("source", "") for r in rows} - {""}
    dropped = {c: class_set.missing_note(c, sources) for c in class_set.classes if c not in have}
    for note in dropped.values():
        log.warning("split: class dropped: %s", note)
    return tuple(c for c in class_set.classes if c in have), dropped


def assign_groups(rows: list[dict], groups: dict[str, str], cfg: SplitConfig, source: Path,
                  classes: tuple[str, ...]) -> dict[str, str]:
    """group id -> split, stratified by each group's majority class, deterministic for the seed."""
    votes: dict[str, Counter] = {}
    for row in rows:
        votes.setdefault(groups[row["image_id"]], Counter())[row["label"]] += 1
    by_class: dict[str, list[str]] = {c: [] for c in classes}
    for gid, vote in votes.items():
        by_class[min(vote, key=lambda c: (-vote[c], classes.index(c)))].append(gid)
    rng = np.random.default_rng(cfg.seed)
    assignment = {}
    for cls in classes:
        gids = sorted(by_class[cls])
        need = 1 + (cfg.val > 0) + (cfg.test > 0)
        if len(gids) < need:
            raise UserError(f"{source}: class {cls} has {len(gids)} lesion group(s), need at least {need} "
                            f"to put one in every split; add images of {cls}, or use a class set without it "
                            "(--classes FILE.toml; [study] classes)")
        gids = [gids[i] for i in rng.permutation(len(gids))]
        n_test = max(int(cfg.test > 0), int(round(len(gids) * cfg.test)))
        n_val = max(int(cfg.val > 0), int(round(len(gids) * cfg.val)))
        for k, gid in enumerate(gids):
            assignment[gid] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return assignment


def make_split(manifest: str | os.PathLike, out: str | os.PathLike, cfg: SplitConfig,
               classes: str | os.PathLike | dict | ClassSet | None = None) -> tuple[Path, list[dict]]:
    """Split a manifest by lesion group; write split.csv, split.json and (with dedup) the merged pairs
    and the quarantine of files that could not be hashed. Classes of the set without images are dropped
    (warned, and listed in split.json)."""
    manifest, out = Path(manifest), Path(out)
    class_set = load_class_set(classes)
    if not (0 <= cfg.val < 1 and 0 <= cfg.test < 1 and cfg.val + cfg.test < 1):
        raise UserError(f"--val {cfg.val} and --test {cfg.test} must be in [0, 1) and sum to less than 1")
    if cfg.max_group_size < 2:
        raise UserError(f"--max-group-size {cfg.max_group_size} must be at least 2")
    grouped = group_rows(read_manifest(manifest, class_set), cfg.dedup, cfg.dedup_distance)
    if cfg.dedup:
        pairs_file = out.with_name(out.stem + "_dedup_pairs.csv")
        write_csv(pairs_file, PAIR_COLUMNS, grouped.merged)
        write_csv(out.with_name(out.stem + "_quarantine.csv"), QUARANTINE_COLUMNS, grouped.quarantine)
        check_group_sizes(grouped, cfg.max_group_size, manifest, pairs_file)
    rows, groups = grouped.rows, grouped.of
    present, dropped = present_classes(rows, class_set)
    assignment = assign_groups(rows, groups, cfg, manifest, present)
    out_rows = [{**r, "split": assignment[groups[r["image_id"]]], "group_id": groups[r["image_id"]]} for r in rows]
    write_csv(out, SPLIT_COLUMNS, out_rows)
    write_json(out.with_suffix(".json"), {
        "seed": cfg.seed, "val": cfg.val, "test": cfg.test, "dedup": cfg.dedup,
        "dedup_distance": cfg.dedup_distance, "max_group_size": cfg.max_group_size,
        "class_set": class_set.to_config(), "classes": list(present), "dropped_classes": dropped,
        "merged_pairs": len(grouped.merged), "quarantined": len(grouped.quarantine),
        "manifest": str(manifest.resolve()), "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "counts": {s: dict(Counter(r["label"] for r in out_rows if r["split"] == s)) for s in SPLITS},
        **size_report(grouped),
    })
    return out, out_rows


def lesion_overlap(rows: list[dict], key: str = "lesion_id") -> dict[str, set[str]]:
    """Lesions (or groups) that appear in more than one split -> their splits. Must be empty."""
    where: dict[str, set[str]] = {}
    for row in rows:
        where.setdefault(row[key], set()).add(row["split"])
    return {k: v for k, v in where.items() if len(v) > 1}


def split_classes(rows: list[dict], classes: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """``classes``, or the labels of ``rows`` (paper5 order first, then sorted) when none are given."""
    if classes:
        return tuple(classes)
    have = {r["label"] for r in rows}
    known = load_class_set().classes
    return tuple(c for c in known if c in have) + tuple(sorted(have - set(known)))


def split_table(rows: list[dict], classes: tuple[str, ...] | None = None) -> list[str]:
    """Per split x class table of images (lesions in brackets)."""
    classes = split_classes(rows, classes)
    lines = [f"{'split':<6} " + " ".join(f"{c:>12}" for c in classes) + f" {'total':>12}"]
    for s in SPLITS:
        sub = [r for r in rows if r["split"] == s]
        cells = []
        for c in classes:
            cls_rows = [r for r in sub if r["label"] == c]
            cells.append(f"{len(cls_rows)} ({len({r['lesion_id'] for r in cls_rows})})")
        total = f"{len(sub)} ({len({r['lesion_id'] for r in sub})})"
        lines.append(f"{s:<6} " + " ".join(f"{v:>12}" for v in cells) + f" {total:>12}")
    return lines
