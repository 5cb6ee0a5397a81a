"""Shared row handling for metadata-driven readers: duplicates, labels, image lookup."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..records import ImageIndex, IngestReport, Record, canonical_id, classify, find_image


@dataclass
class Row:
    """One metadata row reduced to what the manifest needs."""

    image_id: str
    lesion_id: str
    code: str
    extra: dict = field(default_factory=dict)


def rows_to_records(rows: list[Row], index: ImageIndex, report: IngestReport, source: str) -> list[Record]:
    """Turn rows into records: merge exact duplicate ids, quarantine conflicting ones and bad labels."""
    by_id: dict[str, list[Row]] = {}
    for row in rows:
        by_id.setdefault(canonical_id(row.image_id), []).append(row)
    records = []
    for image_id, group in by_id.items():
        first = group[0]
        if len(group) > 1:
            labels = {r.code.lower() for r in group}
            lesions = {r.lesion_id for r in group}
            if len(labels) > 1 or len(lesions) > 1:
                report.reject(source, image_id, None,
                              f"image id listed {len(group)} times with conflicting labels/lesions "
                              f"({', '.join(sorted(labels | lesions))}); keep one row")
                continue
            report.duplicates[source] += len(group) - 1
        label = classify(report, source, image_id, None, first.code)
        if label is None:
            continue
        path = find_image(index, report, source, image_id)
        if path is None:
            continue
        lesion = first.lesion_id or image_id
        records.append(Record(image_id, lesion, source, label, Path(path), first.code, dict(first.extra)))
    return records


def quarantine_malformed(rows: list[dict], report: IngestReport, source: str, id_col: str) -> list[dict]:
    """Drop rows whose field count is wrong, quarantining each; return the good rows."""
    good = []
    for row in rows:
        if "__malformed__" in row:
            report.reject(source, row.get(id_col, "?"), None, f"malformed metadata row: {row['__malformed__']}")
        else:
            good.append(row)
    return good
