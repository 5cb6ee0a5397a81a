"""Generative metrics at matched N, with intervals that contain their estimate (PROTOCOL rule 8).

FID, KID and precision/recall all depend on the number of images, so a generator (fakes vs test reals)
and the real floor (train reals vs test reals) are compared at one N = the smallest of the sets: each
of ``repeats`` rounds subsamples every set to N without replacement (the same test draw for all sets
of a round) and the estimate is the mean over rounds, reported with the rounds' sd and range.

FID's interval is a joint bootstrap: each replicate redraws the reference and every compared set with
replacement to its own size (one reference draw shared by all sets, so differences keep their correlation).
The estimate averages its rounds over the whole of each set, so its spread from the data is that of the
whole sets: replicates drawn only to N (one round's worth) made intervals 1.4-1.9x too wide in simulation.
The replicates' level is not the estimate's (FID falls with the number of images; drawing with replacement
raises it), so the percentile interval is shifted by the bootstrap's mean bias onto the estimate (and
widened to contain it if the shift alone does not). Averaging finitely many random rounds adds a spread of
its own, sd(rounds) / sqrt(rounds), independent of the data's: each side is widened by it in quadrature.
Differences of FIDs (generator − generator, generator − floor) come from the same replicates and paired
rounds. ``benchmarks/bench_fid_coverage.py`` checks coverage on simulated studies; near zero (the real
floor) a bootstrapped squared distance overstates its spread, so the floor's interval is conservative.

Memorisation (rule 5) gets a bootstrap interval over fakes and test reals (the threshold redrawn too)
and a matched-size real baseline: the test reals are split in halves, one half sets the threshold,
and the fraction of the other half under it is what an honest generator scores at that size.
"""
from __future__ import annotations

from contextlib import contextmanager
from statistics import NormalDist

import numpy as np
import torch

from . import fidelity
from . import generative as gm

ALPHA = 0.05
FID_CI_METHOD = ("joint bootstrap ({n_boot} replicates; reference and compared sets each redrawn with replacement "
                 "to its own size), percentile interval shifted by the bootstrap's mean bias so it is centred on "
                 "the matched-N estimate, each side widened by the rounds' own spread (sd / sqrt(rounds)); "
                 "coverage checked by simulation (benchmarks/bench_fid_coverage.py)")


def summary(values, alpha: float = ALPHA) -> dict:
    """Mean, sd and the central (1 - alpha) percentile range of repeated values (the range contains the mean)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return {"mean": mean, "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "range": [min(float(lo), mean), max(float(hi), mean)], "repeats": len(v)}


def shifted_interval(estimate: float, boot, alpha: float = ALPHA, rounds=None) -> list[float]:
    """Percentile interval of bootstrap values shifted by their mean bias (mean(boot) - estimate); it is
    widened to contain ``estimate`` should the shifted interval still miss it.

    ``rounds``: the subsample rounds whose mean is ``estimate``. The bootstrap gives the spread that comes from
    the data; averaging finitely many random rounds adds its own (sd / sqrt(rounds)), independent of it, so
    each side is widened to sqrt(side^2 + (z * that)^2)."""
    b = np.asarray(boot, dtype=float)
    lo, hi = np.quantile(b - (b.mean() - estimate), [alpha / 2, 1 - alpha / 2])
    lo, hi = min(float(lo), estimate), max(float(hi), estimate)
    if rounds is not None and len(rounds) > 1:
        extra = NormalDist().inv_cdf(1 - alpha / 2) * float(np.std(rounds, ddof=1)) / np.sqrt(len(rounds))
        lo, hi = estimate - float(np.hypot(estimate - lo, extra)), estimate + float(np.hypot(hi - estimate, extra))
    return [lo, hi]


SMALL_WORK = 2 ** 19  # N x D below which one CPU thread is faster than several (hand-offs dominate)


@contextmanager
def _threads_for(n: int, d: int):
    """Run many small products on one CPU thread: with several, each tiny op pays a thread hand-off, and on a
    loaded machine a descheduled worker stalls it (measured 8x slower on 2 busy cores)."""
    before = torch.get_num_threads()
    small = n * d < SMALL_WORK and before > 1
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(before)


def _draw(rng: np.random.Generator, pool: int, n: int, replace: bool) -> np.ndarray:
    return rng.integers(0, pool, n) if replace else np.sort(rng.choice(pool, n, replace=False))


class PairFrechet:
    """FID of index draws (repeats allowed) of two fixed feature sets. With fewer images than dimensions it reads
    the cross dot products from one Gram matrix computed up front, so a draw costs its means and the singular
    values of an N x N matrix (the route ``generative.frechet`` takes then) instead of an N x N x D product."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: str | None = None):
        dev = gm._device(device)
        self.x, self.y = gm._as64(x, dev), gm._as64(y, dev)
        self._gram = None
        self._sq = (self.x.square().sum(1), self.y.square().sum(1))

    def __call__(self, ix: np.ndarray, iy: np.ndarray) -> float:
        """FID between ``x[ix]`` and ``y[iy]``."""
        ix, iy = torch.as_tensor(ix, device=self.x.device), torch.as_tensor(iy, device=self.x.device)
        x, y = self.x.index_select(0, ix), self.y.index_select(0, iy)
        if min(len(ix), len(iy)) >= self.x.shape[1]:  # many images per dimension: frechet's covariance route
            return gm.frechet(x, y)
        if self._gram is None:
            self._gram = self.x @ self.y.T
        n1, n2 = len(ix), len(iy)
        mu1, mu2 = x.mean(0), y.mean(0)
        tr1 = (self._sq[0].index_select(0, ix).sum() - n1 * mu1 @ mu1) / (n1 - 1)
        tr2 = (self._sq[1].index_select(0, iy).sum() - n2 * mu2 @ mu2) / (n2 - 1)
        cross = self._gram.index_select(0, ix).index_select(1, iy)  # (X1 - mu1)(X2 - mu2)^T from X1 X2^T
        cross = (cross - (x @ mu2)[:, None] - (y @ mu1)[None, :] + mu1 @ mu2) / ((n1 - 1) * (n2 - 1)) ** 0.5
        product = cross @ cross.T if n1 <= n2 else cross.T @ cross  # singular values^2 of cross
        trace_sqrt = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum()
        diff = mu1 - mu2
        return float(diff @ diff + tr1 + tr2 - 2 * trace_sqrt)


def matched_repeats(reference: np.ndarray, sets: dict[str, np.ndarray], n: int, repeats: int, seed: int = 0,
                    kid_subsets: int = 100, kid_subset_size: int = 1000, pr_k: int = 3,
                    device: str | None = None, dc_k: int = 5) -> dict[str, dict[str, list[float]]]:
    """Per set: FID, KID, precision/recall, density/coverage and CMMD against ``reference`` in each of
    ``repeats`` rounds, every set subsampled without replacement to ``n`` (one reference draw per round,
    shared by all sets)."""
    rng = np.random.default_rng(seed)
    out = {name: {key: [] for key in ROUND_METRICS} for name in sets}
    with _threads_for(n, reference.shape[1]):
        for r in range(repeats):
            _repeat(rng, reference, sets, n, out, (kid_subsets, kid_subset_size, seed + r), (pr_k, dc_k), device)
    return out


ROUND_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "cmmd")


def _repeat(rng, reference, sets, n, out, kid_args, ks, device) -> None:
    """One matched-N round of :func:`matched_repeats`, appended to ``out``."""
    ref = reference[_draw(rng, len(reference), n, False)]
    for name, x in sets.items():
        sub = x[_draw(rng, len(x), n, False)]
        grams = gm.Grams(ref, sub, device=device)
        precision, recall = gm.precision_recall(grams, ks[0])
        density, coverage = fidelity.density_coverage(grams, ks[1])
        values = {"fid": gm.fid(ref, sub, device), "kid": gm.kid(grams, *kid_args)[0],
                  "precision": precision, "recall": recall, "density": density, "coverage": coverage,
                  "cmmd": fidelity.cmmd_grams(grams)}
        for key, value in values.items():
            out[name][key].append(value)


def fid_bootstrap(reference: np.ndarray, sets: dict[str, np.ndarray], n: int, n_boot: int, seed: int = 0,
                  device: str | None = None) -> dict[str, np.ndarray]:
    """Per set: ``n_boot`` FIDs against ``reference``, each replicate redrawing the reference and every set with
    replacement to its own size (one reference draw per replicate, shared by all sets). The matched-N estimate
    averages rounds over the whole of each set, so its spread is that of the whole sets, not of one N-image
    round; the replicates' level differs (FID falls with size), which the shifted interval removes."""
    rng = np.random.default_rng(seed)
    out = {name: np.empty(n_boot) for name in sets}
    with _threads_for(n, reference.shape[1]):
        pairs = {name: PairFrechet(reference, x, device) for name, x in sets.items()}
        for b in range(n_boot):
            ref = _draw(rng, len(reference), len(reference), True)
            for name, x in sets.items():
                out[name][b] = pairs[name](ref, _draw(rng, len(x), len(x), True))
    return out


def fid_difference(reference: np.ndarray, a: np.ndarray, b: np.ndarray, repeats: int = 10, n_boot: int = 100,
                   seed: int = 0, n: int | None = None, device: str | None = None) -> dict:
    """FID(a) - FID(b) against one reference at matched N: the mean paired difference over ``repeats`` rounds and
    its shifted joint-bootstrap interval (see the module docstring)."""
    n = n or min(len(reference), len(a), len(b))
    rng = np.random.default_rng(seed)
    diffs = []
    with _threads_for(n, reference.shape[1]):
        fid_a, fid_b = PairFrechet(reference, a, device), PairFrechet(reference, b, device)
        for _ in range(repeats):
            ref = _draw(rng, len(reference), n, False)
            diffs.append(fid_a(ref, _draw(rng, len(a), n, False)) - fid_b(ref, _draw(rng, len(b), n, False)))
    estimate = float(np.mean(diffs))
    boot = fid_bootstrap(reference, {"a": a, "b": b}, n, n_boot, seed + 1, device)
    return {"estimate": estimate, "sd": float(np.std(diffs, ddof=1)) if repeats > 1 else 0.0,
            "ci": shifted_interval(estimate, boot["a"] - boot["b"], rounds=diffs), "n": n, "repeats": repeats,
            "ci_method": FID_CI_METHOD.format(n_boot=n_boot)}


def memorised_interval(d_fake: np.ndarray, d_test: np.ndarray, quantile: float, n_boot: int, seed: int = 0,
                       alpha: float = ALPHA) -> list[float]:
    """Percentile bootstrap interval of the memorised fraction, fakes and test reals (the threshold) redrawn
    with replacement; widened to contain the full-set estimate."""
    rng = np.random.default_rng(seed)
    estimate = float((d_fake < np.quantile(d_test, quantile)).mean())
    thresholds = np.quantile(d_test[rng.integers(0, len(d_test), (n_boot, len(d_test)))], quantile, axis=1)
    fractions = (d_fake[rng.integers(0, len(d_fake), (n_boot, len(d_fake)))] < thresholds[:, None]).mean(1)
    lo, hi = np.quantile(fractions, [alpha / 2, 1 - alpha / 2])
    return [min(float(lo), estimate), max(float(hi), estimate)]


def memorised_baseline(d_fake: np.ndarray, d_test: np.ndarray, quantile: float, repeats: int,
                       seed: int = 0) -> dict | None:
    """Matched-size memorisation: in each round half the test reals set the threshold, and the fraction under it
    of the other half (the real baseline) and of as many fakes is recorded. None with fewer than 2 test reals."""
    m = min(len(d_test) // 2, len(d_fake))
    if m < 1:
        return None
    rng = np.random.default_rng(seed)
    real, fake = [], []
    for _ in range(repeats):
        perm = rng.permutation(len(d_test))
        threshold = np.quantile(d_test[perm[m:]], quantile)
        real.append(float((d_test[perm[:m]] < threshold).mean()))
        fake.append(float((d_fake[_draw(rng, len(d_fake), m, False)] < threshold).mean()))
    return {"n": m, "real": summary(real), "fake": summary(fake)}
