"""Tidy exports for analysis scripts: ``tables/cells_long.csv`` and ``effects.csv`` (analysis/README.md)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..atomic import write_csv
from ..metrics.diagnostic import METRIC_KEYS
from .joint import LOG_POOLED, JointBootstrap, StudyScores

LONG_COLUMNS = ("study", "pipeline", "arm", "dose", "generator_seed", "model", "seed", "metric", "value")
EFFECT_COLUMNS = ("factor", "metric", "contrast", "effect", "ci_lo", "ci_hi", "n_pairs", "status", "interval",
                  "resampled", "undefined_share", "simultaneous")


def _value(v: float) -> str:
    return "" if np.isnan(v) else f"{v:.9g}"


def _arm_without_dose(label: str) -> str:
    """The arm of a table label ('oversample x1' -> 'oversample'): cells_long.csv keeps the dose in its own column."""
    return re.sub(r" x[0-9.e+-]+$", "", label)


def write_cells_long(path: Path, study: str, scores: StudyScores, jb: JointBootstrap) -> Path:
    """One row per classifier cell x metric (each cell is one seed; test-set point estimates)."""
    rows = []
    for k, c in enumerate(scores.cells):
        for m in METRIC_KEYS:
            v = jb.cell_values[m][k, 0]
            rows.append({"study": study, "pipeline": c.pipeline, "arm": _arm_without_dose(c.arm), "dose": f"{c.dose:g}",
                         "generator_seed": "" if c.instance is None else c.instance, "model": c.model,
                         "seed": c.seed, "metric": m, "value": _value(np.exp(v) if m in LOG_POOLED else v)})
    write_csv(path, LONG_COLUMNS, rows)
    return path


def write_effects(path: Path, effects: list[dict]) -> Path:
    """Every factor effect with its interval (the rows of the factor-effects table, machine-readable)."""
    rows = [{"factor": e["factor"], "metric": e["metric"], "contrast": e["contrast"],
             "effect": "" if e["effect"] is None else f"{e['effect']:.9g}",
             "ci_lo": "" if e["ci"][0] is None else f"{e['ci'][0]:.9g}",
             "ci_hi": "" if e["ci"][1] is None else f"{e['ci'][1]:.9g}",
             "n_pairs": e["n_pairs"], "status": e["status"], "interval": e["interval"],
             "resampled": e.get("resampled", ""),
             "undefined_share": f"{e['undefined_share']:.4g}" if "undefined_share" in e else "",
             "simultaneous": e.get("simultaneous", "")} for e in effects]
    write_csv(path, EFFECT_COLUMNS, rows)
    return path
