"""Score one synthetic shard against the real train and test images of its class -> ``metrics.json``.

Every metric reads the same cached features (one pass per image set). FID, KID, IS and
precision/recall compare the fakes with the train reals the generator learned from; the real-vs-real
floor compares train with test reals of the same class and pipeline (PROTOCOL rule 8); memorisation
measures fakes against both (rule 5) and draws the 16 closest fake/train pairs.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..atomic import atomic_path, write_json
from ..data.shards import ShardReader
from ..errors import UserError
from . import generative as gm
from .extractors import load_extractor
from .features import Features, ImageSet, extract_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenMetricsConfig:
    """Settings of one generative-metrics evaluation (all recorded in metrics.json)."""

    extractor: str = "inception"
    n_boot: int = 100
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_k: int = 3
    memorisation_quantile: float = 0.05
    seed: int = 0
    batch_size: int = 64


def _synthetic_label(reader: ShardReader, path: Path) -> str:
    if not reader.attrs.get("synthetic"):
        raise UserError(f"{path}: not a synthetic shard (no 'synthetic' attr); sample one with 'skingen gen sample'")
    label = reader.attrs.get("synthetic_class")
    if not label:
        raise UserError(f"{path}: synthetic shard names no target class; re-sample it with this version")
    return str(label)


def closest_pairs_png(fake: Features, train: Features, nearest: tuple[np.ndarray, np.ndarray], fake_shard: Path,
                      train_shard: Path, out: Path, n: int = 16) -> Path:
    """The ``n`` fakes closest to a train image, each beside that image, as one PNG (2 columns per pair)."""
    dist, index = nearest  # each fake's distance to its nearest train image, and that image
    order = np.argsort(dist)[:n]
    fr, tr = ShardReader(fake_shard), ShardReader(train_shard)
    size = int(tr.attrs.get("image_size", 64))
    tiles = []
    for i in order:
        pair = [fr.image(int(fake.indices[i])), tr.image(int(train.indices[index[i]]))]
        tiles.append(np.concatenate([np.asarray(Image.fromarray(p).resize((size, size))) for p in pair], axis=1))
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + cols], axis=1) for r in range(0, len(tiles), cols)]
    with atomic_path(out) as tmp:
        Image.fromarray(np.concatenate(rows, axis=0)).save(tmp, format="PNG")
    return out


def real_features(real_shards: str | os.PathLike, label: str, extractor, cache: str | os.PathLike,
                  batch_size: int = 64) -> tuple:
    """Features of the real train and test images of class ``label`` (one cached pass per set, reused by
    every generator of the pipeline): ``cache``/{train,test}_<label>.h5."""
    real_shards, cache = Path(real_shards), Path(cache)
    return tuple(extract_features(ImageSet(real_shards / f"{split}.h5", label), extractor, cache / f"{split}_{label}.h5",
                                  batch_size) for split in ("train", "test"))


def evaluate_synthetic(fake_shard: str | os.PathLike, real_shards: str | os.PathLike, out: str | os.PathLike,
                       cfg: GenMetricsConfig, features_dir: str | os.PathLike | None = None,
                       assets: str | os.PathLike | None = None) -> dict:
    """All generative metrics of ``fake_shard`` vs ``real_shards``/{train,test}.h5 of its class into ``out``."""
    fake_shard, real_shards, out = Path(fake_shard), Path(real_shards), Path(out)
    label = _synthetic_label(ShardReader(fake_shard), fake_shard)
    extractor = load_extractor(cfg.extractor, assets)
    cache = Path(features_dir) if features_dir else out / "features"
    log.info("scoring %s (%s) against %s with %s; outputs in %s", fake_shard, label, real_shards, extractor.name, out)
    fake = extract_features(ImageSet(fake_shard), extractor, out / "features" / "synthetic.h5", cfg.batch_size)
    train, test = real_features(real_shards, label, extractor, cache, cfg.batch_size)
    grams = gm.Grams(train.features, fake.features)
    kid_mean, kid_std, kid_m = gm.kid(grams, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
    precision, recall = gm.precision_recall(grams, cfg.pr_k)
    result = {
        "label": label, "reference": "train", "n_real": len(train), "n_fake": len(fake), "n_test": len(test),
        "fid": gm.fid(train.features, fake.features),
        "fid_ci": list(gm.fid_bootstrap(train.features, fake.features, cfg.n_boot, cfg.seed)),
        "fid_ci_method": f"percentile bootstrap ({cfg.n_boot}x, both sets resampled); FID is biased upward at "
                         "small N, so the interval can lie above the point estimate",
        "fid_floor": gm.fid(train.features, test.features),
        "kid": kid_mean, "kid_std": kid_std, "kid_subset_size": kid_m,
        "precision": precision, "recall": recall,
        **gm.memorisation(fake.features, train.features, test.features, cfg.memorisation_quantile, grams),
        "extractor": extractor.name, "extractor_sha256": extractor.weights_sha256,
        "implementation": f"skingen {__version__} metrics.generative on torch {torch.__version__} (FID = "
                          f"clean-fid's Fréchet distance, checked against clean-fid); features: {extractor.implementation}",
        "config": asdict(cfg), "fake_shard": str(fake_shard), "real_shards": str(real_shards),
    }
    result["is_splits"] = min(cfg.is_splits, len(fake))  # fewer splits for a small synthetic set, recorded
    if fake.logits is not None:
        result["is_mean"], result["is_std"] = gm.inception_score(fake.logits, result["is_splits"])
    else:
        result["is_mean"] = result["is_std"] = None  # the extractor has no classifier head
    closest_pairs_png(fake, train, grams.fake_to_real_nearest(), fake_shard, real_shards / "train.h5",
                      out / "closest_pairs.png")
    write_json(out / "metrics.json", result)
    log.info("FID %.3f [%.3f, %.3f] (floor %.3f), KID %.5f, memorised %.3f -> %s", result["fid"], *result["fid_ci"],
             result["fid_floor"], kid_mean, result["memorised_fraction"], out / "metrics.json")
    return result
