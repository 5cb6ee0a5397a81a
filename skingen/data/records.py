"""What every source reader produces: image records, the quarantine list and the ingest report."""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .classes import PAPER5, ClassSet
from .images import IMAGE_SUFFIXES

ISIC_ID = re.compile(r"^(ISIC_\d{7})(?:_downsampled)?$", re.IGNORECASE)


@dataclass
class Record:
    """One usable image: ids, study label, the source's own label and where the file is."""

    image_id: str
    lesion_id: str
    source: str
    label: str
    path: Path
    orig_label: str
    extra: dict = field(default_factory=dict)


@dataclass
class IngestReport:
    """Everything a reader did not turn into a record, so nothing is lost silently."""

    quarantine: list[dict] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # (source, code) -> images of out-of-study classes
    filtered: Counter = field(default_factory=Counter)  # (source, reason) -> images skipped by options
    duplicates: Counter = field(default_factory=Counter)  # source -> duplicate rows/files merged
    notes: list[str] = field(default_factory=list)
    class_set: ClassSet = PAPER5  # the study's classes and the code -> class table readers map through

    def reject(self, source: str, image_id: str, path: Path | str | None, reason: str) -> None:
        """Quarantine one image (or metadata row) with the reason."""
        self.quarantine.append({"source": source, "image_id": image_id, "path": str(path or ""), "reason": reason})


def classify(report: IngestReport, source: str, image_id: str, path, code: str) -> str | None:
    """Map a source code to a class of the report's class set; count drops and quarantine unknown codes (None then)."""
    try:
        label = report.class_set.map(code)
    except KeyError:
        report.reject(source, image_id, path, f"unknown label {code!r}; map it in a class set file "
                      "(--classes FILE.toml, [map] table) or fix the row")
        return None
    if label is None:
        report.dropped[(source, code.strip().lower())] += 1
    return label


@dataclass
class ImageIndex:
    """Image files under a root by id: copies merged, files escaping the root set aside."""

    root: Path
    by_id: dict[str, Path]
    escaped: dict[str, Path]
    copies: int


def canonical_id(stem: str) -> str:
    """Image id from a file stem: ISIC ids normalised (``_downsampled`` stripped), others as is."""
    m = ISIC_ID.match(stem)
    return m.group(1).upper() if m else stem


def index_images(root: Path, skip_dirs: tuple[str, ...] = ("ground_truth",)) -> ImageIndex:
    """Index image files under ``root`` recursively by id (first path in sorted order wins)."""
    real_root = root.resolve()
    by_id: dict[str, Path] = {}
    escaped: dict[str, Path] = {}
    copies = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image_id = canonical_id(path.stem)
            resolved = path.resolve()
            if not resolved.is_relative_to(real_root):
                escaped[image_id] = path
                continue
            if image_id in by_id:
                copies += 1
                continue
            by_id[image_id] = path
    return ImageIndex(root, by_id, escaped, copies)


def find_image(index: ImageIndex, report: IngestReport, source: str, image_id: str) -> Path | None:
    """The file of ``image_id``; quarantines the id when it is missing or escapes the root."""
    key = canonical_id(image_id)
    if key in index.by_id:
        return index.by_id[key]
    if key in index.escaped:
        report.reject(source, image_id, index.escaped[key],
                      f"path escapes the dataset root {index.root} (symlink to {index.escaped[key].resolve()}); "
                      "copy the file into the root")
    else:
        report.reject(source, image_id, None, f"listed in metadata but no image file found under {index.root}")
    return None


def report_unlisted(index: ImageIndex, report: IngestReport, source: str, listed: set[str]) -> None:
    """Quarantine ISIC-named image files that no metadata row lists."""
    for image_id, path in index.by_id.items():
        if ISIC_ID.match(image_id) and image_id not in listed:
            report.reject(source, image_id, path, "image file not listed in metadata; add a row for it or remove it")
