"""Contrasts read off the joint bootstrap: deltas vs the real-only arm and the factor effects (PROTOCOL rule 9).

Every contrast is a mean of paired unit differences, recomputed inside each replicate, so its interval
carries test-set, seed and generator-instance variability together.
"""
from __future__ import annotations

import numpy as np

from .components import Parts, combine, label_shares
from .joint import INTERVAL, JointBootstrap
from .stats import KEY_METRICS, bootstrap_p, holm, interval, undefined_share

DELTA_METRICS = ("mel_f1", "macro_f1", "mel_roc_auc")
MIN_PAIRS = 5
PIPELINES = ("basic", "advanced")
GENERATORS = ("stylegan2_ada", "ddpm")  # generator effect = ddpm - stylegan2_ada


def _n_cells(jb: JointBootstrap, unit: tuple) -> int:
    return jb.n_seeds[unit] * jb.n_instances[unit]


def pair_parts(jb: JointBootstrap, metric: str, pairs: list[tuple[tuple, tuple]]) -> Parts:
    """The parts of (second - first) for each pair, one row per pair: a seed or instance label shared by
    both sides cancels in every replicate."""
    idx = jb.unit_index()
    a = np.array([idx[p[0]] for p in pairs])
    b = np.array([idx[p[1]] for p in pairs])
    return jb.parts[metric].take(b) - jb.parts[metric].take(a)


def contrast(jb: JointBootstrap, metric: str, pairs: list[tuple[tuple, tuple]],
             shares: tuple[float, float] | None = None) -> np.ndarray:
    """Mean over ``pairs`` of (second - first) unit values, per replicate (column 0: the estimate); the label
    shares are pooled over the pairs unless the caller pools them over a larger family (``shares``)."""
    diffs = pair_parts(jb, metric, pairs)
    shares = label_shares(diffs) if shares is None else shares
    return combine(diffs.mean(), jb.levels([u for pair in pairs for u in pair]), shares,
                   image_inflation=jb.image_inflation)


def resampled(jb: JointBootstrap, units: list[tuple]) -> str:
    """What an interval over ``units`` resampled, in words (effects.csv and summary.json say it per row)."""
    seeds = min((jb.n_seeds[u] for u in units), default=0)
    text = f"test clusters within class; {seeds} classifier-seed labels"
    synthetic = [jb.n_instances[u] for u in units if u[1].startswith("synthetic")]
    if synthetic and min(synthetic) > 1:
        text += f"; {min(synthetic)} generator-instance labels"
    elif synthetic:
        text += "; 1 generator instance (its variability not estimable, not in the interval)"
    return text


SINGLE = "single instance"
SINGLE_WHY = ("1 trained instance per generator: the generator's own variability cannot be estimated; "
              "set [generate] seeds")


def effect_record(factor: str, metric: str, name: str, values: np.ndarray | None, n_pairs: int,
                  why: str = "", over: str = "") -> dict:
    """One effect: estimate, percentile interval, pairs, what was resampled and whether the data can support it."""
    rec = {"factor": factor, "metric": metric, "contrast": name, "n_pairs": n_pairs, "effect": None,
           "ci": [None, None], "interval": INTERVAL, "resampled": over}
    if values is None or n_pairs == 0:
        return {**rec, "n_pairs": 0, "status": "missing", "why": why or "no matched cells"}
    rec["effect"], rec["ci"] = interval(values)
    rec["undefined_share"] = undefined_share(values)
    rec["_replicates"] = values
    lo, hi = rec["ci"]
    if rec["effect"] is None or lo is None:
        rec["status"] = "missing"
        rec["why"] = "undefined on this test set"
    elif n_pairs < MIN_PAIRS or hi - lo <= 1e-12:
        rec["status"] = "insufficient"
        rec["why"] = f"{n_pairs} pairs" if n_pairs < MIN_PAIRS else "degenerate (zero-width) interval"
    else:
        rec["status"] = "ok"
    return rec


def _paired(jb: JointBootstrap, metric: str, factor: str, name: str, pairs: list, why: str) -> dict:
    if not pairs:
        return effect_record(factor, metric, name, None, 0, why)
    n_pairs = sum(min(_n_cells(jb, a), _n_cells(jb, b)) for a, b in pairs)
    over = resampled(jb, [u for pair in pairs for u in pair])
    return effect_record(factor, metric, name, contrast(jb, metric, pairs), n_pairs, over=over)


def single_instance(jb: JointBootstrap) -> bool:
    """True when some (pipeline, generator) of the study was trained only once."""
    return any(n < 2 for u, n in jb.n_instances.items() if u[1].startswith("synthetic"))


def _single(rec: dict) -> dict:
    if rec["status"] == "missing":
        return rec
    return {**rec, "status": SINGLE, "why": SINGLE_WHY}


def preprocessing_effect(jb: JointBootstrap, metric: str) -> dict:
    """advanced - basic over matched (arm, model); over the arms without generated images when a generator
    was trained once (its single instance's luck would otherwise enter the preprocessing effect unmeasured)."""
    a, b = PIPELINES
    units = set(jb.units)
    pairs = [(u, (b, *u[1:])) for u in jb.units if u[0] == a and (b, *u[1:]) in units]
    name = f"{b} - {a}"
    if single_instance(jb):
        pairs = [p for p in pairs if not p[0][1].startswith("synthetic")]
        name += " (arms without generated images)"
    return _paired(jb, metric, "preprocessing", name, pairs, "needs both basic and advanced pipelines")


def generator_effect(jb: JointBootstrap, metric: str) -> dict:
    """synthetic_ddpm - synthetic_stylegan2_ada over matched (pipeline, model, dose)."""
    a, b = (f"synthetic_{g}" for g in GENERATORS)
    units = set(jb.units)
    pairs = []
    for u in jb.units:
        if u[1].split(" ")[0] == a:
            partner = (u[0], u[1].replace(a, b, 1), u[2])
            if partner in units:
                pairs.append((u, partner))
    rec = _paired(jb, metric, "generator", f"{b} - {a}", pairs,
                  "needs both synthetic_stylegan2_ada and synthetic_ddpm arms")
    return _single(rec) if single_instance(jb) else rec


def architecture_effects(jb: JointBootstrap, metric: str, reference: str) -> list[dict]:
    """model - reference over matched (pipeline, arm), for every other model (no selection on test results)."""
    units = set(jb.units)
    models = sorted({u[2] for u in jb.units} - {reference})
    out = []
    for model in models:
        pairs = [((u[0], u[1], reference), u) for u in jb.units if u[2] == model and (u[0], u[1], reference) in units]
        out.append(_paired(jb, metric, "architecture", f"{model} - {reference}", pairs,
                           f"needs the reference model {reference}"))
    return out


def comparison(gen: dict, pre: dict) -> dict:
    """|generator| - |preprocessing| per replicate: does the generator matter more than preprocessing?"""
    name = "|generator| - |preprocessing|"
    if gen["status"] == "missing" or pre["status"] == "missing":
        return effect_record("generator_vs_preprocessing", gen["metric"], name, None, 0,
                             "needs both the generator and the preprocessing effect")
    values = np.abs(gen["_replicates"]) - np.abs(pre["_replicates"])
    rec = effect_record("generator_vs_preprocessing", gen["metric"], name, values, min(gen["n_pairs"], pre["n_pairs"]),
                        over=gen["resampled"])
    return _single(rec) if gen["status"] == SINGLE else rec


def factor_effects(jb: JointBootstrap, reference: str) -> list[dict]:
    """Per key metric: generator, preprocessing, their comparison, and every architecture contrast."""
    effects = []
    for metric in KEY_METRICS:
        gen, pre = generator_effect(jb, metric), preprocessing_effect(jb, metric)
        effects += [gen, pre, comparison(gen, pre), *architecture_effects(jb, metric, reference)]
    return effects


def delta_records(jb: JointBootstrap) -> list[dict]:
    """Each arm minus the real-only arm (same pipeline and model, pooled over seeds), with raw and Holm p."""
    units = set(jb.units)
    pairs = [((u[0], "real", u[2]), u) for u in jb.units if u[1] != "real" and (u[0], "real", u[2]) in units]
    arms = {u[1] for _, u in pairs}  # the label share pooled over the rows of one arm (pipelines x models)
    shares = {(arm, m): label_shares(pair_parts(jb, m, [p for p in pairs if p[1][1] == arm]))
              for arm in arms for m in DELTA_METRICS}
    rows = []
    for base, u in pairs:
        row = {"pipeline": u[0], "arm": u[1], "model": u[2], "n_seeds": jb.n_seeds[u], "n_instances": jb.n_instances[u],
               "resampled": resampled(jb, [base, u]),
               "status": SINGLE if u[1].startswith("synthetic") and jb.n_instances[u] < 2 else "ok"}
        for metric in DELTA_METRICS:
            values = contrast(jb, metric, [(base, u)], shares[(u[1], metric)])
            est, ci = interval(values)
            row[metric] = {"delta": est, "ci": ci, "p": bootstrap_p(values), "undefined_share": undefined_share(values)}
        rows.append(row)
    flat = [(r, m) for r in rows for m in DELTA_METRICS]
    for (r, m), adj in zip(flat, holm([r[m]["p"] for r, m in flat])):
        r[m]["p_holm"] = adj
    return rows


def public(effects: list[dict]) -> list[dict]:
    """Effects without their replicate arrays (for summary.json)."""
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in effects]
