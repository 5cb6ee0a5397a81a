"""The study's five classes and the one explicit table mapping every source's codes onto them."""
from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("NV", "BCC", "BKL", "MEL", "SCC")
CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}

# Source code (lower-cased) -> study class. HAM10000 dx, ISIC 2018/2019 and MILK10k one-hot columns.
# MILK10k's SCCKA (invasive SCC + keratoacanthoma) maps to SCC; `scc` in HAM layout exists only in
# the phantom dataset (real HAM10000 has no SCC).
TO_STUDY_CLASS: dict[str, str] = {
    "nv": "NV",
    "bcc": "BCC",
    "bkl": "BKL",
    "mel": "MEL",
    "scc": "SCC",
    "sccka": "SCC",
}

# Known codes outside the study: dropped and counted, never quarantined.
DROPPED_CODES: frozenset[str] = frozenset(
    {"akiec", "ak", "df", "vasc", "unk", "ben_oth", "inf", "mal_oth"}
)


def map_label(code: str) -> str | None:
    """Return the study class for a source code, None for a known out-of-study code.

    Raises KeyError for a code nobody knows, so callers can quarantine the row.
    """
    key = code.strip().lower()
    if key in TO_STUDY_CLASS:
        return TO_STUDY_CLASS[key]
    if key in DROPPED_CODES:
        return None
    raise KeyError(code)
