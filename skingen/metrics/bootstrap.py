"""Lesion-level bootstrap intervals, paired bootstrap deltas and DeLong's test for correlated AUCs."""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

from .diagnostic import METRIC_KEYS, all_metrics


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
                   seed: int = 0, alpha: float = 0.05) -> dict:
    """Point estimates of every metric plus ``<key>_ci`` percentile intervals over lesion resamples."""
    point = all_metrics(y, prob)
    groups = lesion_groups(lesion_ids)
    rng = np.random.default_rng(seed)
    boots = [all_metrics(y[idx], prob[idx]) for idx in (resample(groups, rng) for _ in range(n_boot))]
    out: dict = {}
    for key in METRIC_KEYS:
        out[key] = point[key]
        out[f"{key}_ci"] = _percentile(boots, key, alpha)
    out.update({"n_images": int(len(y)), "n_lesions": len(groups), "n_boot": n_boot, "bootstrap_seed": seed,
                "ci_level": 1 - alpha})
    return out


def paired_deltas(y: np.ndarray, prob_base: np.ndarray, prob_arm: np.ndarray, lesion_ids: list[str],
                  n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """arm minus base on the same images: delta and paired-bootstrap CI for every metric."""
    base, arm = all_metrics(y, prob_base), all_metrics(y, prob_arm)
    groups = lesion_groups(lesion_ids)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_boot):
        idx = resample(groups, rng)
        a, b = all_metrics(y[idx], prob_base[idx]), all_metrics(y[idx], prob_arm[idx])
        deltas.append({k: b[k] - a[k] for k in METRIC_KEYS})
    return {k: {"delta": arm[k] - base[k], "ci": _percentile(deltas, k, alpha)} for k in METRIC_KEYS}


def _midrank_components(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    # psi(x, y) = 1 if x > y, 0.5 if equal; V10 per positive, V01 per negative
    diff = pos_scores[:, None] - neg_scores[None, :]
    psi = (diff > 0) + 0.5 * (diff == 0)
    return float(psi.mean()), psi.mean(1), psi.mean(0)


def delong(pos: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict:
    """DeLong et al. (1988) test of two correlated ROC-AUCs on the same cases: AUCs, difference, z, p."""
    if pos.all() or not pos.any():
        return {"auc_a": None, "auc_b": None, "delta": None, "z": None, "p": None}
    comps = [_midrank_components(s[pos], s[~pos]) for s in (score_a, score_b)]
    aucs = np.array([c[0] for c in comps])
    v10 = np.stack([c[1] for c in comps])
    v01 = np.stack([c[2] for c in comps])
    s10, s01 = np.cov(v10), np.cov(v01)
    cov = s10 / v10.shape[1] + s01 / v01.shape[1]
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    delta = float(aucs[1] - aucs[0])
    if var <= 0:
        return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "delta": delta, "z": None, "p": None}
    z = delta / np.sqrt(var)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "delta": delta, "z": float(z),
            "p": float(2 * norm.sf(abs(z)))}
