"""One cell's lesion-level bootstrap intervals and paired bootstrap deltas (``skingen classify metrics``).

Per-image DeLong tests are gone: they ignore lesion clustering (PROTOCOL rule 7)."""
from __future__ import annotations

import numpy as np

from .diagnostic import MEL, METRIC_KEYS, all_metrics


def lesion_groups(lesion_ids: list[str]) -> list[np.ndarray]:
    """Image indices per lesion (the bootstrap resamples lesions, not images)."""
    by: dict[str, list[int]] = {}
    for i, lesion in enumerate(lesion_ids):
        by.setdefault(lesion, []).append(i)
    return [np.array(v) for v in by.values()]


def resample(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One bootstrap sample: lesions drawn with replacement, all images of each drawn lesion."""
    picks = rng.integers(0, len(groups), len(groups))
    return np.concatenate([groups[i] for i in picks])


def _percentile(values: list[dict], key: str, alpha: float) -> list[float | None]:
    arr = np.array([v[key] for v in values], float)
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return [None, None]
    return [float(np.quantile(arr, alpha / 2)), float(np.quantile(arr, 1 - alpha / 2))]


def with_intervals(y: np.ndarray, prob: np.ndarray, lesion_ids: list[str], n_boot: int = 1000,
                   seed: int = 0, alpha: float = 0.05, target: int = MEL) -> dict:
    """Point estimates of every metric plus ``<key>_ci`` percentile intervals over lesion resamples
    (``mel_*`` metrics score class ``target``)."""
    point = all_metrics(y, prob, target)
    groups = lesion_groups(lesion_ids)
    rng = np.random.default_rng(seed)
    boots = [all_metrics(y[idx], prob[idx], target) for idx in (resample(groups, rng) for _ in range(n_boot))]
    out: dict = {}
    for key in METRIC_KEYS:
        out[key] = point[key]
        out[f"{key}_ci"] = _percentile(boots, key, alpha)
    out.update({"n_images": int(len(y)), "n_lesions": len(groups), "n_boot": n_boot, "bootstrap_seed": seed,
                "ci_level": 1 - alpha})
    return out


def paired_deltas(y: np.ndarray, prob_base: np.ndarray, prob_arm: np.ndarray, lesion_ids: list[str],
                  n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, target: int = MEL) -> dict:
    """arm minus base on the same images: delta and paired-bootstrap CI for every metric."""
    base, arm = all_metrics(y, prob_base, target), all_metrics(y, prob_arm, target)
    groups = lesion_groups(lesion_ids)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_boot):
        idx = resample(groups, rng)
        a, b = all_metrics(y[idx], prob_base[idx], target), all_metrics(y[idx], prob_arm[idx], target)
        deltas.append({k: b[k] - a[k] for k in METRIC_KEYS})
    return {k: {"delta": arm[k] - base[k], "ci": _percentile(deltas, k, alpha)} for k in METRIC_KEYS}
