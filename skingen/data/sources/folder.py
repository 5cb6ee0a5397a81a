"""A plain class-per-folder tree: ``ROOT/<class>/<image>``; no lesion ids, each image its own group."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ..images import IMAGE_SUFFIXES
from ..records import IngestReport, Record, classify, index_images

SOURCE = "folder"


def class_dirs(root: Path) -> list[Path]:
    """Immediate sub-folders of ``root`` (hidden ones skipped)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read(root: Path, report: IngestReport, **_: object) -> list[Record]:
    """Read ``ROOT/<class>/*.jpg``; class folder names go through the study's mapping table."""
    dirs = class_dirs(root)
    if not dirs:
        raise UserError(f"{root}: no class folders found; expected ROOT/<class>/<image>.jpg")
    records = []
    real_root = root.resolve()
    for d in dirs:
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            report.notes.append(f"{SOURCE}: class folder {d} is empty")
            continue
        index = index_images(d)
        for image_id, path in sorted(index.escaped.items()):
            report.reject(SOURCE, image_id, path, f"path escapes the dataset root {root} "
                          f"(symlink to {path.resolve()}); copy the file into the root")
        for image_id, path in sorted(index.by_id.items()):
            if not path.resolve().is_relative_to(real_root):
                continue
            label = classify(report, SOURCE, image_id, path, d.name)
            if label is not None:
                records.append(Record(image_id, image_id, SOURCE, label, path, d.name))
    report.notes.append(f"{SOURCE}: no lesion ids in a folder tree; each image is its own split group")
    return records
