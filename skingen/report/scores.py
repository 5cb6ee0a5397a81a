"""Load every finished classifier cell's predictions onto the study's one test set, with its clusters."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data.classes import metric_target
from ..data.tables import read_table
from ..errors import UserError
from ..metrics.predictions import prediction_classes, read_predictions
from .collect import Results
from .joint import CellScores, StudyScores

log = logging.getLogger(__name__)


def test_clusters(res: Results) -> dict[str, str]:
    """image_id -> near-duplicate group id (contains lesion_id) from the study's split.csv."""
    splits = [c for c in res.of_stage("split") if res.states[c.key] == "done"]
    if not splits:
        return {}
    path = res.folder(splits[0]) / "split.csv"
    _, rows = read_table(path, ("image_id", "lesion_id"))
    return {r["image_id"]: r.get("group_id") or r["lesion_id"] for r in rows}


def _align(path: Path, ids: list[str], order: dict[str, int], prob: np.ndarray) -> np.ndarray:
    if set(ids) != set(order) or len(ids) != len(order):
        raise UserError(f"{path}: scores a different set of test images than the study's other cells; every cell "
                        "must be scored on the one real test split (re-run that cell)")
    out = np.empty_like(prob)
    out[[order[i] for i in ids]] = prob
    return out


def study_scores(results: list[Results], rows: list[dict]) -> StudyScores | None:
    """The test labels, clusters and every row's probabilities, aligned to one image order; None if no cell."""
    done = [r for r in rows if r["metrics"] is not None]
    if not done:
        return None
    clusters: dict[str, str] = {}
    for res in results:
        clusters.update(test_clusters(res))
    ref_ids = y = lesions = order = names = None
    cells = []
    for r in done:
        path = Path(r["train_folder"]) / "predictions.csv"
        ids, lesion_ids, labels, prob = read_predictions(path)
        if names is not None and prediction_classes(path) != names:
            raise UserError(f"{path}: classes {list(prediction_classes(path))} differ from the study's other cells' "
                            f"{list(names)}; re-run that cell")
        if order is None:
            names = prediction_classes(path)
            ref_ids, y, lesions = ids, labels, lesion_ids
            order = {i: k for k, i in enumerate(ids)}
        cells.append(CellScores(r["pipeline"], r["arm"], r["model"], int(r["seed"]), _align(path, ids, order, prob),
                                r.get("generator"), r.get("instance"), float(r.get("dose", 1.0))))
    groups = [clusters.get(i, lesion) for i, lesion in zip(ref_ids, lesions)]
    _, cluster = np.unique(np.array(groups, dtype=object).astype(str), return_inverse=True)
    target = metric_target(names, done[0].get("target_class", "MEL"))
    return StudyScores(y, cluster.ravel(), cells, target, names)
