"""Reading intervals and p-values off bootstrap replicates, and Holm's multiplicity adjustment."""
from __future__ import annotations

import numpy as np

KEY_METRICS = ("macro_f1", "mel_f1", "mel_roc_auc", "balanced_accuracy")
HEADLINE_METRICS = ("macro_f1", "mel_f1")


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float | None, list]:
    """(estimate, [lo, hi]) from ``values`` = [estimate, replicate 1, ..., replicate B]: percentile interval."""
    est = float(values[0])
    reps = values[1:][~np.isnan(values[1:])]
    if np.isnan(est) or not len(reps):
        return (None if np.isnan(est) else est), [None, None]
    tail = (1 - level) / 2
    return est, [float(np.quantile(reps, tail)), float(np.quantile(reps, 1 - tail))]


TAIL_COUNT = 10  # replicates beyond 0 below which the counted tail is too coarse to read


def undefined_share(values: np.ndarray) -> float:
    """The share of replicates in which the statistic is undefined (NaN: e.g. a DOR with no predicted
    positives). The interval is read from the others; this share is reported beside it, never dropped
    silently."""
    reps = values[1:]
    return float(np.isnan(reps).mean()) if len(reps) else 0.0


def bootstrap_p(values: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value for "no difference": twice the smaller tail mass at 0, (1 + count)/(1 + B).

    Where fewer than TAIL_COUNT replicates lie beyond 0 the count cannot go below 2/(1 + B) -- at 2,000
    replicates 0.001, which Holm's threshold for a table of dozens of rows never reaches. There the tail
    is read from a normal fitted to the replicates (2 Phi(-|mean| / sd)), if that is smaller: a
    continuous extrapolation of the same distribution into the tail the replicates cannot resolve."""
    reps = values[1:][~np.isnan(values[1:])]
    if not len(reps) or np.isnan(values[0]):
        return None
    tail = min((reps <= 0).sum(), (reps >= 0).sum())
    counted = float(min(1.0, 2 * (1 + tail) / (1 + len(reps))))
    if tail >= TAIL_COUNT or len(reps) < 2:
        return counted
    sd = float(reps.std(ddof=1))
    if sd == 0:
        return counted
    from scipy.stats import norm

    return min(counted, float(2 * norm.sf(abs(float(reps.mean())) / sd)))


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (family = the non-missing p-values given); None stays None."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    running, m = 0.0, len(present)
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
