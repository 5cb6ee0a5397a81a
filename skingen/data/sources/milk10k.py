"""MILK10k: challenge layout (4 CSVs + per-lesion folders) and ISIC DOI bundle (metadata.csv + images/).

Ground truth is one-hot per lesion over 11 codes; each lesion has one dermoscopic and one
clinical image. Only dermoscopic images are used by default (``modality``).
"""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ..records import IngestReport, Record, index_images, report_unlisted
from ..tables import BadRow, decode_onehot, read_table
from .common import Row, quarantine_malformed, rows_to_records

SOURCE = "milk10k"
CHALLENGE_GT = "MILK10k_Training_GroundTruth.csv"
CHALLENGE_META = "MILK10k_Training_Metadata.csv"
BUNDLE_GT = "supplements/training_gt.csv"
BUNDLE_META = "metadata.csv"
MODALITIES = {"dermoscopic": {"dermoscopic"}, "clinical": {"clinical: close-up"},
              "all": {"dermoscopic", "clinical: close-up"}}


def find_files(root: Path) -> tuple[Path, Path] | None:
    """(ground truth, metadata) of either layout under ``root``, or None."""
    for gt in sorted(root.rglob(CHALLENGE_GT)):
        meta = gt.with_name(CHALLENGE_META)
        if meta.is_file():
            return gt, meta
        raise UserError(f"{gt}: found, but {meta.name} is missing beside it; download the metadata CSV too")
    for gt in sorted(root.rglob("training_gt.csv")):
        if gt.parent.name == "supplements" and (gt.parent.parent / BUNDLE_META).is_file():
            return gt, gt.parent.parent / BUNDLE_META
    return None


def _lesion_labels(gt_path: Path, report: IngestReport) -> dict[str, str | BadRow]:
    header, table = read_table(gt_path, ("lesion_id",))
    codes = [c for c in header if c != "lesion_id"]
    if not codes:
        raise UserError(f"{gt_path}: no class columns after lesion_id; expected AKIEC,BCC,...,VASC")
    labels: dict[str, str | BadRow] = {}
    for row in quarantine_malformed(table, report, SOURCE, "lesion_id"):
        try:
            labels[row["lesion_id"]] = decode_onehot(row, codes)
        except BadRow as exc:
            labels[row["lesion_id"]] = exc
    return labels


def read(root: Path, report: IngestReport, modality: str = "dermoscopic", **_: object) -> list[Record]:
    """Read a MILK10k download under ``root``; keep images of ``modality`` (dermoscopic|clinical|all)."""
    if modality not in MODALITIES:
        raise UserError(f"--milk10k-modality {modality!r} unknown; use one of {', '.join(MODALITIES)}")
    files = find_files(root)
    if files is None:
        raise UserError(f"{root}: no {CHALLENGE_GT} or {BUNDLE_GT} found; point ROOT at the extracted MILK10k")
    gt_path, meta_path = files
    labels = _lesion_labels(gt_path, report)
    _, meta = read_table(meta_path, ("isic_id", "lesion_id", "image_type"))
    listed = {r["isic_id"].upper() for r in meta}
    meta = quarantine_malformed(meta, report, SOURCE, "isic_id")
    keep = MODALITIES[modality]
    rows = []
    for r in meta:
        if r["image_type"] not in keep:
            report.filtered[(SOURCE, f"image_type {r['image_type']!r}")] += 1
            continue
        label = labels.get(r["lesion_id"])
        if label is None:
            report.reject(SOURCE, r["isic_id"], None, f"lesion {r['lesion_id']} has no row in {gt_path.name}")
        elif isinstance(label, BadRow):
            report.reject(SOURCE, r["isic_id"], None, f"{gt_path.name} lesion {r['lesion_id']}: {label}")
        else:
            rows.append(Row(r["isic_id"], r["lesion_id"], label, {"image_type": r["image_type"]}))
    index = index_images(root)
    records = rows_to_records(rows, index, report, SOURCE)
    report_unlisted(index, report, SOURCE, listed)
    return records
