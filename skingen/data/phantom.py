"""The built-in phantom dataset: procedural dermoscopy-like images in the exact HAM10000 layout.

Writes ``HAM10000_metadata.csv`` + ``images/ISIC_XXXXXXX.jpg`` (so the real ingest path reads it)
and ``ground_truth/`` with, per image, the clean image, the artifact bitmask and the lesion mask.
The classes follow a class set (default paper5; ``dx`` holds each class's code in it, so the
code ``scc`` exists only in the phantom: real HAM10000 has no SCC). Classes without a look of their
own in ``phantom_lesion.STYLES`` borrow one (``BORROWED_STYLE``), so those pairs are hard to tell apart.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path, write_csv, write_json
from ..errors import UserError
from ..parallel import process_pool
from .classes import ClassSet, load_class_set
from .phantom_artifacts import DEFAULT_RATES, MASK_BITS, apply_artifacts
from .phantom_lesion import STYLES, Pose, draw_skin_tone, place_lesion, render_lesion, skin_background

log = logging.getLogger(__name__)

# Class shares of HAM10000 + MILK10k dermoscopic (the study's pooled data), in the study's order.
DEFAULT_SHARES: dict[str, float] = {"NV": 0.53, "BCC": 0.21, "BKL": 0.12, "MEL": 0.11, "SCC": 0.03}
# Shares of the other sets' classes (rare classes floored so small phantoms can still be split).
OTHER_SHARES: dict[str, float] = {"AKIEC": 0.05, "AK": 0.05, "DF": 0.04, "VASC": 0.04}
BORROWED_STYLE: dict[str, str] = {"AKIEC": "SCC", "AK": "SCC", "DF": "BKL", "VASC": "BCC"}
AGE_MEAN: dict[str, int] = {"NV": 42, "MEL": 60, "BCC": 67, "BKL": 62, "SCC": 72, "AKIEC": 70, "AK": 70, "DF": 45,
                            "VASC": 50}
HAM_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset")
FIRST_IMAGE_NUMBER = 24306  # HAM10000 ids start at ISIC_0024306
SITES = ("back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "scalp")


@dataclass(frozen=True)
class LesionPlan:
    """One lesion to render: its ids, class, photographs and seed."""

    lesion_id: str
    label: str
    image_ids: tuple[str, ...]
    seed: np.random.SeedSequence
    code: str = ""  # the ``dx`` code written for it (default: the label, lower-cased)


def class_counts(n: int, shares: dict[str, float] = DEFAULT_SHARES) -> dict[str, int]:
    """Split ``n`` images over classes by largest remainder, at least one per class when n >= classes."""
    total = sum(shares.values())
    raw = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    if n >= len(shares):
        for k in counts:
            counts[k] = max(counts[k], 1)
    order = sorted(raw, key=lambda k: raw[k] - int(raw[k]), reverse=True)
    i = 0
    while sum(counts.values()) < n:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts.values()) > n:
        big = max(counts, key=counts.get)
        counts[big] -= 1
    return counts


def class_shares(class_set: ClassSet) -> dict[str, float]:
    """Image shares of the set's classes: the pooled study's for paper5, fixed ones (0.05 if unknown) otherwise."""
    return {c: DEFAULT_SHARES.get(c, OTHER_SHARES.get(c, 0.05)) for c in class_set.classes}


def plan_lesions(n: int, seed: int, repeat_rate: float = 0.25,
                 classes: str | os.PathLike | dict | ClassSet | None = None) -> list[LesionPlan]:
    """Group ``n`` images of the class set's classes into lesions: ~``repeat_rate`` of lesions get 2-4 photographs."""
    class_set = load_class_set(classes)
    rng = np.random.default_rng(seed)
    root = np.random.SeedSequence(seed)
    plans: list[tuple[str, int]] = []
    for label, count in class_counts(n, class_shares(class_set)).items():
        left = count
        while left > 0:
            repeat = rng.random() < repeat_rate and count > 10  # rare classes: one image per lesion
            k = int(rng.integers(2, 5)) if repeat else 1
            k = min(k, left)
            plans.append((label, k))
            left -= k
    order = rng.permutation(len(plans))
    seeds = root.spawn(len(plans))
    out, number = [], FIRST_IMAGE_NUMBER
    for j, idx in enumerate(order):
        label, k = plans[idx]
        ids = tuple(f"ISIC_{number + m:07d}" for m in range(k))
        number += k
        out.append(LesionPlan(f"HAM_{j:07d}", label, ids, seeds[j], class_set.code_for(label)))
    return out


def _metadata_row(rng: np.random.Generator, plan: LesionPlan, image_id: str) -> dict:
    histo = plan.label != "NV" or rng.random() < 0.3
    age_mu = AGE_MEAN.get(plan.label, 60)
    return {
        "lesion_id": plan.lesion_id, "image_id": image_id, "dx": plan.code or plan.label.lower(),
        "dx_type": "histo" if histo else str(rng.choice(["follow_up", "consensus"])),
        "age": f"{float(np.clip(round(rng.normal(age_mu, 12) / 5) * 5, 5, 85)):.1f}",
        "sex": str(rng.choice(["male", "female"])), "localization": str(rng.choice(SITES)),
        "dataset": "phantom",
    }


def render_plan(plan: LesionPlan, short_side: int, out: Path, rates: dict[str, float]) -> list[dict]:
    """Render and write every photograph of one lesion; return its metadata rows."""
    rng = np.random.default_rng(plan.seed)
    colour, alpha = render_lesion(rng, plan.label if plan.label in STYLES else BORROWED_STYLE.get(plan.label, "NV"))
    tone = draw_skin_tone(rng)
    radius = short_side * rng.uniform(0.2, 0.36)
    hw = (short_side, int(round(short_side * 4 / 3)))
    meta = _metadata_row(rng, plan, plan.image_ids[0])
    rows = []
    for i, image_id in enumerate(plan.image_ids):
        pose = Pose.draw(rng, first=i == 0)
        lc, la = place_lesion(colour, alpha, pose, radius, hw)
        skin = skin_background(rng, tone, hw)
        clean = skin * (1 - la[..., None]) + lc * la[..., None]
        clean = clean * pose.gain * np.array([1 + pose.warmth, 1.0, 1 - pose.warmth], np.float32)
        clean = np.clip(clean, 0, 255).astype(np.uint8)
        image, mask, present = apply_artifacts(rng, clean, rates)
        _write_image(out / "images" / f"{image_id}.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        gt = out / "ground_truth"
        _write_image(gt / f"{image_id}_clean.png", clean)
        _write_image(gt / f"{image_id}_artifacts.png", mask, gray=True)
        _write_image(gt / f"{image_id}_lesion.png", ((la > 0.5) * 255).astype(np.uint8), gray=True)
        rows.append({**meta, "image_id": image_id, "artifacts": ";".join(present)})
    return rows


def _write_image(path: Path, arr: np.ndarray, params: list[int] | None = None, gray: bool = False) -> None:
    data = arr if gray else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params = params or [cv2.IMWRITE_PNG_COMPRESSION, 1]  # ground truth: lossless, fast
    ok, buf = cv2.imencode(path.suffix, data, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _render_star(args) -> list[dict]:
    return render_plan(*args)


def make_phantom(out: str | os.PathLike, n: int, size: int = 256, seed: int = 0, workers: int = 1,
                 rates: dict[str, float] | None = None,
                 classes: str | os.PathLike | dict | ClassSet | None = None) -> Path:
    """Write a phantom dataset of ``n`` images of the set's classes (short side ``size`` px, 4:3) under ``out``."""
    if n < 1:
        raise UserError(f"--n must be at least 1 (got {n})")
    if size < 32:
        raise UserError(f"--size must be at least 32 px (got {size})")
    out = Path(out)
    for sub in ("images", "ground_truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rates = dict(DEFAULT_RATES if rates is None else rates)
    plans = plan_lesions(n, seed, classes=classes)
    jobs = [(p, size, out, rates) for p in plans]
    rows: list[dict] = []
    bar = tqdm(total=n, desc="phantom images", unit="img", disable=None)
    if workers > 1:
        with process_pool(workers) as pool:
            for res in pool.map(_render_star, jobs, chunksize=4):
                rows.extend(res)
                bar.update(len(res))
    else:
        for job in jobs:
            res = render_plan(*job)
            rows.extend(res)
            bar.update(len(res))
    bar.close()
    write_csv(out / "HAM10000_metadata.csv", HAM_COLUMNS, rows)
    write_csv(out / "ground_truth" / "artifacts.csv", ("image_id", "artifacts"), rows)
    write_json(out / "ground_truth" / "legend.json", {
        "mask_bits": MASK_BITS, "artifact_rates": rates, "seed": seed, "n": n, "size": size,
        "class_set": load_class_set(classes).to_config(),
        "files": {"clean": "<image_id>_clean.png", "artifacts": "<image_id>_artifacts.png (bitmask)",
                  "lesion": "<image_id>_lesion.png (0/255)"},
    })
    log.info("phantom: %d images of %d lesions written to %s", len(rows), len(plans), out)
    return out
