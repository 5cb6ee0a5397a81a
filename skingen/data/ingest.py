"""Ingest: detect each root's layout, read it, verify every image, write manifest.csv + quarantine.csv."""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ..atomic import write_csv
from ..errors import BadImage, UserError
from ..parallel import process_pool
from .classes import ClassSet, load_class_set
from .images import image_note, load_rgb
from .records import IngestReport, Record
from .sources import folder, ham10000, isic, milk10k

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("image_id", "lesion_id", "source", "label", "path", "orig_label", "dataset",
                    "image_type", "note")
QUARANTINE_COLUMNS = ("source", "image_id", "path", "reason")
READERS: dict[str, Callable[..., list[Record]]] = {
    "ham10000": ham10000.read, "milk10k": milk10k.read, "isic": isic.read, "folder": folder.read,
}
SOURCE_CHOICES = ("auto", "ham10000", "milk10k", "isic2019", "isic", "folder")


def detect_layout(root: Path) -> str:
    """Name of the reader for ``root``, or a one-line error listing what was looked for."""
    if milk10k.find_files(root) is not None:
        return "milk10k"
    if ham10000.find_metadata(root) is not None:
        return "ham10000"
    if isic.find_ground_truth(root) is not None:
        return "isic"
    if folder.class_dirs(root):
        return "folder"
    raise UserError(
        f"{root}: no known dataset layout; expected HAM10000_metadata(.csv|.tab), "
        "MILK10k_Training_GroundTruth.csv, metadata.csv + supplements/training_gt.csv, "
        "an ISIC *_GroundTruth.csv, or ROOT/<class>/ folders"
    )


def _verify_one(path: str) -> tuple[str, str]:
    try:
        load_rgb(path)
    except BadImage as exc:
        return "bad", str(exc)
    return "ok", image_note(path)


def verify_images(records: list[Record], report: IngestReport, workers: int) -> list[Record]:
    """Decode every image once; quarantine unusable ones, note the converted ones."""
    paths = [str(r.path) for r in records]
    if workers > 1 and len(paths) > 64:
        with process_pool(workers) as pool:
            results = list(tqdm(pool.map(_verify_one, paths, chunksize=32), total=len(paths),
                                desc="verify images", unit="img", disable=None))
    else:
        results = [_verify_one(p) for p in tqdm(paths, desc="verify images", unit="img", disable=None)]
    kept = []
    for rec, (status, text) in zip(records, results):
        if status == "bad":
            report.reject(rec.source, rec.image_id, rec.path, f"{text}; re-download or remove the file")
        else:
            rec.extra["note"] = text
            kept.append(rec)
    return kept


def merge_sources(groups: list[list[Record]], report: IngestReport) -> list[Record]:
    """Concatenate per-root records, keeping the first occurrence of each image id."""
    seen: dict[str, str] = {}
    merged = []
    for records in groups:
        for rec in records:
            if rec.image_id in seen:
                report.duplicates[f"{rec.source} (already in {seen[rec.image_id]})"] += 1
                continue
            seen[rec.image_id] = rec.source
            merged.append(rec)
    return merged


def ingest(roots: list[str | os.PathLike], out: str | os.PathLike, source: str = "auto",
           modality: str = "dermoscopic", verify: bool = True, workers: int = 1,
           classes: str | os.PathLike | dict | ClassSet | None = None) -> tuple[Path, IngestReport, list[Record]]:
    """Read every root, map its codes onto the class set, verify images, write the manifest and quarantine
    list; return them."""
    if source not in SOURCE_CHOICES:
        raise UserError(f"--source {source!r} unknown; use one of {', '.join(SOURCE_CHOICES)}")
    report = IngestReport(class_set=load_class_set(classes))
    groups = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise UserError(f"{root}: not a folder; pass the extracted dataset folder as ROOT")
        layout = detect_layout(root) if source == "auto" else ("isic" if source.startswith("isic") else source)
        log.info("ingest: reading %s as %s", root, layout)
        groups.append(READERS[layout](root, report, modality=modality))
    records = merge_sources(groups, report)
    if verify:
        records = verify_images(records, report, workers)
    out = Path(out)
    write_csv(out.with_name("quarantine.csv"), QUARANTINE_COLUMNS, report.quarantine)
    if not records:
        raise UserError(f"no usable images found under {', '.join(map(str, roots))}: "
                        f"{_quarantine_note(report, out.with_name('quarantine.csv'))}")
    write_csv(out, MANIFEST_COLUMNS, (manifest_row(r) for r in records))
    return out, report, records


def _quarantine_note(report: IngestReport, path: Path) -> str:
    """What the quarantine list holds, in a few words, and where it is."""
    rows = report.quarantine
    if not rows:
        return "no image files in a layout skingen reads (see 'Using real HAM10000 / MILK10k data' in the README)"
    reasons = Counter(r["reason"].split(":")[0] for r in rows).most_common(3)
    return (f"{len(rows)} quarantined ({'; '.join(f'{n} {why}' for why, n in reasons)}); "
            f"the list is in {path}")


def manifest_row(rec: Record) -> dict:
    """A manifest.csv row for one record (paths absolute, so shards can be packed from anywhere)."""
    return {"image_id": rec.image_id, "lesion_id": rec.lesion_id, "source": rec.source, "label": rec.label,
            "path": str(Path(rec.path).resolve()), "orig_label": rec.orig_label,
            "dataset": rec.extra.get("dataset", ""), "image_type": rec.extra.get("image_type", ""),
            "note": rec.extra.get("note", "")}


def summary_lines(records: list[Record], report: IngestReport, manifest: Path) -> list[str]:
    """The per-class x per-source table and everything that was dropped, merged or quarantined."""
    sources = sorted({r.source for r in records})
    counts = Counter((r.label, r.source) for r in records)
    width = max([8] + [len(s) for s in sources])
    lines = ["class  " + " ".join(f"{s:>{width}}" for s in sources) + f" {'total':>{width}}"]
    classes = report.class_set.classes
    for cls in classes:
        row = [counts[(cls, s)] for s in sources]
        lines.append(f"{cls:<6} " + " ".join(f"{v:>{width}}" for v in row) + f" {sum(row):>{width}}")
    lines.append(f"{'total':<6} " + " ".join(f"{sum(counts[(c, s)] for c in classes):>{width}}"
                                             for s in sources) + f" {len(records):>{width}}")
    for cls in classes:
        if not any(counts[(cls, s)] for s in sources):
            lines.append(f"warning: {report.class_set.missing_note(cls, set(sources))}")
    for (src, code), n in sorted(report.dropped.items()):
        lines.append(f"dropped (out-of-study class): {src} {code}: {n}")
    for (src, why), n in sorted(report.filtered.items()):
        lines.append(f"filtered: {src} {why}: {n}")
    for src, n in sorted(report.duplicates.items()):
        lines.append(f"duplicates merged: {src}: {n}")
    converted = Counter(r.extra.get("note") for r in records if r.extra.get("note"))
    for note, n in sorted(converted.items()):
        lines.append(f"converted: {note}: {n}")
    lines.extend(report.notes)
    lines.append(f"quarantined: {len(report.quarantine)} (see {manifest.with_name('quarantine.csv')})")
    lines.append(f"class set: {report.class_set.name} ({', '.join(classes)})")
    lines.append(f"manifest: {len(records)} images of {len({r.lesion_id for r in records})} lesions -> {manifest}")
    return lines
