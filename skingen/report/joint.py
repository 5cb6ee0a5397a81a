"""The study's one joint hierarchical bootstrap (PROTOCOL rule 7).

Each replicate (a) resamples test clusters (near-duplicate groups, which contain lesions) with
replacement — one draw shared by every cell, (b) resamples classifier seeds within each
(pipeline, arm, model) and instance, and (c) resamples generator instances within each
(pipeline, generator) when the study trained several. Column 0 of every array is the point estimate
(no resampling); columns 1..B are the replicates. Every interval the report prints is read from here.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..metrics.diagnostic import METRIC_KEYS
from ..metrics.weighted import replicate_metrics
from ..progress import progress as progress_bar
from .stats import interval

log = logging.getLogger(__name__)
LOG_POOLED = ("mel_dor",)  # pooled over seeds on the log scale
INTERVAL = "joint hierarchical bootstrap (test clusters, seeds, generator instances), 95 % percentile"


@dataclass(frozen=True)
class CellScores:
    """One classifier cell's test predictions and the factors that place it in the study."""

    pipeline: str
    arm: str
    model: str
    seed: int
    prob: np.ndarray  # (N, C), rows in the study's test-image order
    generator: str | None = None
    instance: int | None = None  # generator seed of the synthetic images it trained on
    dose: float = 1.0

    @property
    def unit(self) -> tuple[str, str, str]:
        """(pipeline, arm, model): the table row this cell belongs to."""
        return self.pipeline, self.arm, self.model


@dataclass
class StudyScores:
    """Every cell of a study scored on the one test set."""

    y: np.ndarray  # (N,) true class indices
    cluster: np.ndarray  # (N,) test-cluster index of each image
    cells: list[CellScores]
    target: int
    class_names: tuple[str, ...] = ()


@dataclass
class JointBootstrap:
    """Per-unit (pipeline, arm, model) metric values: column 0 the estimate, 1..B the replicates."""

    units: list[tuple[str, str, str]]
    values: dict[str, np.ndarray]  # metric -> (U, 1 + B)
    n_seeds: dict[tuple, int]
    n_instances: dict[tuple, int]
    n_boot: int
    seed: int
    n_images: int
    n_clusters: int
    cell_values: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (K, 1 + B), test resampling only
    target_name: str = "MEL"  # the class the one-vs-rest ('mel_*') metrics score

    def unit_index(self) -> dict[tuple, int]:
        """unit -> row."""
        return {u: i for i, u in enumerate(self.units)}

    def summary(self, metric: str) -> dict[tuple, tuple]:
        """unit -> (estimate, lo, hi, n_seeds) of ``metric`` (None bounds when undefined)."""
        out = {}
        for i, u in enumerate(self.units):
            est, (lo, hi) = interval(self.values[metric][i])
            out[u] = (float("nan") if est is None else est, lo, hi, self.n_seeds[u])
        return out


def cluster_weights(cluster: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + B, N) image weights: row 0 all ones, then clusters drawn with replacement (all their images)."""
    n_clusters = int(cluster.max()) + 1
    counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(float)
    counts = np.vstack([np.ones(n_clusters), counts])
    return counts[:, cluster]


def _draws(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + B, n) weights of n units (seeds or instances) in their mean: row 0 all 1/n, then draws with
    replacement. The draws' deviations from 1/n are scaled by sqrt(n / (n - 1)): a plain resample of n
    values has variance (n - 1)/n of the mean's (2/3 with 3 seeds), which would narrow the interval."""
    if n == 1:
        return np.ones((n_boot + 1, 1))
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float) / n
    counts = 1.0 / n + np.sqrt(n / (n - 1)) * (counts - 1.0 / n)
    return np.vstack([np.full(n, 1.0 / n), counts])


def hierarchy_weights(cells: list[CellScores], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(K, 1 + B) weight of each cell in its unit's mean: instance draws x seed draws."""
    instances = defaultdict(set)
    for c in cells:
        if c.generator is not None:
            instances[(c.pipeline, c.generator)].add(c.instance)
    inst_w = {}
    for key in sorted(instances, key=str):
        ids = sorted(instances[key], key=str)
        draws = _draws(len(ids), n_boot, rng)
        inst_w.update({(key, i): draws[:, j] for j, i in enumerate(ids)})
    seeds = defaultdict(list)
    for k, c in enumerate(cells):
        seeds[(c.unit, c.instance)].append(k)
    weights = np.zeros((len(cells), n_boot + 1))
    for key in sorted(seeds, key=str):
        members = seeds[key]
        draws = _draws(len(members), n_boot, rng)
        for j, k in enumerate(members):
            c = cells[k]
            inst = inst_w[((c.pipeline, c.generator), c.instance)] if c.generator is not None else 1.0
            weights[k] = draws[:, j] * inst
    return weights


def _cell_metrics(study: StudyScores, w_img: np.ndarray, progress: bool) -> dict[str, np.ndarray]:
    out = {m: np.empty((len(study.cells), w_img.shape[0])) for m in METRIC_KEYS}
    w_t = np.ascontiguousarray(w_img.T)
    for k, cell in enumerate(progress_bar(study.cells, desc="joint bootstrap", unit="cell", leave=False,
                                          enabled=progress)):
        metrics = replicate_metrics(study.y, cell.prob, w_img, study.target, w_t)
        for m in METRIC_KEYS:
            out[m][k] = metrics[m]
    for m in LOG_POOLED:
        with np.errstate(divide="ignore"):
            out[m] = np.log(out[m])
    return out


def pool_units(cell_values: np.ndarray, weights: np.ndarray, unit_of_cell: np.ndarray, n_units: int) -> np.ndarray:
    """Weighted mean of cell values per unit and replicate, ignoring undefined (NaN) cells."""
    valid = ~np.isnan(cell_values)
    num = np.zeros((n_units, cell_values.shape[1]))
    den = np.zeros_like(num)
    np.add.at(num, unit_of_cell, np.where(valid, cell_values * weights, 0.0))
    np.add.at(den, unit_of_cell, np.where(valid, weights, 0.0))
    out = np.full_like(num, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def run_joint_bootstrap(study: StudyScores, n_boot: int = 2000, seed: int = 0, progress: bool = True) -> JointBootstrap:
    """Resample the whole study ``n_boot`` times (see module docstring) and pool cells into units."""
    rng = np.random.default_rng(seed)
    log.info("joint bootstrap: %d cells, %d test images in %d clusters, %d replicates", len(study.cells),
             len(study.y), int(study.cluster.max()) + 1, n_boot)
    w_img = cluster_weights(study.cluster, n_boot, rng)
    cell_values = _cell_metrics(study, w_img, progress)
    weights = hierarchy_weights(study.cells, n_boot, rng)
    units = sorted({c.unit for c in study.cells})
    index = {u: i for i, u in enumerate(units)}
    unit_of_cell = np.array([index[c.unit] for c in study.cells])
    values = {m: pool_units(v, weights, unit_of_cell, len(units)) for m, v in cell_values.items()}
    for m in LOG_POOLED:
        values[m] = np.exp(values[m])
    n_seeds = defaultdict(set)
    n_inst = defaultdict(set)
    for c in study.cells:
        n_seeds[c.unit].add(c.seed)
        n_inst[c.unit].add(c.instance)
    return JointBootstrap(units, values, {u: len(s) for u, s in n_seeds.items()},
                          {u: len(s) for u, s in n_inst.items()}, n_boot, seed, len(study.y),
                          int(study.cluster.max()) + 1, cell_values,
                          study.class_names[study.target] if study.class_names else "MEL")
