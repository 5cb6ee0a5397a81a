"""The three parts of every bootstrapped statistic, and how they combine into replicates.

For a statistic that averages cells (a unit's mean over seeds and instances, or a contrast of units):

* ``image``: the equal-weight mean of the cells' metrics on each replicate's resampled test set (column 0:
  on the test set itself, the estimate) -- test-set variability, seed x image noise included;
* ``hier``: the label-weighted mean of the cells' *estimates* minus their equal-weight mean -- the spread
  between seeds and between generator instances, which the test set cannot show;
* ``noise``: the same label draw applied to each replicate's test-set deviations. The estimates of
  different seeds differ by their true seed effect *and* by their own image-level noise, which ``image``
  already holds; the variance of ``noise`` measures that second share so it is not counted twice.

A replicate is ``estimate - b + f x (a x (image deviation - b) + sum over levels of s x hier)``, b the mean
image deviation, the label parts kept per level (the seed draw and the instance draw):
centred on the bias-corrected estimate (a ratio such as F1 is biased at a few hundred images, and the
percentile interval would carry the bias twice), ``a`` the small-stratum widening of the image part, and
``s`` scales each label part to the variance of the seed and instance effects alone -- the share (var(hier) - var(noise)) / var(hier), pooled over the statistic's
rows (:func:`label_share`), times n/(n - 1) because a resample of n labels has (n - 1)/n of the mean's
variance. The deviations are then widened by f = t/z for the Welch-Satterthwaite degrees of freedom
(:func:`small_sample_factor`; seeds n - 1, instances n - 1 per independent group): a variance read off
three seeds is itself uncertain.
Weights are draw counts, so none is ever negative.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from scipy.stats import t as t_dist

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Parts:
    """``image`` (..., R) and, per label level, ``hier`` and ``noise`` (2, ..., R): level 0 the classifier-seed
    draw, level 1 the generator-instance draw; replicates on the last axis (column 0 first)."""

    image: np.ndarray
    hier: np.ndarray
    noise: np.ndarray

    def row(self, i: int) -> "Parts":
        """The parts of unit ``i``."""
        return Parts(self.image[i], self.hier[:, i], self.noise[:, i])

    def take(self, rows: np.ndarray) -> "Parts":
        """The parts of the units in ``rows`` (stacked)."""
        return Parts(self.image[rows], self.hier[:, rows], self.noise[:, rows])

    def __sub__(self, other: "Parts") -> "Parts":
        return Parts(self.image - other.image, self.hier - other.hier, self.noise - other.noise)

    def mean(self) -> "Parts":
        """Mean over the rows (pairs) defined at the estimate; a replicate in which one of them is undefined is
        undefined (NaN, counted in the undefined share), never the mean of the others."""
        keep = ~np.isnan(np.atleast_2d(self.image)[:, 0])
        if not keep.any():
            shape = self.image.shape[1:]
            return Parts(np.full(shape, np.nan), np.full((2, *shape), np.nan), np.full((2, *shape), np.nan))
        return Parts(self.image[keep].mean(0), self.hier[:, keep].mean(1), self.noise[:, keep].mean(1))


def _nanvar(a: np.ndarray, axis=None):
    """Variance ignoring NaN; NaN (no warning) where nothing is defined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanvar(a, axis=axis)


def pool(values: np.ndarray, weights: np.ndarray, unit_of_cell: np.ndarray, n_units: int,
         strict: bool = False) -> np.ndarray:
    """Weighted mean of cell values (K, R) per unit and replicate (NaN where the weights sum to 0); ``strict``:
    NaN wherever one of the unit's cells is undefined, else those cells are skipped."""
    if strict:
        bad = np.zeros((n_units, values.shape[1]), bool)
        np.logical_or.at(bad, unit_of_cell, np.isnan(values))
        out = pool(values, weights, unit_of_cell, n_units)
        out[bad] = np.nan
        return out
    valid = ~np.isnan(values)
    num = np.zeros((n_units, values.shape[1]))
    den = np.zeros_like(num)
    np.add.at(num, unit_of_cell, np.where(valid, values * weights, 0.0))
    np.add.at(den, unit_of_cell, np.where(valid, weights, 0.0))
    out = np.full_like(num, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def unit_parts(values: np.ndarray, weights: tuple[np.ndarray, np.ndarray], unit_of_cell: np.ndarray,
               n_units: int) -> Parts:
    """The parts of every unit from cell values (K, 1 + B) and the seed and instance label weights (each
    (K, 1 + B)). A cell undefined on the test set itself (e.g. a DOR of a classifier that never predicts
    melanoma) is left out of its unit; a replicate in which one of the unit's other cells is undefined leaves the
    unit undefined there (NaN), and a replicate whose label draw gives the unit's cells no weight (a unit missing
    some of the study's seeds) likewise -- both counted in the reported undefined share, never averaged over the
    remaining cells."""
    defined = ~np.isnan(values[:, 0])
    values, unit_of_cell = values[defined], unit_of_cell[defined]
    ones = np.ones_like(values)
    image = pool(values, ones, unit_of_cell, n_units, strict=True)
    estimates = np.broadcast_to(values[:, :1], values.shape)
    deviation = values - values[:, :1]
    plain = pool(deviation, ones, unit_of_cell, n_units, strict=True)
    hier, noise = [], []
    for w in weights:
        w = w[defined]
        hier.append(pool(estimates, w, unit_of_cell, n_units) - image[:, :1])
        noise.append(pool(deviation, w, unit_of_cell, n_units, strict=True) - plain)
    return Parts(image, np.stack(hier), np.stack(noise))


def label_share(pieces: Parts, level: int) -> float:
    """The share of a label level's spread (0: seeds, 1: instances) that is seed or instance variance rather
    than image-level noise, pooled over ``pieces`` (rows: the units, or the pairs of a contrast):
    sum(var(hier) - var(noise)) / sum(var(hier)), within [0, 1]. One statistic's own spread rests on
    n - 1 = 2 degrees of freedom with three seeds; the share pooled over many rows does not swing to 0 and back."""
    hier, noise = np.atleast_2d(pieces.hier[level])[:, 1:], np.atleast_2d(pieces.noise[level])[:, 1:]
    var_hier = _nanvar(hier, axis=1)
    var_noise = _nanvar(noise, axis=1)
    keep = np.isfinite(var_hier) & np.isfinite(var_noise)
    total = var_hier[keep].sum()
    if not total > 0:
        return 0.0
    return float(np.clip((var_hier[keep] - var_noise[keep]).sum() / total, 0.0, 1.0))


def label_shares(pieces: Parts) -> tuple[float, float]:
    """:func:`label_share` of the seed and of the instance level."""
    return label_share(pieces, 0), label_share(pieces, 1)


def small_sample_factor(var_image: float, var_labels: tuple[float, float], dfs: tuple[int, int],
                        level: float = 0.95, image_df: float = np.inf) -> float:
    """t / z at ``level`` (two-sided; 95 % unless a family's simultaneous level is asked for) for the
    Welch-Satterthwaite degrees of freedom of image + seed + instance variance: the
    seed variance rests on n_seeds - 1 degrees of freedom, the instance variance on the sum of n_instances - 1
    over the independent (pipeline, generator) groups the statistic involves, the image variance on
    ``image_df`` (the test clusters of the class strata, see ``joint.stratum_df``: ~35 at 500 test images, ~12
    at 55). A dominant seed effect with three seeds widens the interval as a t interval would; a negligible one
    leaves it alone."""
    labels = [(v, df) for v, df in zip(var_labels, dfs) if df >= 1 and v > 0]
    image = [(var_image, image_df)] if np.isfinite(image_df) and image_df > 0 and var_image > 0 else []
    if not labels and not image:
        return 1.0
    total = var_image + sum(v for v, _ in labels)
    df = total ** 2 / sum(v * v / df for v, df in labels + image)
    upper = (1 + level) / 2  # 0.975 at 95 %
    return float(t_dist.ppf(upper, df) / (Z95 if level == 0.95 else norm.ppf(upper)))


@dataclass(frozen=True)
class Levels:
    """How many labels each level of a statistic has: seeds, instances per group, and instance groups."""

    seeds: int
    instances: int = 1
    groups: int = 0

    def scales(self, shares: tuple[float, float]) -> tuple[float, float]:
        """The factor on each level's part: sqrt(share x n/(n - 1)) (0 for a level with one label)."""
        return tuple(float(np.sqrt(n / (n - 1) * share)) if n > 1 else 0.0
                     for n, share in zip((self.seeds, self.instances), shares))

    def dfs(self) -> tuple[int, int]:
        """Degrees of freedom of the seed part and of the instance part."""
        return self.seeds - 1, self.groups * (self.instances - 1)


def combine(parts: Parts, levels: Levels, shares: tuple[float, float], bounds: tuple = (None, None),
            image_inflation: float = 1.0, level: float = 0.95, image_df: float = np.inf) -> np.ndarray:
    """(1 + B,) estimate and replicates of one statistic (see the module docstring). ``levels``: its labels;
    ``shares``: :func:`label_shares` of the statistic's family; replicates are kept within the metric's
    ``bounds``; ``image_inflation`` widens the image part (small class strata, see ``joint.stratum_inflation``);
    ``level``: the interval level the replicates will be read at (the t/z factor is taken there: a simultaneous
    interval of a family of contrasts reads a further tail); ``image_df``: the image part's degrees of freedom."""
    est = float(parts.image[0])
    out = np.full(parts.image.shape, np.nan)
    out[0] = est
    if np.isnan(est):
        return out
    image = parts.image[1:] - est
    bias = float(np.nanmean(image)) if np.isfinite(image).any() else 0.0
    image = image_inflation * (image - bias)
    labels = [scale * parts.hier[k, 1:] for k, scale in enumerate(levels.scales(shares))]  # NaN: a weightless draw
    factor = small_sample_factor(float(_nanvar(image)), tuple(float(_nanvar(x)) for x in labels), levels.dfs(),
                                 level, image_df)
    out[1:] = est - bias + factor * (image + labels[0] + labels[1])
    lo, hi = bounds
    if lo is not None:
        out[1:] = np.clip(out[1:], lo, hi)
    return out
