"""The protocol audit: checks computed from the results themselves, each with pass/fail and evidence."""
from __future__ import annotations

import hashlib
import json

from ..data.shards import ShardReader
from ..data.split import lesion_overlap
from ..data.tables import read_table
from .collect import Results
from .generative import generator_checks, starting_weights


def _check(name: str, ok: bool | None, evidence: str) -> dict:
    return {"check": name, "result": "n/a" if ok is None else ("pass" if ok else "FAIL"), "evidence": evidence}


def class_check(split_json) -> dict:
    """The study's classes from split.json; result 'note' naming each class of the set dropped for having no images."""
    info = json.loads(split_json.read_text()) if split_json.is_file() else {}
    classes, dropped = info.get("classes", []), info.get("dropped_classes", {})
    name = info.get("class_set", "paper5")
    evidence = f"{len(classes)} classes of class set {name if isinstance(name, str) else name.get('name')}: " + \
        ", ".join(classes) + "".join(f"; dropped {note}" for note in dropped.values())
    return {"check": "classes of the study", "result": "note" if dropped else "pass", "evidence": evidence}


def _split_checks(res: Results) -> list[dict]:
    out = []
    for cell in res.of_stage("split"):
        if res.states[cell.key] != "done":
            out.append(_check("lesion overlap across splits", None, f"split cell {res.reason(cell)}"))
            continue
        _, rows = read_table(res.folder(cell) / "split.csv", ("image_id", "lesion_id", "split", "group_id"))
        out.append(class_check(res.folder(cell) / "split.json"))
        by_lesion, by_group = lesion_overlap(rows), lesion_overlap(rows, key="group_id")
        out.append(_check("lesion overlap across splits", not by_lesion and not by_group,
                          f"{len(by_lesion)} lesions and {len(by_group)} near-duplicate groups in more than one split "
                          f"({len(rows)} images)"))
    return out


def _test_set_checks(res: Results) -> list[dict]:
    hashes: dict[str, set[str]] = {}
    synthetic_in_test = 0
    train_overlap = 0
    for cell in res.of_stage("train_clf"):
        if res.states[cell.key] != "done":
            continue
        folder = res.folder(cell)
        _, rows = read_table(folder / "predictions.csv", ("image_id",))
        ids = [r["image_id"] for r in rows]
        hashes.setdefault(cell.config["pipeline"], set()).add(hashlib.sha256("\n".join(ids).encode()).hexdigest())
        summary = json.loads((folder / "train_summary.json").read_text())
        train_ids = set(ShardReader(summary["arm"]["real_shard"]).image_ids)
        train_overlap += len(train_ids & set(ids))
        synthetic_in_test += sum(i.startswith("syn") or i.startswith("SYN") for i in ids)
    if not hashes:
        return [_check("one real test set for every cell", None, "no finished classifier cells")]
    same = all(len(h) == 1 for h in hashes.values())
    all_ids = {p: sorted(h)[0][:12] for p, h in hashes.items()}
    return [
        _check("one real test set for every cell", same,
               "test-set hash per pipeline: " + ", ".join(f"{p} {h}" for p, h in all_ids.items())),
        _check("no train image in any test set", train_overlap == 0, f"{train_overlap} overlapping images"),
        _check("synthetic images never in val/test", synthetic_in_test == 0,
               f"{synthetic_in_test} synthetic ids among test predictions; arms add to the train split only"),
    ]


def starting_weights_check(res: Results) -> dict:
    """Each generator's starting weights (result 'note': what the generator effect carries besides architecture)."""
    weights = starting_weights(res)
    if not weights:
        return _check("generator starting weights", None, "this study has no generator cells")
    return {"check": "generator starting weights", "result": "note",
            "evidence": "; ".join(f"{gen}: {w}" for gen, w in weights.items())}


def protocol_audit(res: Results) -> list[dict]:
    """All checks; generator checks are n/a when the study has no generator cells."""
    return (_split_checks(res) + _test_set_checks(res) + [_check(*c) for c in generator_checks(res)]
            + [starting_weights_check(res)])
