"""HAM10000: Dataverse (.csv, .tab or no extension, 8 columns) and Kaggle (7 columns, images twice)."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ..records import IngestReport, Record, index_images, report_unlisted
from ..tables import read_table
from .common import Row, quarantine_malformed, rows_to_records

SOURCE = "ham10000"
METADATA_NAMES = ("ham10000_metadata.csv", "ham10000_metadata.tab", "ham10000_metadata",
                  "ham10000_metadata.txt")
REQUIRED = ("lesion_id", "image_id", "dx")
KEPT = ("dx_type", "age", "sex", "localization", "dataset")


def find_metadata(root: Path) -> Path | None:
    """The HAM10000 metadata file under ``root`` (preferring .csv, then .tab, then bare)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        name = path.name.lower()
        if path.is_file() and name in METADATA_NAMES and name not in found:
            found[name] = path
    for name in METADATA_NAMES:
        if name in found:
            return found[name]
    return None


def read(root: Path, report: IngestReport, **_: object) -> list[Record]:
    """Read a HAM10000 download (any of its layouts) under ``root``."""
    meta = find_metadata(root)
    if meta is None:
        raise UserError(f"{root}: no HAM10000_metadata(.csv|.tab) found; point ROOT at the extracted download")
    _, table = read_table(meta, REQUIRED)
    listed = {r["image_id"].upper() for r in table}
    table = quarantine_malformed(table, report, SOURCE, "image_id")
    rows = [Row(r["image_id"], r["lesion_id"], r["dx"], {k: r[k] for k in KEPT if k in r}) for r in table]
    index = index_images(root)
    if index.copies:
        report.notes.append(f"{SOURCE}: {index.copies} duplicate image file(s) (e.g. Kaggle's second copy) ignored")
    records = rows_to_records(rows, index, report, SOURCE)
    report_unlisted(index, report, SOURCE, listed)
    return records
