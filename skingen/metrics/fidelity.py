"""Fidelity metrics beyond FID/KID/PR: density and coverage (Naeem et al. 2020) and CMMD (Jayasumana et al.
2024), from cached features.

* density = (1 / k) x mean over fakes of how many real k-NN balls hold the fake; coverage = the share of
  reals whose ball holds at least one fake. A ball is open (distance < the real's k-th neighbour distance,
  itself excluded), as the authors' code compares. Both read the real/fake distances the ``Grams`` of a
  pair already hold, so they cost one top-k beside precision/recall.
* CMMD = 1000 x the biased (minimum-variance) MMD^2 with a Gaussian RBF kernel, sigma = 10, over CLIP
  embeddings (the paper's space; any space works). The kernel means differ from one another by ~1e-4 of
  their size, so the sums run in float64, blockwise, never holding an N x N matrix; in the matched-N
  rounds it reads the distances the pair's ``Grams`` already hold (:func:`cmmd_grams`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from .generative import Grams

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def density_coverage(grams: Grams, k: int = 5) -> tuple[float, float]:
    """(density, coverage) of the fakes against the reals of ``grams``."""
    n_x, n_y = len(grams.x), len(grams.y)
    if n_x < k + 1 or n_y < 1:
        raise UserError(f"density/coverage with k={k} needs at least {k + 1} real and 1 fake image; "
                        f"got {n_x} real and {n_y} fake")
    radius = grams.sqdist("xx").topk(k + 1, dim=1, largest=False).values[:, -1]
    d_xy = grams.sqdist("xy")
    inside = d_xy < radius[:, None]
    density = inside.sum(0).double().mean() / k
    coverage = (d_xy.min(1).values < radius).double().mean()
    return float(density), float(coverage)


def _mean_kernel(a: torch.Tensor, b: torch.Tensor, gamma: float, block: int) -> float:
    """mean over all pairs of exp(-gamma |a_i - b_j|^2), in float64 blocks of ``block`` rows."""
    sq_a, sq_b = (a * a).sum(1), (b * b).sum(1)
    total = torch.zeros((), dtype=torch.float64)
    for lo in range(0, len(a), block):
        d2 = (a[lo:lo + block] @ b.T).mul_(-2).add_(sq_a[lo:lo + block, None]).add_(sq_b[None, :])
        total += d2.mul_(-gamma).exp_().sum()
    return float(total) / (len(a) * len(b))


def cmmd(real: np.ndarray, fake: np.ndarray, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE,
         block: int = 1024) -> float:
    """``scale`` x biased MMD^2 between the two sets under the RBF kernel exp(-|x - y|^2 / (2 sigma^2))."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise UserError(f"feature dims differ: {real.shape} vs {fake.shape}; both sets must come from the same "
                        "extractor")
    if len(real) < 1 or len(fake) < 1:
        raise UserError("CMMD needs at least one image per set")
    x = torch.from_numpy(np.ascontiguousarray(real, np.float64))
    y = torch.from_numpy(np.ascontiguousarray(fake, np.float64))
    gamma = 1.0 / (2.0 * sigma ** 2)
    k_xx, k_yy, k_xy = (_mean_kernel(a, b, gamma, block) for a, b in ((x, x), (y, y), (x, y)))
    return scale * (k_xx + k_yy - 2.0 * k_xy)


def cmmd_grams(grams: Grams, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """:func:`cmmd` from the squared distances a pair's ``Grams`` already hold (float32 dot products, float64
    kernel sums): no matrix product of its own, for the matched-N rounds. Rounding of the float32 products
    moves the result by ~1e-6 of itself (tests/test_fidelity.py)."""
    gamma = 1.0 / (2.0 * sigma ** 2)
    means = [float(grams.sqdist(w).double().mul_(-gamma).exp_().mean()) for w in ("xx", "yy", "xy")]
    return scale * (means[0] + means[1] - 2.0 * means[2])
