"""Score pipelines against the phantom's ground truth: hair-mask IoU, PSNR/SSIM inside artifact
regions and inside the lesion away from artifacts (does cleaning erase lesion texture?), images/s.

Only the artifact-removal steps are scored against the clean image (colour normalisation changes
every pixel by design and is skipped here); throughput is timed for the full pipeline.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import write_csv, write_json
from ..data.images import load_rgb
from ..data.phantom_artifacts import MASK_BITS
from ..errors import UserError
from .quality import RegionScore, ssim_map
from .registry import NORMALISING_STEPS, STEPS, Pipeline, get_pipeline
from .steps import hair_mask


def read_ground_truth(root: Path, limit: int = 0) -> list[dict]:
    """Image ids with their artifacts from a phantom folder (``ground_truth/artifacts.csv``)."""
    listing = root / "ground_truth" / "artifacts.csv"
    if not listing.is_file():
        raise UserError(f"{listing}: not found; PHANTOM_DIR must come from 'skingen data phantom'")
    with open(listing) as fh:
        rows = list(csv.DictReader(fh))
    return rows[:limit] if limit else rows


def _load(root: Path, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gt = root / "ground_truth"
    image = load_rgb(root / "images" / f"{image_id}.jpg")
    clean = load_rgb(gt / f"{image_id}_clean.png")
    artifacts = cv2.imread(str(gt / f"{image_id}_artifacts.png"), cv2.IMREAD_UNCHANGED)
    lesion = cv2.imread(str(gt / f"{image_id}_lesion.png"), cv2.IMREAD_UNCHANGED) > 0
    return image, clean, artifacts, lesion


def clean_with_hair_mask(pipe: Pipeline, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the artifact-removal steps; return the result and the hair mask DullRazor used (or empty)."""
    predicted = np.zeros(image.shape[:2], bool)
    for name, params in pipe.steps:
        if name in NORMALISING_STEPS:
            continue
        if name == "dullrazor":
            mask_params = {k: v for k, v in params.items() if k not in ("inpaint_radius", "method")}
            predicted |= hair_mask(image, **mask_params) > 0
        image = STEPS[name](image, **params)
    return image, predicted


def regions(artifacts: np.ndarray, lesion: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean regions: one per artifact type present, and the lesion interior away from artifacts."""
    out = {name: (artifacts & bit) > 0 for name, bit in MASK_BITS.items() if (artifacts & bit).any()}
    near_artifact = cv2.dilate((artifacts > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    interior = cv2.erode(lesion.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    out["lesion_interior"] = interior & ~near_artifact
    return out


def evaluate_pipeline(pipe: Pipeline, root: Path, rows: list[dict]) -> dict:
    """All scores of one pipeline over the phantom images in ``rows``."""
    scores: dict[str, RegionScore] = {}
    inter = union = 0
    per_image_iou = []
    seconds = 0.0
    for row in tqdm(rows, desc=f"eval {pipe.name}", unit="img", disable=None):
        image, clean, artifacts, lesion = _load(root, row["image_id"])
        start = time.perf_counter()
        pipe(image, 256)
        seconds += time.perf_counter() - start
        out, predicted = clean_with_hair_mask(pipe, image)
        ssim = ssim_map(out, clean)
        for name, region in regions(artifacts, lesion).items():
            scores.setdefault(name, RegionScore()).add(out, clean, region, ssim)
        truth = (artifacts & MASK_BITS["hair"]) > 0
        if truth.any():
            i, u = int((truth & predicted).sum()), int((truth | predicted).sum())
            inter, union = inter + i, union + u
            per_image_iou.append(i / u)
    return {
        "pipeline": pipe.record(),
        "images_per_s": round(len(rows) / seconds, 2) if seconds else None,
        "hair_iou": round(inter / union, 4) if union else None,
        "hair_iou_mean_per_image": round(float(np.mean(per_image_iou)), 4) if per_image_iou else None,
        "regions": {k: v.result() for k, v in sorted(scores.items())},
    }


def evaluate(root: str | os.PathLike, pipelines: list[str], out: str | os.PathLike, limit: int = 0) -> dict:
    """Score each pipeline on the phantom at ``root``; write JSON, CSV and the before/after panel."""
    root, out = Path(root), Path(out)
    rows = read_ground_truth(root, limit)
    pipes = [get_pipeline(p) for p in pipelines]
    results = {p.name: evaluate_pipeline(p, root, rows) for p in pipes}
    report = {"phantom": str(root.resolve()), "n_images": len(rows), "pipelines": results}
    write_json(out / "preprocess_eval.json", report)
    table = []
    for name, res in results.items():
        for region, score in res["regions"].items():
            table.append({"pipeline": name, "region": region, **score,
                          "hair_iou": res["hair_iou"] if region == "hair" else "",
                          "images_per_s": res["images_per_s"]})
    write_csv(out / "preprocess_eval.csv",
              ("pipeline", "region", "n_images", "n_pixels", "psnr", "ssim", "hair_iou", "images_per_s"), table)
    from .panel import before_after_panel

    before_after_panel(root, rows, pipes, out / "preprocess_panel.png")
    return report
