"""Class sets: the study's classes and the one explicit table mapping every source's codes onto them.

Presets ``paper5`` (the default: NV, BCC, BKL, MEL, SCC), ``ham7`` (HAM10000's seven) and
``isic2019`` (ISIC 2019's eight), or a TOML file::

    name = "mine"                      # optional; default: the file's stem
    classes = ["NV", "MEL", "BCC"]     # the order is the label index order
    [map]                              # source code (any case) -> class; a class's own name maps to it
    nv = "NV"
    mel = "MEL"
    bkl = "NV"

Known codes of HAM10000, ISIC 2018/2019 and MILK10k that the table does not map are dropped and
counted; unknown codes are quarantined.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

# Every code each dataset uses (lower-case), so a missing class can name the dataset that adds it.
DATASET_CODES: dict[str, frozenset[str]] = {
    "HAM10000": frozenset({"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}),
    "MILK10k": frozenset({"akiec", "bcc", "ben_oth", "bkl", "df", "inf", "mal_oth", "mel", "nv", "sccka", "vasc"}),
    "ISIC 2019": frozenset({"mel", "nv", "bcc", "ak", "bkl", "df", "vasc", "scc", "unk"}),
}
DATASET_OF_SOURCE = {"ham10000": "HAM10000", "isic2018": "HAM10000", "isic2019": "ISIC 2019", "milk10k": "MILK10k"}
# ``scc`` in HAM layout exists only in the phantom dataset (real HAM10000 has no SCC).
KNOWN_CODES: frozenset[str] = frozenset().union(*DATASET_CODES.values(), {"scc"})
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ClassSet:
    """Classes in label-index order and the source code -> class table; ``path`` is its TOML file, if any."""

    name: str
    classes: tuple[str, ...]
    mapping: dict[str, str] = field(default_factory=dict)
    path: str = ""

    def __post_init__(self) -> None:
        full = {c.lower(): c for c in self.classes}
        full.update({k.strip().lower(): v for k, v in self.mapping.items()})
        object.__setattr__(self, "mapping", full)

    @property
    def index(self) -> dict[str, int]:
        """class name -> label index."""
        return {c: i for i, c in enumerate(self.classes)}

    def map(self, code: str) -> str | None:
        """The class of a source code; None for a known code outside the set; KeyError for an unknown code."""
        key = code.strip().lower()
        if key in self.mapping:
            return self.mapping[key]
        if key in KNOWN_CODES:
            return None
        raise KeyError(code)

    def providers(self, cls: str, exclude: set[str] = frozenset()) -> list[str]:
        """Datasets (not in ``exclude``) that have a code mapped to ``cls``."""
        codes = {k for k, v in self.mapping.items() if v == cls}
        return [d for d, known in DATASET_CODES.items() if known & codes and d not in exclude]

    def missing_note(self, cls: str, sources: set[str]) -> str:
        """'SCC: 0 images — MILK10k or ISIC 2019 provides SCC' for a class no ingested image has."""
        names = self.providers(cls, {DATASET_OF_SOURCE.get(s, s) for s in sources})
        if not names:
            return (f"{cls}: 0 images — no other known dataset provides {cls}; add images of it or drop it from "
                    "the class set")
        return f"{cls}: 0 images — {' or '.join(names)} provides {cls}"

    def code_for(self, cls: str) -> str:
        """A HAM-layout ``dx`` code that maps to ``cls`` (its own name, lower-cased, unless mapped elsewhere)."""
        codes = [k for k, v in self.mapping.items() if v == cls]
        return cls.lower() if cls.lower() in codes else codes[0]

    def to_config(self) -> str | dict:
        """What a study cell records: the preset's name, or the whole table of a file's set."""
        if self.name in PRESETS and PRESETS[self.name] == self:
            return self.name
        return {"name": self.name, "classes": list(self.classes), "mapping": dict(sorted(self.mapping.items()))}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassSet) and (self.classes, self.mapping) == (other.classes, other.mapping)

    def __hash__(self) -> int:
        return hash(self.classes)


def _check(cs: ClassSet, where: str) -> ClassSet:
    if not cs.classes:
        raise UserError(f"{where}: classes is empty; list the study's classes, e.g. classes = [\"NV\", \"MEL\"]")
    bad = [c for c in cs.classes if not isinstance(c, str) or not NAME.match(c)]
    if bad:
        raise UserError(f"{where}: class name {bad[0]!r} invalid; use letters, digits and '_' (it names CSV columns)")
    if len(set(cs.classes)) != len(cs.classes) or len({c.lower() for c in cs.classes}) != len(cs.classes):
        raise UserError(f"{where}: classes {list(cs.classes)} repeat a name; list each class once")
    stray = sorted(f"{k} = {v!r}" for k, v in cs.mapping.items() if v not in cs.classes)
    if stray:
        raise UserError(f"{where}: [map] {stray[0]} names no class of {list(cs.classes)}; map it to one of them")
    return cs


PRESETS: dict[str, ClassSet] = {
    "paper5": ClassSet("paper5", ("NV", "BCC", "BKL", "MEL", "SCC"), {"sccka": "SCC"}),
    "ham7": ClassSet("ham7", ("AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"), {"ak": "AKIEC"}),
    "isic2019": ClassSet("isic2019", ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"),
                         {"akiec": "AK", "sccka": "SCC"}),
}
DEFAULT = "paper5"
PAPER5 = PRESETS[DEFAULT]


def load_class_set(spec: str | os.PathLike | dict | ClassSet | None = None) -> ClassSet:
    """A preset by name, a TOML file, a recorded table (``to_config()``'s dict) or a ClassSet; None = paper5."""
    if spec is None or spec == "":
        return PAPER5
    if isinstance(spec, ClassSet):
        return spec
    if isinstance(spec, dict):
        return _check(ClassSet(str(spec.get("name", "custom")), tuple(spec.get("classes", ())),
                               dict(spec.get("mapping", {}))), "class set")
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    path = Path(spec)
    if path.suffix != ".toml":
        raise UserError(f"--classes {str(spec)!r} unknown; use {', '.join(PRESETS)} or a FILE.toml with classes "
                        "and a [map] table")
    from ..config import load_toml

    raw = load_toml(path)
    unknown = sorted(set(raw) - {"name", "classes", "map"})
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: name, classes, [map]")
    if not isinstance(raw.get("classes"), list) or not isinstance(raw.get("map", {}), dict):
        raise UserError(f"{path}: needs classes = [\"NV\", ...] (a list) and an optional [map] table of "
                        "code = \"CLASS\"")
    mapping = {str(k): v for k, v in raw.get("map", {}).items()}
    return _check(ClassSet(str(raw.get("name", path.stem)), tuple(raw["classes"]), mapping, str(path.resolve())),
                  str(path))


def metric_target(class_names: tuple[str, ...] | list[str], target_class: str = "MEL") -> int:
    """Index of the class the one-vs-rest ('mel_*') metrics score: MEL when the set has it, else target_class."""
    names = list(class_names)
    for cls in ("MEL", target_class):
        if cls in names:
            return names.index(cls)
    raise UserError(f"classes {names} have neither MEL nor target_class {target_class!r}; set classify.target_class "
                    "to one of them")


def shard_classes(reader) -> tuple[str, ...]:
    """The class names of a shard (its ``class_names`` attribute; paper5 for shards without one)."""
    return tuple(str(c) for c in reader.attrs.get("class_names", CLASS_NAMES))


# The default set, for code and tests that predate class sets.
CLASS_NAMES: tuple[str, ...] = PAPER5.classes
CLASS_INDEX = PAPER5.index
TO_STUDY_CLASS: dict[str, str] = dict(PAPER5.mapping)
DROPPED_CODES: frozenset[str] = KNOWN_CODES - set(TO_STUDY_CLASS)


def map_label(code: str) -> str | None:
    """The paper5 class of a source code (None: known code outside it; KeyError: unknown code)."""
    return PAPER5.map(code)
