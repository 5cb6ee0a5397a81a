"""ISIC 2018 Task 3 / ISIC 2019 one-hot ground-truth CSVs (``image,MEL,NV,...``) with lesion groupings."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ..records import IngestReport, Record, canonical_id, index_images
from ..tables import BadRow, decode_onehot, read_table
from .common import Row, quarantine_malformed, rows_to_records

NON_CLASS_COLUMNS = {"image", "score_weight", "validation_weight"}


def find_ground_truth(root: Path) -> Path | None:
    """An ISIC ``*GroundTruth*.csv`` whose first column is ``image`` (not MILK10k's lesion table)."""
    for path in sorted(root.rglob("*GroundTruth*.csv")):
        first = path.read_text(errors="replace").split("\n", 1)[0]
        if first.strip().split(",")[0].strip().lower() == "image":
            return path
    return None


def source_name(gt: Path) -> str:
    """isic2019 / isic2018 / isic from the ground-truth file name."""
    name = gt.name.lower()
    return "isic2019" if "2019" in name else "isic2018" if "2018" in name else "isic"


def _lesion_ids(gt: Path) -> dict[str, str]:
    """image id -> lesion id from a metadata or LesionGroupings CSV beside the ground truth."""
    for cand in sorted(gt.parent.glob("*.csv")):
        if cand == gt or not ("metadata" in cand.name.lower() or "lesiongroup" in cand.name.lower()):
            continue
        header = cand.read_text(errors="replace").split("\n", 1)[0]
        if "lesion_id" in header and "image" in header:
            _, rows = read_table(cand, ("image", "lesion_id"))
            return {canonical_id(r["image"]): r["lesion_id"] for r in rows if r.get("lesion_id")}
    return {}


def read(root: Path, report: IngestReport, **_: object) -> list[Record]:
    """Read an ISIC 2018/2019-style one-hot ground truth and its images under ``root``."""
    gt = find_ground_truth(root)
    if gt is None:
        raise UserError(f"{root}: no ISIC *GroundTruth*.csv with an 'image' column found")
    source = source_name(gt)
    header, table = read_table(gt, ("image",))
    codes = [c for c in header if c.lower() not in NON_CLASS_COLUMNS]
    lesions = _lesion_ids(gt)
    if not lesions:
        report.notes.append(f"{source}: no lesion_id metadata beside {gt.name}; each image is its own group")
    rows = []
    for r in quarantine_malformed(table, report, source, "image"):
        image_id = canonical_id(r["image"])
        try:
            code = decode_onehot(r, codes)
        except BadRow as exc:
            report.reject(source, image_id, None, f"{gt.name}: {exc}")
            continue
        rows.append(Row(image_id, lesions.get(image_id, image_id), code))
    return rows_to_records(rows, index_images(root), report, source)
