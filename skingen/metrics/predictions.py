"""predictions.csv (image_id, lesion_id, label, prob_<class>...) -> metrics.json with CIs and paired deltas."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import write_csv
from ..data.classes import CLASS_INDEX, CLASS_NAMES
from ..data.tables import read_table
from ..errors import UserError
from .bootstrap import paired_deltas, with_intervals

PRED_COLUMNS = ("image_id", "lesion_id", "label") + tuple(f"prob_{c}" for c in CLASS_NAMES)
PAIRED_KEYS = ("mel_f1", "macro_f1", "mel_roc_auc", "roc_auc", "balanced_accuracy", "mcc")


def write_predictions(path: str | os.PathLike, image_ids, lesion_ids, labels, prob: np.ndarray) -> Path:
    """Write predictions.csv atomically (labels as class names, probabilities at full float32 precision)."""
    rows = ({"image_id": i, "lesion_id": les, "label": CLASS_NAMES[int(y)],
             **{f"prob_{c}": f"{float(p[k]):.9g}" for k, c in enumerate(CLASS_NAMES)}}
            for i, les, y, p in zip(image_ids, lesion_ids, labels, prob))
    write_csv(path, PRED_COLUMNS, rows)
    return Path(path)


def read_predictions(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(image ids, lesion ids, labels, probabilities) from a predictions.csv, validated."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such predictions file")
    _, rows = read_table(path, PRED_COLUMNS)
    if not rows:
        raise UserError(f"{path}: no predictions")
    try:
        y = np.array([CLASS_INDEX[r["label"]] for r in rows])
        prob = np.array([[float(r[f"prob_{c}"]) for c in CLASS_NAMES] for r in rows])
    except (KeyError, ValueError) as exc:
        raise UserError(f"{path}: bad label or probability ({exc}); re-create it") from None
    return [r["image_id"] for r in rows], [r["lesion_id"] for r in rows], y, prob


def evaluate_predictions(path: str | os.PathLike, baseline: str | os.PathLike | None = None,
                         n_boot: int = 1000, seed: int = 0) -> dict:
    """One cell's metrics with lesion-bootstrap CIs; with ``baseline``, paired deltas (arm - baseline).

    The study report does not read these intervals: it recomputes every interval in one joint bootstrap."""
    ids, lesions, y, prob = read_predictions(path)
    out = with_intervals(y, prob, lesions, n_boot=n_boot, seed=seed)
    if baseline is not None:
        b_ids, _, b_y, b_prob = read_predictions(baseline)
        pos = {i: k for k, i in enumerate(b_ids)}
        if set(pos) != set(ids):
            raise UserError(f"{path} and {baseline} score different test images; paired comparisons need "
                            "the same test split")
        order = np.array([pos[i] for i in ids])
        deltas = paired_deltas(y, b_prob[order], prob, lesions, n_boot=n_boot, seed=seed)
        out["paired_vs_baseline"] = {"baseline": str(baseline), **{k: deltas[k] for k in PAIRED_KEYS}}
    return out
