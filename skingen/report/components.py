"""The three parts of every bootstrapped statistic, and how they combine into replicates.

For a statistic that averages cells (a unit's mean over seeds and instances, or a contrast of units):

* ``image``: the equal-weight mean of the cells' metrics on each replicate's resampled test set (column 0:
  on the test set itself, the estimate) -- test-set variability, seed x image noise included;
* ``hier``: the label-weighted mean of the cells' *estimates* minus their equal-weight mean -- the spread
  between seeds and between generator instances, which the test set cannot show;
* ``noise``: the same label draw applied to each replicate's test-set deviations. The estimates of
  different seeds differ by their true seed effect *and* by their own image-level noise, which ``image``
  already holds; the variance of ``noise`` measures that second share so it is not counted twice.

A replicate is ``estimate - b + f x (a x (image deviation - b) + s x hier)``, b the mean image deviation:
centred on the bias-corrected estimate (a ratio such as F1 is biased at a few hundred images, and the
percentile interval would carry the bias twice), ``a`` the small-stratum widening of the image part, and ``s`` scales the label part to the variance of the seed and
instance effects alone -- the share (var(hier) - var(noise)) / var(hier), pooled over the statistic's
rows (:func:`label_share`), times n/(n - 1) because a resample of n labels has (n - 1)/n of the mean's
variance. The deviations are then widened by f = t/z for the Welch-Satterthwaite
degrees of freedom (:func:`small_sample_factor`): a variance read off three seeds is itself uncertain.
Weights are draw counts, so none is ever negative.
"""
from __future__ import annotations

from dataclasses import dataclass

import warnings

import numpy as np
from scipy.stats import t as t_dist

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Parts:
    """``image``, ``hier`` and ``noise`` arrays of one shape, replicates on the last axis (column 0 first)."""

    image: np.ndarray
    hier: np.ndarray
    noise: np.ndarray

    def row(self, i: int) -> "Parts":
        """The parts of unit ``i``."""
        return Parts(self.image[i], self.hier[i], self.noise[i])

    def take(self, rows: np.ndarray) -> "Parts":
        """The parts of the units in ``rows`` (stacked)."""
        return Parts(self.image[rows], self.hier[rows], self.noise[rows])

    def __sub__(self, other: "Parts") -> "Parts":
        return Parts(self.image - other.image, self.hier - other.hier, self.noise - other.noise)

    def mean(self) -> "Parts":
        """Mean over the rows (pairs) defined at the estimate; a replicate in which one of them is undefined is
        undefined (NaN, counted in the undefined share), never the mean of the others."""
        keep = ~np.isnan(np.atleast_2d(self.image)[:, 0])
        if not keep.any():
            return Parts(*(np.full(self.image.shape[1:], np.nan) for _ in range(3)))
        return Parts(*(a[keep].mean(0) for a in (self.image, self.hier, self.noise)))


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


def unit_parts(values: np.ndarray, weights: np.ndarray, unit_of_cell: np.ndarray, n_units: int) -> Parts:
    """The parts of every unit from cell values (K, 1 + B) and label weights (K, 1 + B). A cell undefined on
    the test set itself (e.g. a DOR of a classifier that never predicts melanoma) is left out of its unit; a
    replicate in which one of the unit's other cells is undefined leaves the unit undefined there (NaN), and a
    replicate whose label draw gives the unit's cells no weight (a unit missing some of the study's seeds)
    likewise -- both counted in the reported undefined share, never averaged over the remaining cells."""
    defined = ~np.isnan(values[:, 0])
    values, weights, unit_of_cell = values[defined], weights[defined], unit_of_cell[defined]
    ones = np.ones_like(values)
    image = pool(values, ones, unit_of_cell, n_units, strict=True)
    estimates = np.broadcast_to(values[:, :1], values.shape)
    hier = pool(estimates, weights, unit_of_cell, n_units) - image[:, :1]
    deviation = values - values[:, :1]
    noise = pool(deviation, weights, unit_of_cell, n_units, strict=True) - \
        pool(deviation, ones, unit_of_cell, n_units, strict=True)
    return Parts(image, hier, noise)


def label_share(pieces: Parts) -> float:
    """The share of the label spread that is seed or instance variance rather than image-level noise,
    pooled over ``pieces`` (rows: the units, or the pairs of a contrast): sum(var(hier) - var(noise)) /
    sum(var(hier)), within [0, 1]. One statistic's own spread rests on n - 1 = 2 degrees of freedom
    with three seeds; the share pooled over many rows does not swing to 0 and back."""
    hier, noise = np.atleast_2d(pieces.hier)[:, 1:], np.atleast_2d(pieces.noise)[:, 1:]
    var_hier = _nanvar(hier, axis=1)
    var_noise = _nanvar(noise, axis=1)
    keep = np.isfinite(var_hier) & np.isfinite(var_noise)
    total = var_hier[keep].sum()
    if not total > 0:
        return 0.0
    return float(np.clip((var_hier[keep] - var_noise[keep]).sum() / total, 0.0, 1.0))


def small_sample_factor(var_image: float, var_labels: float, levels: int) -> float:
    """t / z at 95 % for the Welch-Satterthwaite degrees of freedom of image + label variance: the label
    variance is read off ``levels`` labels (n - 1 degrees of freedom), the image variance off hundreds of
    clusters (taken as exact), so three seeds with a dominant seed effect widen the interval as a t
    interval would, and a negligible one leaves it alone."""
    if levels < 2 or not var_labels > 0:
        return 1.0
    df = (var_image + var_labels) ** 2 / (var_labels ** 2 / (levels - 1))
    return float(t_dist.ppf(0.975, df) / Z95)


def combine(parts: Parts, levels: int, share: float, bounds: tuple = (None, None),
            image_inflation: float = 1.0) -> np.ndarray:
    """(1 + B,) estimate and replicates of one statistic (see the module docstring). ``levels``: the fewest
    labels of a resampled level (seeds or instances); ``share``: :func:`label_share` of the statistic's
    family; replicates are kept within the metric's ``bounds``; ``image_inflation`` widens the image part
(small class strata, see ``joint.stratum_inflation``)."""
    est = float(parts.image[0])
    out = np.full(parts.image.shape, np.nan)
    out[0] = est
    if np.isnan(est):
        return out
    image = parts.image[1:] - est
    bias = float(np.nanmean(image)) if np.isfinite(image).any() else 0.0
    image = image_inflation * (image - bias)
    scale = np.sqrt(levels / (levels - 1) * share) if levels > 1 else 0.0
    labels = scale * parts.hier[1:] if scale > 0 else 0.0 * parts.hier[1:]  # a draw without weight: NaN either way
    factor = small_sample_factor(float(_nanvar(image)), float(_nanvar(labels)), levels)
    out[1:] = est - bias + factor * (image + labels)
    lo, hi = bounds
    if lo is not None:
        out[1:] = np.clip(out[1:], lo, hi)
    return out
