"""The study's one joint hierarchical bootstrap (PROTOCOL rule 7).

Each replicate draws (a) the test clusters (near-duplicate groups, which contain lesions) with replacement
within each class, one draw shared by every cell, and (b) classifier-seed labels with replacement, one
draw shared by every cell (a seed fixes the initial weights and data order in every arm, model and
pipeline, so "seed 0" is one unit of the hierarchy, not one per cell), and (c) generator-instance labels
per (pipeline, generator), one draw shared by every cell trained on that generator's images. Every statistic keeps three parts per replicate (see :mod:`.components`): the mean
of the cells' metrics on the resampled test set, the label-resampled mean of the cells' estimates, and
the same label draw applied to the test-set deviations (the image-level noise the label draw would
otherwise count a second time). Column 0 of every array is the point estimate.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..metrics.diagnostic import METRIC_KEYS
from ..metrics.weighted import replicate_metrics
from ..progress import progress as progress_bar
from .components import Levels, Parts, combine, label_shares, unit_parts
from .stats import interval

log = logging.getLogger(__name__)
LOG_POOLED = ("mel_dor",)  # pooled over seeds on the log scale


def level_words(level: float) -> str:
    """An interval level in words: '95 %', '97.5 %'."""
    return f"{100 * level:.4g} %"


def interval_words(level: float = 0.95) -> str:
    """How the joint bootstrap's intervals are made, at ``level`` (effects.csv's ``interval`` column)."""
    return ("joint hierarchical bootstrap (test clusters within class, classifier-seed labels, generator-instance "
            f"labels), {level_words(level)} percentile, shifted by the bootstrap bias estimate")


INTERVAL = interval_words()
BOUNDS = {"mcc": (-1.0, 1.0), "brier": (0.0, 2.0), "mel_dor": (None, None)}  # others lie in [0, 1]


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
    """Per-unit (pipeline, arm, model) parts of every metric; ``values`` combines them into replicates."""

    units: list[tuple[str, str, str]]
    parts: dict[str, Parts]  # metric -> the unit parts, each (U, 1 + B)
    n_seeds: dict[tuple, int]
    n_instances: dict[tuple, int]
    n_boot: int
    seed: int
    n_images: int
    n_clusters: int
    cell_values: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (K, 1 + B), test resampling only
    target_name: str = "MEL"  # the class the one-vs-rest ('mel_*') metrics score
    image_inflation: float = 1.0  # see stratum_inflation
    image_df: float = np.inf  # see stratum_df: of the class-averaged metrics
    target_df: float = np.inf  # the same over {target class, the rest}: of the one-vs-rest ('mel_*') metrics
    small_strata: dict = field(default_factory=dict)  # class -> test clusters, for classes with fewer than 5
    unit_group: dict = field(default_factory=dict)  # unit -> its (pipeline, generator) instance group, if synthetic
    _values: dict = field(default_factory=dict, repr=False)

    def df_of(self, metric: str) -> float:
        """The image part's degrees of freedom for ``metric``: a one-vs-rest ('mel_*') metric rests mostly on the
        target class's few clusters, a class-averaged one on every class's."""
        return self.target_df if metric.startswith("mel_") else self.image_df

    def unit_index(self) -> dict[tuple, int]:
        """unit -> row."""
        return {u: i for i, u in enumerate(self.units)}

    def levels(self, units: list[tuple]) -> Levels:
        """The labels of a statistic over ``units``: the fewest seeds, the fewest instances of a generator that
        was trained more than once, and how many independent (pipeline, generator) instance groups it spans."""
        groups = {self.unit_group[u] for u in units if self.unit_group.get(u) and self.n_instances[u] > 1}
        instances = [self.n_instances[u] for u in units if self.unit_group.get(u) and self.n_instances[u] > 1]
        return Levels(min(self.n_seeds[u] for u in units), min(instances, default=1), len(groups))

    @property
    def values(self) -> dict[str, np.ndarray]:
        """metric -> (U, 1 + B): each unit's estimate and its combined replicates (DOR back from the log)."""
        if not self._values:
            for m, p in self.parts.items():
                shares = label_shares(p)
                rows = np.stack([combine(p.row(i), self.levels([u]), shares, BOUNDS.get(m, (0.0, 1.0)), self.image_inflation,
                                         image_df=self.df_of(m))
                                 for i, u in enumerate(self.units)]) if self.units else np.zeros((0, self.n_boot + 1))
                self._values[m] = np.exp(rows) if m in LOG_POOLED else rows
        return self._values

    def summary(self, metric: str) -> dict[tuple, tuple]:
        """unit -> (estimate, lo, hi, n_seeds) of ``metric`` (None bounds when undefined)."""
        out = {}
        for i, u in enumerate(self.units):
            est, (lo, hi) = interval(self.values[metric][i])
            out[u] = (float("nan") if est is None else est, lo, hi, self.n_seeds[u])
        return out


def cluster_strata(cluster: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """The class of each test cluster (its most frequent label); all 0 without labels."""
    n_clusters = int(cluster.max()) + 1
    if y is None:
        return np.zeros(n_clusters, int)
    counts = np.zeros((n_clusters, int(y.max()) + 1), int)
    np.add.at(counts, (cluster, y), 1)
    return counts.argmax(1)


def cluster_weights(cluster: np.ndarray, n_boot: int, rng: np.random.Generator,
                    y: np.ndarray | None = None) -> np.ndarray:
    """(1 + B, N) image weights: row 0 all ones, then clusters drawn with replacement (all their images),
    within each class when ``y`` is given, as the split stratifies the test set by class -- every
    replicate keeps the test set's melanomas."""
    strata = cluster_strata(cluster, y)
    draws = np.zeros((n_boot, len(strata)))
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        draws[:, members] = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)), size=n_boot)
    return np.vstack([np.ones(len(strata)), draws])[:, cluster]


def stratum_inflation(sizes: np.ndarray) -> float:
    """sqrt(m / (m - 1)) for the smallest class stratum of m clusters (``sizes``: clusters per class): a resample of
    m clusters has (m - 1)/m of the variance, and the rarest class (SCC: a dozen lesions in 500 test images)
    carries most of a macro metric's; the image deviations are widened by it (simulation: 9 % of variance at
    500 images)."""
    m = int(sizes.min())
    return float(np.sqrt(m / (m - 1))) if m > 1 else 1.0


def stratum_df(sizes: np.ndarray) -> float:
    """Degrees of freedom of the image-level variance of a class-averaged metric (Welch-Satterthwaite over the
    class strata): class c's share of the variance taken as 1/m_c (its F1 or recall rests on its m_c test
    clusters), each share known to m_c - 1 degrees of freedom; strata of one cluster add no estimable variance
    (the report cautions about them). ~35 at 500 test images, ~12 at 55; infinite without two such strata."""
    m = sizes[sizes > 1].astype(float)
    if len(m) == 0:
        return float("inf")
    share = 1.0 / m
    return float(share.sum() ** 2 / (share ** 2 / (m - 1)).sum())


def target_df(sizes: np.ndarray, target: int) -> float:
    """:func:`stratum_df` over two strata, the target class and the rest (the one-vs-rest metrics' view)."""
    if target >= len(sizes):
        return float("inf")
    return stratum_df(np.array([sizes[target], sizes.sum() - sizes[target]]))


SMALL_STRATUM = 5


def small_strata(sizes: np.ndarray, class_names: tuple[str, ...]) -> dict[str, int]:
    """Classes with fewer than SMALL_STRATUM test clusters (``sizes``: clusters per class): their share of any
    class-averaged metric rests on so few lesions that no resampling can show its variability (the report
    says so)."""
    names = class_names or tuple(str(i) for i in range(len(sizes)))
    return {names[k]: int(n) for k, n in enumerate(sizes) if 0 < n < SMALL_STRATUM}


def _label_draws(labels: list, n_boot: int, rng: np.random.Generator) -> dict:
    """label -> (1 + B,) how often it is drawn (row 0: once each); one draw over all the labels."""
    ordered = sorted(set(labels), key=str)
    n = len(ordered)
    counts = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)])
    return {label: counts[:, j] for j, label in enumerate(ordered)}


def label_weights(cells: list[CellScores], n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(K, 1 + B) draw counts of each cell's seed label, and of its instance label (ones without a generator).

    One draw of seed labels serves every cell (a seed fixes initial weights and data order in every arm,
    model and pipeline); one draw of instance labels per (pipeline, generator) serves every cell trained on
    that generator's images (an instance is one trained network). Weights are counts, never negative."""
    seeds = _label_draws([c.seed for c in cells], n_boot, rng)
    groups = defaultdict(list)
    for c in cells:
        if c.generator is not None:
            groups[(c.pipeline, c.generator)].append(c.instance)
    inst = {g: _label_draws(groups[g], n_boot, rng) for g in sorted(groups, key=str)}
    ones = np.ones(n_boot + 1)
    return (np.stack([seeds[c.seed] for c in cells]),
            np.stack([inst[(c.pipeline, c.generator)][c.instance] if c.generator is not None else ones for c in cells]))


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


def run_joint_bootstrap(study: StudyScores, n_boot: int = 2000, seed: int = 0, progress: bool = True) -> JointBootstrap:
    """Resample the whole study ``n_boot`` times (see module docstring) and pool cells into units."""
    rng = np.random.default_rng(seed)
    log.info("joint bootstrap: %d cells, %d test images in %d clusters, %d replicates", len(study.cells),
             len(study.y), int(study.cluster.max()) + 1, n_boot)
    w_img = cluster_weights(study.cluster, n_boot, rng, study.y)
    sizes = np.bincount(cluster_strata(study.cluster, study.y))  # test clusters per class
    cell_values = _cell_metrics(study, w_img, progress)
    weights = label_weights(study.cells, n_boot, rng)
    units = sorted({c.unit for c in study.cells})
    index = {u: i for i, u in enumerate(units)}
    unit_of_cell = np.array([index[c.unit] for c in study.cells])
    parts = {m: unit_parts(v, weights, unit_of_cell, len(units)) for m, v in cell_values.items()}
    n_seeds = defaultdict(set)
    n_inst = defaultdict(set)
    group = {}
    for c in study.cells:
        n_seeds[c.unit].add(c.seed)
        n_inst[c.unit].add(c.instance)
        if c.generator is not None:
            group[c.unit] = (c.pipeline, c.generator)
    return JointBootstrap(units, parts, {u: len(s) for u, s in n_seeds.items()},
                          {u: len(s) for u, s in n_inst.items()}, n_boot, seed, len(study.y),
                          int(study.cluster.max()) + 1, cell_values,
                          study.class_names[study.target] if study.class_names else "MEL",
                          stratum_inflation(sizes), stratum_df(sizes), target_df(sizes, study.target),
                          small_strata(sizes, study.class_names), group)
