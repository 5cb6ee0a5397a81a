"""Aggregation over seeds and factor effects (difference of means over the other factors, with CIs)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy import stats

KEY_METRICS = ("macro_f1", "mel_f1", "mel_roc_auc", "balanced_accuracy")


def mean_ci(values: list[float], single_ci: list | None) -> tuple[float, float | None, float | None]:
    """Mean over seeds with a t-interval; with one seed, that cell's bootstrap interval."""
    vals = np.array([v for v in values if v is not None and not np.isnan(v)], float)
    if not len(vals):
        return float("nan"), None, None
    if len(vals) == 1:
        lo, hi = (single_ci or [None, None])
        return float(vals[0]), lo, hi
    half = stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals))
    return float(vals.mean()), float(vals.mean() - half), float(vals.mean() + half)


def aggregate(rows: list[dict], metric: str) -> dict[tuple, tuple]:
    """(pipeline, arm, model) -> (mean, lo, hi, n_seeds) of ``metric``."""
    groups = defaultdict(list)
    for r in rows:
        if r["metrics"] is not None:
            groups[(r["pipeline"], r["arm"], r["model"])].append(r["metrics"])
    out = {}
    for key, ms in groups.items():
        mean, lo, hi = mean_ci([m[metric] for m in ms], ms[0].get(f"{metric}_ci"))
        out[key] = (mean, lo, hi, len(ms))
    return out


def paired_effect(rows: list[dict], metric: str, factor: str, a: str, b: str, seed: int = 0,
                  n_boot: int = 2000) -> dict:
    """Effect of ``factor`` (b minus a) on ``metric``: mean paired difference over every matching
    combination of the other factors, with a bootstrap CI over those pairs."""
    others = [f for f in ("pipeline", "arm", "model", "seed") if f != factor]
    side = {a: {}, b: {}}
    for r in rows:
        if r["metrics"] is not None and r[factor] in side:
            side[r[factor]][tuple(r[f] for f in others)] = r["metrics"][metric]
    common = sorted(set(side[a]) & set(side[b]))
    diffs = np.array([side[b][k] - side[a][k] for k in common], float)
    diffs = diffs[~np.isnan(diffs)]
    if not len(diffs):
        return {"metric": metric, "factor": factor, "contrast": f"{b} - {a}", "n_pairs": 0, "effect": None,
                "ci": [None, None]}
    rng = np.random.default_rng(seed)
    boots = diffs[rng.integers(0, len(diffs), (n_boot, len(diffs)))].mean(1)
    return {"metric": metric, "factor": factor, "contrast": f"{b} - {a}", "n_pairs": int(len(diffs)),
            "effect": float(diffs.mean()), "ci": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]}


def architecture_effect(rows: list[dict], metric: str, seed: int = 0, n_boot: int = 2000) -> dict:
    """Best minus worst model on ``metric``, paired over the other factors, with a bootstrap CI."""
    by_model = defaultdict(dict)
    for r in rows:
        if r["metrics"] is not None:
            by_model[r["model"]][(r["pipeline"], r["arm"], r["seed"])] = r["metrics"][metric]
    if len(by_model) < 2:
        return {"metric": metric, "factor": "model", "contrast": "n/a", "n_pairs": 0, "effect": None, "ci": [None, None]}
    means = {m: np.nanmean(list(v.values())) for m, v in by_model.items()}
    best, worst = max(means, key=means.get), min(means, key=means.get)
    effect = paired_effect(rows, metric, "model", worst, best, seed, n_boot)
    effect["note"] = "best minus worst model, both picked from these results (optimistic)"
    return effect


def _abs_bounds(effect: dict) -> tuple[float, float]:
    """Bounds of |effect| implied by its CI (0 as the lower bound when the CI spans 0)."""
    lo, hi = effect["ci"]
    if lo >= 0:
        return lo, hi
    if hi <= 0:
        return -hi, -lo
    return 0.0, max(-lo, hi)


def verdict(effects: list[dict], metric: str = "macro_f1") -> str:
    """One sentence from the effects on ``metric``: which factor is larger and whether intervals separate."""
    have = [e for e in effects if e["metric"] == metric and e["effect"] is not None]
    missing = sorted({e["factor"] for e in effects if e["metric"] == metric and e["effect"] is None})
    if not have:
        return f"No factor effect on {metric} could be estimated (missing: {', '.join(missing) or 'all'})."
    ranked = sorted(have, key=lambda e: abs(e["effect"]), reverse=True)
    top = ranked[0]

    def describe(e: dict) -> str:
        zero = e["ci"][0] <= 0 <= e["ci"][1]
        return (f"{e['factor']} ({e['contrast']}: {e['effect']:+.3f}, 95% CI [{e['ci'][0]:+.3f}, {e['ci'][1]:+.3f}]"
                f"{', includes 0' if zero else ''})")

    text = f"On {metric}, the largest effect is {describe(top)}"
    if len(ranked) > 1:
        nxt = ranked[1]
        separate = _abs_bounds(top)[0] > _abs_bounds(nxt)[1]
        text += f"; next is {describe(nxt)}; the intervals {'separate' if separate else 'overlap'}"
    if missing:
        text += f"; not estimable here: {', '.join(missing)}"
    return text + "."
