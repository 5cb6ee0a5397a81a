"""predictions.csv (image_id, lesion_id, label, prob_<class>...) -> metrics.json with CIs and paired deltas.

The ``prob_<class>`` columns, in label-index order, name the study's classes: readers take them from the header.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import write_csv
from ..data.classes import CLASS_NAMES, metric_target
from ..data.tables import read_table
from ..errors import UserError
from .bootstrap import paired_deltas, with_intervals

ID_COLUMNS = ("image_id", "lesion_id", "label")
PRED_COLUMNS = ID_COLUMNS + tuple(f"prob_{c}" for c in CLASS_NAMES)  # paper5's
PAIRED_KEYS = ("mel_f1", "macro_f1", "mel_roc_auc", "roc_auc", "balanced_accuracy", "mcc")


def write_predictions(path: str | os.PathLike, image_ids, lesion_ids, labels, prob: np.ndarray,
                      class_names: tuple[str, ...] | list[str] = CLASS_NAMES) -> Path:
    """Write predictions.csv atomically (labels as class names, probabilities at full float32 precision)."""
    names = list(class_names)
    if prob.shape[1] != len(names):
        raise ValueError(f"{prob.shape[1]} probability columns for {len(names)} classes {names}")
    rows = ({"image_id": i, "lesion_id": les, "label": names[int(y)],
             **{f"prob_{c}": f"{float(p[k]):.9g}" for k, c in enumerate(names)}}
            for i, les, y, p in zip(image_ids, lesion_ids, labels, prob))
    write_csv(path, ID_COLUMNS + tuple(f"prob_{c}" for c in names), rows)
    return Path(path)


def prediction_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """The class names of a predictions.csv, from its ``prob_<class>`` header columns."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such predictions file")
    header, _ = read_table(path, ID_COLUMNS)
    names = tuple(c.removeprefix("prob_") for c in header if c.startswith("prob_"))
    if len(names) < 2:
        raise UserError(f"{path}: fewer than two prob_<class> columns; re-create it with 'skingen classify train'")
    return names


def read_predictions(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(image ids, lesion ids, labels, probabilities) from a predictions.csv, validated; the class order is
    the header's (``prediction_classes``)."""
    path = Path(path)
    names = prediction_classes(path)
    _, rows = read_table(path, ID_COLUMNS)
    if not rows:
        raise UserError(f"{path}: no predictions")
    index = {c: k for k, c in enumerate(names)}
    try:
        y = np.array([index[r["label"]] for r in rows])
        prob = np.array([[float(r[f"prob_{c}"]) for c in names] for r in rows])
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: bad label or probability ({exc}); re-create it") from None
    return [r["image_id"] for r in rows], [r["lesion_id"] for r in rows], y, prob


def evaluate_predictions(path: str | os.PathLike, baseline: str | os.PathLike | None = None,
                         n_boot: int = 1000, seed: int = 0, target_class: str = "MEL") -> dict:
    """One cell's metrics with lesion-bootstrap CIs; with ``baseline``, paired deltas (arm - baseline). The
    ``mel_*`` metrics score MEL, or ``target_class`` in a class set without MEL.

    The study report does not read these intervals: it recomputes every interval in one joint bootstrap."""
    ids, lesions, y, prob = read_predictions(path)
    names = prediction_classes(path)
    target = metric_target(names, target_class)
    out = with_intervals(y, prob, lesions, n_boot=n_boot, seed=seed, target=target)
    out.update({"classes": list(names), "target_class": names[target]})
    if baseline is not None:
        if prediction_classes(baseline) != names:
            raise UserError(f"{path} and {baseline} have different classes; compare cells of one study")
        b_ids, _, b_y, b_prob = read_predictions(baseline)
        pos = {i: k for k, i in enumerate(b_ids)}
        if set(pos) != set(ids):
            raise UserError(f"{path} and {baseline} score different test images; paired comparisons need "
                            "the same test split")
        order = np.array([pos[i] for i in ids])
        deltas = paired_deltas(y, b_prob[order], prob, lesions, n_boot=n_boot, seed=seed, target=target)
        out["paired_vs_baseline"] = {"baseline": str(baseline), **{k: deltas[k] for k in PAIRED_KEYS}}
    return out
