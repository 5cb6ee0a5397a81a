"""Reading the metadata tables of real datasets: delimiter sniffing, column checks, one-hot rows."""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UserError


class BadRow(Exception):
    """One metadata row cannot be used; the message is the quarantine reason."""


def read_table(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[dict]]:
    """Read a comma- or tab-separated table; exit with a one-line error if columns are missing.

    Rows with a wrong number of fields are kept with key ``__malformed__`` set, for quarantine.
    """
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise UserError(f"{path}: file is empty; re-download it")
    delimiter = "\t" if lines[0].count("\t") > lines[0].count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header)}; "
            f"expected at least {', '.join(required)}"
        )
    rows = []
    for lineno, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        row = {h: (fields[i].strip() if i < len(fields) else "") for i, h in enumerate(header)}
        if len(fields) != len(header):
            row["__malformed__"] = f"{path.name} line {lineno}: {len(fields)} fields, expected {len(header)}"
        rows.append(row)
    return header, rows


def decode_onehot(row: dict, codes: list[str]) -> str:
    """Return the single code whose column is 1 in a one-hot row, or raise BadRow."""
    hot = []
    for code in codes:
        value = row.get(code, "")
        try:
            number = float(value) if value != "" else 0.0
        except ValueError:
            raise BadRow(f"one-hot column {code} holds {value!r}, not a number") from None
        if number not in (0.0, 1.0):
            raise BadRow(f"one-hot column {code} holds {value!r}, expected 0 or 1")
        if number == 1.0:
            hot.append(code)
    if len(hot) != 1:
        raise BadRow(f"one-hot row has {len(hot)} ones ({', '.join(hot) or 'none'}), expected exactly one")
    return hot[0]
