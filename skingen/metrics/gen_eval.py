"""Score one synthetic shard against the real train and test images of its class -> ``metrics.json``.

Every metric reads the same cached features (one pass per image set). The headline FID, KID and
precision/recall compare the fakes with the held-out test reals at matched N, beside the real-vs-real
floor (train vs test reals) at the same N (PROTOCOL rule 8, ``matched.py``); the full-N numbers against
the train reals the generator learned from are kept under ``full_n``. Memorisation measures fakes
against train and test reals (rule 5), with an interval and a matched-size real baseline, and draws the
16 closest fake/train pairs.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..atomic import atomic_path, write_json
from ..data.shards import ShardReader
from ..errors import UserError
from . import fidelity
from . import generative as gm
from . import matched as mt
from .extractors import load_extractor
from .features import Features, ImageSet, extract_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenMetricsConfig:
    """Settings of one generative-metrics evaluation (all recorded in metrics.json)."""

    extractor: str = "inception"
    extractors: tuple[str, ...] = ()  # several feature spaces, one scoring each (default: just ``extractor``)
    n_boot: int = 100
    matched_repeats: int = 10
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_k: int = 5  # precision/recall neighbours (dgm-eval's 5; Kynkaenniemi et al. used 3); fewer, recorded, when a
    dc_k: int = 5  # set is smaller; density/coverage neighbours (Naeem et al.), likewise
    memorisation_quantile: float = 0.05
    seed: int = 0
    batch_size: int = 64

    def spaces(self) -> tuple[str, ...]:
        """The feature spaces a study scores its generators in, the first one the default (t-SNE, headline)."""
        return tuple(self.extractors) or (self.extractor,)

    def in_space(self, name: str) -> "GenMetricsConfig":
        """These settings for one space (what one gen_metrics cell records)."""
        return replace(self, extractor=name, extractors=())

    def __post_init__(self):
        if self.matched_repeats < 10:
            raise UserError(f"gen metrics: matched_repeats = {self.matched_repeats}; PROTOCOL rule 8 asks for >= 10")
        if self.n_boot < 10:
            raise UserError(f"gen metrics: n_boot = {self.n_boot}; use at least 10 (100 or more for a report)")


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


def matched_metrics(train: np.ndarray, test: np.ndarray, fake: np.ndarray, cfg: GenMetricsConfig) -> dict:
    """The generator (fakes vs test reals) and the floor (train vs test reals) at N = min of the three sets:
    mean ± sd over ``cfg.matched_repeats`` subsample rounds, and FID's shifted joint-bootstrap interval."""
    n = min(len(train), len(test), len(fake))
    sets = {"": fake, "_floor": train}
    pr_k, dc_k = min(cfg.pr_k, n - 1), min(cfg.dc_k, n - 1)  # fewer neighbours than the set holds
    reps = mt.matched_repeats(test, sets, n, cfg.matched_repeats, cfg.seed, cfg.kid_subsets, cfg.kid_subset_size,
                              pr_k, dc_k=dc_k)
    boot = mt.fid_bootstrap(test, sets, n, cfg.n_boot, cfg.seed + 1)
    out = {"reference": "test", "n_matched": n, "matched_repeats": cfg.matched_repeats, "dc_k": dc_k, "pr_k": pr_k,
           "kid_subset_size": min(cfg.kid_subset_size, n),
           "fid_ci_method": mt.FID_CI_METHOD.format(n_boot=cfg.n_boot) + f"; ± sd over {cfg.matched_repeats} "
                            "subsample rounds at N"}
    for suffix in sets:
        for metric, values in reps[suffix].items():
            s = mt.summary(values)
            key = "kid_std" if metric == "kid" and not suffix else f"{metric}{suffix}_sd"
            out.update({f"{metric}{suffix}": s["mean"], key: s["sd"], f"{metric}{suffix}_range": s["range"]})
        fids = reps[suffix]["fid"]
        out[f"fid{suffix}_ci"] = mt.shifted_interval(out[f"fid{suffix}"], boot[suffix], rounds=fids)
    diff = np.asarray(reps[""]["fid"]) - np.asarray(reps["_floor"]["fid"])
    out["fid_minus_floor"] = float(diff.mean())
    out["fid_minus_floor_ci"] = mt.shifted_interval(out["fid_minus_floor"], boot[""] - boot["_floor"],
                                                    rounds=diff)
    return out


def full_n_metrics(grams: gm.Grams, cfg: GenMetricsConfig) -> dict:
    """FID, KID, precision/recall, density/coverage and CMMD of all fakes against all train reals (no interval;
    N differs per set)."""
    kid_mean, kid_std, kid_m = gm.kid(grams, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
    precision, recall = gm.precision_recall(grams, min(cfg.pr_k, len(grams.x) - 1, len(grams.y) - 1))
    density, coverage = fidelity.density_coverage(grams, min(cfg.dc_k, len(grams.x) - 1))
    x, y = grams.x.double().cpu().numpy(), grams.y.double().cpu().numpy()
    return {"reference": "train", "n_real": len(x), "n_fake": len(y), "fid": gm.fid(x, y), "kid": kid_mean,
            "kid_std": kid_std, "kid_subset_size": kid_m, "precision": precision, "recall": recall,
            "density": density, "coverage": coverage, "cmmd": fidelity.cmmd(x, y)}


def memorisation_metrics(grams: gm.Grams, fake: np.ndarray, train: np.ndarray, test: np.ndarray,
                         cfg: GenMetricsConfig) -> dict:
    """Rule 5's memorised fraction with its bootstrap interval and the matched-size real baseline."""
    out = gm.memorisation(fake, train, test, cfg.memorisation_quantile, grams)
    d_fake = grams.fake_to_real_nearest()[0]
    d_test, _ = gm.nearest(test, train)
    out["memorised_ci"] = mt.memorised_interval(d_fake, d_test, cfg.memorisation_quantile, cfg.n_boot, cfg.seed)
    out["memorised_ci_method"] = (f"percentile bootstrap ({cfg.n_boot}x; fakes and the test reals that set the "
                                  "threshold redrawn with replacement)")
    out["memorised_baseline"] = mt.memorised_baseline(d_fake, d_test, cfg.memorisation_quantile,
                                                      cfg.matched_repeats, cfg.seed)
    out["memorised_baseline_method"] = (f"{cfg.matched_repeats} rounds: half the test reals set the threshold; "
                                        "'real' is the fraction of the other half under it (an honest generator's "
                                        "score at that size), 'fake' the fraction of as many fakes")
    return out


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
    need = 2  # the fewest images a k-NN manifold (k = 1) and KID can use; k shrinks to fit, recorded
    for name, s in (("train", train), ("test", test), ("synthetic", fake)):
        if len(s) < need:
            raise UserError(f"{name} set of class {label} has {len(s)} images; matched-N metrics need at least "
                            f"{need}")
    grams = gm.Grams(train.features, fake.features)
    result = {
        "label": label, "n_real": len(train), "n_fake": len(fake), "n_test": len(test),
        **matched_metrics(train.features, test.features, fake.features, cfg),
        "full_n": full_n_metrics(grams, cfg),
        **memorisation_metrics(grams, fake.features, train.features, test.features, cfg),
        "extractor": extractor.name, "extractor_sha256": extractor.weights_sha256,
        "implementation": f"skingen {__version__} metrics.generative + metrics.matched on torch {torch.__version__} "
                          f"(FID = clean-fid's Fréchet distance, checked against clean-fid); features: "
                          f"{extractor.implementation}",
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
    log.info("FID %.3f [%.3f, %.3f] at N=%d (floor %.3f), KID %.5f, memorised %.3f -> %s", result["fid"],
             *result["fid_ci"], result["n_matched"], result["fid_floor"], result["kid"], result["memorised_fraction"],
             out / "metrics.json")
    return result
