"""Generative metrics from cached features: FID, KID, IS, precision/recall, NN distances (matched-N
rounds and intervals: ``matched.py``).

Conventions (PROTOCOL rule 8): FID is clean-fid's Fréchet distance (float64 means and covariances;
the trace term tr sqrtm(S1 S2) exactly, without scipy's slow sqrtm: from the singular values of
A1 A2^T for few images or the eigenvalues of L^T S2 L (S1 = L L^T) for many; torch, so on the GPU
when there is one); KID is the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3 over seeded subsets of size <= min(N); IS uses 10 splits in order;
precision/recall are Kynkäänniemi et al.'s k-NN manifolds (k from the caller: 5 by default in
metrics.json). The three Gram matrices of a pair are computed once (torch, on the GPU when there is one) and shared by KID and PR.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError


def _check_dims(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise UserError(f"feature dims differ: {a.shape} vs {b.shape}; both sets must come from the same extractor")


def _device(device: str | None = None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


SYMMETRIC_BLOCKS = 6  # row blocks of a symmetric product on the CPU: 21 of 36 block products computed


def symmetric_product(a: torch.Tensor) -> torch.Tensor:
    """a @ a.T, on the CPU exactly symmetric by construction: only the upper block triangle is computed
    (about 0.6x the work of a full product from 1024 rows) and mirrored, the diagonal blocks' upper
    triangles included, since BLAS does not promise a bitwise-symmetric block. The GPU does the full
    product, which is faster there than many small ones."""
    n = len(a)
    if a.device.type != "cpu":
        return a @ a.T
    out = torch.empty(n, n, dtype=a.dtype)
    edges = np.linspace(0, n, (SYMMETRIC_BLOCKS if n >= 1024 else 1) + 1).astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        block = a[lo:hi] @ a[lo:].T
        upper = block[:, :hi - lo].triu()
        out[lo:hi, lo:hi] = upper + upper.triu(1).T
        out[lo:hi, hi:] = block[:, hi - lo:]
        out[hi:, lo:hi] = block[:, hi - lo:].T
    return out


def _centred(x: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean, and the centred rows scaled so that A^T A is the covariance (weights: bootstrap multiplicities)."""
    if weights is None:
        weights = torch.ones(len(x), dtype=x.dtype, device=x.device)
    n = weights.sum()
    mu = weights @ x / n
    return mu, (x - mu) * (weights / (n - 1)).sqrt()[:, None]


def _trace_sqrt_product(a1: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """tr sqrtm(S1 S2) for S_i = A_i^T A_i, by the cheaper of two exact routes: the singular values of
    A1 A2^T (few images), or the eigenvalues of L^T S2 L with S1 = L L^T (many images)."""
    n1, n2, d = len(a1), len(a2), a1.shape[1]
    if n1 * n2 * min(n1, n2) < d ** 3:
        return torch.linalg.svdvals(a1 @ a2.T).sum()
    s1, s2 = symmetric_product(a1.T), symmetric_product(a2.T)
    chol, info = torch.linalg.cholesky_ex(s1)
    if int(info) == 0:
        inner = chol.T @ s2 @ chol
    else:  # singular S1: symmetric square root instead
        w, v = torch.linalg.eigh(s1)
        root = (v * w.clamp_min(0).sqrt()) @ v.T
        inner = root @ s2 @ root
    return torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()


def frechet(x1: torch.Tensor, x2: torch.Tensor, w1: torch.Tensor | None = None, w2: torch.Tensor | None = None) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) of two float64 feature sets (optionally weighted)."""
    (mu1, a1), (mu2, a2) = _centred(x1, w1), _centred(x2, w2)
    diff = mu1 - mu2
    return float(diff @ diff + a1.square().sum() + a2.square().sum() - 2 * _trace_sqrt_product(a1, a2))


def _as64(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64, device=device)


def fid(real: np.ndarray, fake: np.ndarray, device: str | None = None) -> float:
    """Fréchet distance between two feature sets (float64; on the GPU when there is one)."""
    _check_dims(real, fake)
    for name, x in (("real", real), ("fake", fake)):
        if len(x) < 2:
            raise UserError(f"FID needs at least 2 images per set; the {name} set has {len(x)}")
    dev = _device(device)
    return frechet(_as64(real, dev), _as64(fake, dev))


MAX_GRAM_ELEMENTS = 2.5e8  # 1 GB per float32 matrix


class Grams:
    """The dot-product matrices of a real/fake pair, computed once in float32 on ``device``."""

    def __init__(self, real: np.ndarray, fake: np.ndarray, device: str | None = None):
        _check_dims(real, fake)
        if max(len(real), len(fake)) ** 2 > MAX_GRAM_ELEMENTS:
            raise UserError(f"{len(real)} real x {len(fake)} fake images is too many for in-memory KID/PR "
                            f"(limit {int(MAX_GRAM_ELEMENTS ** 0.5)} per set); lower the number of samples")
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.x = torch.from_numpy(np.ascontiguousarray(real, np.float32)).to(dev)
        self.y = torch.from_numpy(np.ascontiguousarray(fake, np.float32)).to(dev)
        self._cache: dict = {}

    def dot(self, which: str) -> torch.Tensor:
        """'xx', 'yy' or 'xy' dot products."""
        if which not in self._cache:
            self._cache[which] = (self.x @ self.y.T if which == "xy"
                                  else symmetric_product(self.x if which == "xx" else self.y))
        return self._cache[which]

    def sqdist(self, which: str) -> torch.Tensor:
        """Squared Euclidean distances from the dot products (the real-to-fake ones kept: PR and
        memorisation both read them)."""
        key = f"sqdist_{which}"
        if key in self._cache:
            return self._cache[key]
        a, b = {"xx": (self.x, self.x), "yy": (self.y, self.y), "xy": (self.x, self.y)}[which]
        dist = (self.dot(which) * -2).add_((a * a).sum(1)[:, None]).add_((b * b).sum(1)[None, :]).clamp_min_(0)
        if which == "xy":
            self._cache[key] = dist
        return dist

    def fake_to_real_nearest(self) -> tuple[np.ndarray, np.ndarray]:
        """Each fake's distance to its nearest real and that real's index (computed once)."""
        if "nearest" not in self._cache:
            best = self.sqdist("xy").min(0)
            self._cache["nearest"] = (best.values.sqrt().cpu().numpy(), best.indices.cpu().numpy())
        return self._cache["nearest"]


def _subset_sums(kernel: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """For indicator rows R (S, n) and cols C (S, m): sum of kernel[R_s][:, C_s] per subset s.

    Row sums of <= m terms in float32, the final sums (where MMD's cancellation happens) in float64.
    """
    return ((rows.float() @ kernel).double() * cols).sum(1)


def kid(grams: Grams, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """Unbiased polynomial-kernel MMD^2 over seeded subsets: (mean, std, subset size used)."""
    n_x, n_y, d = len(grams.x), len(grams.y), grams.x.shape[1]
    m = min(subset_size, n_x, n_y)
    if m < 2:
        raise UserError(f"KID needs at least 2 images per set; got {n_x} real and {n_y} fake")
    rng = np.random.default_rng(seed)
    dev = grams.x.device
    ind_x = torch.zeros(subsets, n_x, dtype=torch.float64, device=dev)
    ind_y = torch.zeros(subsets, n_y, dtype=torch.float64, device=dev)
    for s in range(subsets):
        ind_x[s, torch.from_numpy(rng.choice(n_x, m, replace=False))] = 1
        ind_y[s, torch.from_numpy(rng.choice(n_y, m, replace=False))] = 1
    k_xx, k_yy, k_xy = (grams.dot(w).mul(1 / d).add_(1).pow_(3) for w in ("xx", "yy", "xy"))
    within_x = _subset_sums(k_xx, ind_x, ind_x) - ind_x @ k_xx.diagonal().double()
    within_y = _subset_sums(k_yy, ind_y, ind_y) - ind_y @ k_yy.diagonal().double()
    cross = _subset_sums(k_xy, ind_x, ind_y)
    mmd = (within_x + within_y) / (m * (m - 1)) - 2 * cross / (m * m)
    values = mmd.cpu().numpy()
    return float(values.mean()), float(values.std()), m


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS = exp E[KL(p(y|x) || p(y))] per split, mean and std over ``splits`` consecutive splits."""
    if len(logits) < splits:
        raise UserError(f"IS with {splits} splits needs at least {splits} images; got {len(logits)}")
    z = torch.from_numpy(logits.astype(np.float64))
    logp = torch.log_softmax(z, dim=1)
    scores = []
    for part in torch.tensor_split(logp, splits):
        log_marginal = torch.logsumexp(part, 0) - np.log(len(part))
        kl = (part.exp() * (part - log_marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def precision_recall(grams: Grams, k: int = 3) -> tuple[float, float]:
    """Improved precision (fake inside the real manifold) and recall (real inside the fake manifold)."""
    n_x, n_y = len(grams.x), len(grams.y)
    if min(n_x, n_y) < k + 1:
        raise UserError(f"precision/recall with k={k} needs at least {k + 1} images per set; "
                        f"got {n_x} real and {n_y} fake")
    # k+1 smallest: each point is its own nearest neighbour
    radius_x = grams.sqdist("xx").topk(k + 1, dim=1, largest=False).values[:, -1]
    radius_y = grams.sqdist("yy").topk(k + 1, dim=1, largest=False).values[:, -1]
    d_xy = grams.sqdist("xy")
    precision = (d_xy <= radius_x[:, None]).any(0).double().mean()
    recall = (d_xy <= radius_y[None, :]).any(1).double().mean()
    return float(precision), float(recall)


def nearest(query: np.ndarray, ref: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest ``ref`` row, and that row's index."""
    _check_dims(query, ref)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    r = torch.from_numpy(np.ascontiguousarray(ref, np.float32)).to(dev)
    r_sq = (r * r).sum(1)
    dists, index = [], []
    for start in range(0, len(query), chunk):
        q = torch.from_numpy(np.ascontiguousarray(query[start:start + chunk], np.float32)).to(dev)
        d2 = ((q * q).sum(1)[:, None] + r_sq[None, :] - 2 * q @ r.T).clamp_min_(0)
        best = d2.min(1)
        dists.append(best.values.sqrt().cpu().numpy())
        index.append(best.indices.cpu().numpy())
    return np.concatenate(dists), np.concatenate(index)


def memorisation(fake: np.ndarray, train: np.ndarray, test: np.ndarray, quantile: float = 0.05,
                 grams: Grams | None = None) -> dict:
    """NN distances of fakes to train and test reals against the test-to-train real baseline (rule 5).

    ``grams`` of (train, fake), when given, supplies the fake-to-train distances.

    A fake counts as memorised when it lies closer to a train image than the ``quantile`` of real test
    images do; a generator that produces fresh images of the same distribution scores about ``quantile``.
    """
    if grams is not None:  # x = train, y = fake: reuse their distances
        d_train = grams.fake_to_real_nearest()[0]
    else:
        d_train, _ = nearest(fake, train)
    d_test, _ = nearest(fake, test)
    baseline, _ = nearest(test, train)
    threshold = float(np.quantile(baseline, quantile))
    return {"memorised_fraction": float((d_train < threshold).mean()), "memorisation_quantile": quantile,
            "memorisation_threshold": threshold, "nn_train_median": float(np.median(d_train)),
            "nn_test_median": float(np.median(d_test)), "nn_real_baseline_median": float(np.median(baseline)),
            "closer_to_train_fraction": float((d_train < d_test).mean())}
