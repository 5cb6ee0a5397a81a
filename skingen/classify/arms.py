"""Augmentation arms: what is added to the real train split (val and test never change).

``real`` nothing; ``gta`` S classically augmented copies of target-class train images;
``oversample`` S plain repeats of them; ``class_weighted`` nothing added, inverse-frequency loss
weights; ``synthetic`` S images of the target class from a generator's shard; ``synthetic_only``
the target class's real train images replaced by S synthetic ones. S = round(dose x real target count).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.classes import shard_classes
from ..data.shards import ShardReader
from ..errors import UserError

ARMS = ("real", "gta", "oversample", "class_weighted", "synthetic", "synthetic_only")
REAL, SYNTHETIC = 0, 1


@dataclass(frozen=True)
class ArmConfig:
    """Which arm, for which class, at which dose, from which synthetic shard, with which seed."""

    name: str = "real"
    target_class: str = "MEL"
    dose: float = 1.0
    synthetic_shard: str | None = None
    seed: int = 0
    generator: str = ""  # which generator made the synthetic shard (recorded; names the arm in reports)
    generator_seed: int | None = None  # which trained instance of it, when the study trains several


@dataclass
class Arm:
    """The training entries (source, index, strong augmentation?), their labels, loss weights, composition."""

    entries: list[tuple[int, int, bool]]
    labels: np.ndarray
    class_weights: torch.Tensor | None
    composition: dict = field(default_factory=dict)


def _check(cfg: ArmConfig, real: ShardReader) -> int:
    """The target class's label index in the real shard, after checking the config."""
    names = shard_classes(real)
    if cfg.name not in ARMS:
        raise UserError(f"arm {cfg.name!r} unknown; use one of {', '.join(ARMS)}")
    if cfg.target_class not in names:
        raise UserError(f"target_class {cfg.target_class!r} is not a class of {real.path} ({', '.join(names)}); "
                        "use one of them")
    if cfg.dose < 0:
        raise UserError(f"dose must be >= 0 (got {cfg.dose})")
    return names.index(cfg.target_class)


def open_synthetic(cfg: ArmConfig, real: ShardReader) -> ShardReader:
    """The synthetic shard of a synthetic arm, checked: synthetic, target class only, same image size."""
    if not cfg.synthetic_shard:
        raise UserError(f"arm {cfg.name!r} needs synthetic_shard (a shard written by a generator's sample stage)")
    syn = ShardReader(cfg.synthetic_shard)
    if not syn.attrs.get("synthetic"):
        raise UserError(f"{syn.path}: not a synthetic shard (attr 'synthetic' missing); real images cannot "
                        "stand in for synthetic ones")
    if syn.attrs.get("image_size") != real.attrs.get("image_size"):
        raise UserError(f"{syn.path}: image size {syn.attrs.get('image_size')} differs from the real shard's "
                        f"{real.attrs.get('image_size')}; sample at the study's size")
    if shard_classes(syn) != shard_classes(real):
        raise UserError(f"{syn.path}: classes {list(shard_classes(syn))} differ from the real shard's "
                        f"{list(shard_classes(real))}; sample it from a generator of this study")
    target = shard_classes(real).index(cfg.target_class)
    if len(syn) and not (syn.labels == target).all():
        raise UserError(f"{syn.path}: holds classes other than {cfg.target_class}")
    return syn


def build_arm(real: ShardReader, cfg: ArmConfig) -> tuple[Arm, ShardReader | None]:
    """Compose the training set of ``cfg`` over the real train shard (and its synthetic shard)."""
    target = _check(cfg, real)
    names = shard_classes(real)
    rng = np.random.default_rng(cfg.seed)
    target_idx = np.flatnonzero(real.labels == target)
    dose_n = int(round(cfg.dose * len(target_idx)))
    entries = [(REAL, i, False) for i in range(len(real))]
    synthetic = None
    if cfg.name in ("gta", "oversample") and dose_n:
        if not len(target_idx):
            raise UserError(f"{real.path}: no {cfg.target_class} train images to {cfg.name}")
        picks = np.concatenate([rng.permutation(target_idx) for _ in range(-(-dose_n // len(target_idx)))])[:dose_n]
        entries += [(REAL, int(i), cfg.name == "gta") for i in picks]
    elif cfg.name in ("synthetic", "synthetic_only"):
        synthetic = open_synthetic(cfg, real)
        if len(synthetic) < dose_n:
            raise UserError(f"{synthetic.path}: {len(synthetic)} images, the dose needs {dose_n}; sample more")
        if cfg.name == "synthetic_only":
            entries = [e for e in entries if real.labels[e[1]] != target]
        entries += [(SYNTHETIC, int(i), False) for i in rng.choice(len(synthetic), dose_n, replace=False)]
    labels = np.array([real.labels[i] if src == REAL else target for src, i, _ in entries])
    weights = None
    if cfg.name == "class_weighted":
        counts = np.bincount(labels, minlength=len(names)).astype(float)
        w = np.where(counts > 0, counts.sum() / (len(names) * np.maximum(counts, 1)), 0.0)
        weights = torch.tensor(w, dtype=torch.float32)
    return Arm(entries, labels, weights, _composition(cfg, real, entries, synthetic, weights, dose_n)), synthetic


def _composition(cfg: ArmConfig, real: ShardReader, entries, synthetic, weights, dose_n: int) -> dict:
    names = shard_classes(real)
    per_class = {c: {"real": 0, "gta": 0, "oversample": 0, "synthetic": 0} for c in names}
    seen_real: set[int] = set()
    for src, i, strong in entries:
        if src == SYNTHETIC:
            per_class[cfg.target_class]["synthetic"] += 1
            continue
        cls = names[real.labels[i]]
        kind = "real" if i not in seen_real else ("gta" if strong else "oversample")
        seen_real.add(i)
        per_class[cls][kind] += 1
    return {
        "arm": cfg.name, "target_class": cfg.target_class, "dose": cfg.dose, "dose_images": dose_n, "seed": cfg.seed,
        "per_class": per_class, "total": len(entries),
        "class_weights": None if weights is None else [round(float(w), 6) for w in weights],
        "real_shard": str(real.path), "real_split_sha256": real.attrs.get("split_sha256"),
        "synthetic_shard": None if synthetic is None else str(synthetic.path),
        "synthetic_sha256": None if synthetic is None else hashlib.sha256(Path(synthetic.path).read_bytes()).hexdigest(),
        "synthetic_provenance": None if synthetic is None else {k: v for k, v in synthetic.attrs.items()
                                                                 if k not in ("class_names",)},
    }


class ArmDataset(torch.utils.data.Dataset):
    """Training images of an arm: real or synthetic entries, the GTA ones with the strong transform.

    Augmentation of entry k in epoch e draws from torch's RNG seeded by ``SeedSequence([seed, e, k])`` (the
    caller sets ``epoch``), so it does not depend on the process, worker or batch the entry lands in."""

    def __init__(self, real: ShardReader, synthetic: ShardReader | None, arm: Arm, transform, strong_transform,
                 seed: int = 0):
        self.readers = (real, synthetic)
        self.arm = arm
        self.transform, self.strong = transform, strong_transform
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.arm.entries)

    def __getitem__(self, k: int):
        src, i, strong = self.arm.entries[k]
        image = torch.from_numpy(self.readers[src].image(i)).permute(2, 0, 1)
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only (the one the transforms draw from); torch.manual_seed would reseed CUDA's too
            torch.default_generator.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, k]).generate_state(1)[0]))
            image = (self.strong if strong else self.transform)(image)
        return image, int(self.arm.labels[k])
