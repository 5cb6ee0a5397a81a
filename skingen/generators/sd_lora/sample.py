"""Sampling a trained ``sd_lora`` cell: the base pipeline with the LoRA loaded, DPM-Solver++ or DDIM, classifier-free
guidance, one seed per image, into a synthetic shard (resized to the study's size as packing resizes) or a grid."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from ...progress import progress
from ..common import sample_classes, save_grid, write_synthetic_shard
from .base import base_folder
from .config import SAMPLERS, class_prompt
from .snapshot import LORA_FILE


def image_seed(seed: int, index: int) -> int:
    """The torch seed of image ``index`` of a run with ``seed`` (instances never share an image's noise)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def read_snapshot(cell: Path) -> dict:
    """The cell's ``snapshot/snapshot.json``, or a one-line error."""
    path = cell / "snapshot" / "snapshot.json"
    if not path.is_file() or not (cell / "snapshot" / LORA_FILE).is_file():
        raise UserError(f"{cell}: no trained sd_lora snapshot (snapshot/{LORA_FILE}); train the generator cell first")
    return json.loads(path.read_text())


def load_pipeline(cell: Path, sampler: str):
    """The base's StableDiffusionPipeline with the cell's LoRA and the chosen scheduler."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

    if sampler not in SAMPLERS:
        raise UserError(f"sd_lora sampler {sampler!r} unknown; use one of {', '.join(SAMPLERS)}")
    snap = read_snapshot(cell)
    gpu = torch.cuda.is_available()
    # SD-1.5's model_index names a safety checker and its feature extractor; neither is fetched nor used
    pipe = StableDiffusionPipeline.from_pretrained(str(base_folder(snap["base"])), safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False,
                                                   torch_dtype=torch.float16 if gpu else torch.float32)
    pipe.load_lora_weights(str(cell / "snapshot"), weight_name=LORA_FILE)
    kind = snap.get("prediction_type", pipe.scheduler.config.get("prediction_type", "epsilon"))  # what it learnt
    if sampler == "ddim":
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, prediction_type=kind)
    else:
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++",
                                                                 prediction_type=kind)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cuda" if gpu else "cpu"), snap


@torch.no_grad()
def generate(pipe, prompt: str, seeds: list[int], steps: int, guidance: float, negative: str, res: int) -> np.ndarray:
    """One pipeline call: images as floats in [0, 1] (n, R, R, 3), image i from a generator seeded ``seeds[i]``."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    return np.asarray(pipe(prompt=[prompt] * len(seeds), negative_prompt=[negative] * len(seeds) if negative else None,
                           num_inference_steps=steps, guidance_scale=guidance, generator=gens, height=res, width=res,
                           output_type="np").images)


def sample_images(cell: str | os.PathLike, n: int, label: str, seed: int = 0, batch: int = 8,
                  sampler: str = "dpmsolver++", steps: int = 25, guidance: float = 7.5, negative: str = "",
                  desc: str = "sd_lora sampling") -> np.ndarray:
    """``n`` images (n, R, R, 3) uint8 of class ``label`` at the base's resolution; image i from ``image_seed``."""
    pipe, snap = load_pipeline(Path(cell), sampler)
    prompt = class_prompt(snap["prompt_template"], label)
    res, out = snap["resolution"], []
    for start in progress(range(0, n, batch), desc=desc, unit="batch"):
        seeds = [image_seed(seed, i) for i in range(start, min(n, start + batch))]
        out.append((generate(pipe, prompt, seeds, steps, guidance, negative, res) * 255).round().astype(np.uint8))
    return np.concatenate(out) if out else np.zeros((0, res, res, 3), np.uint8)


def sample_grid(cell: Path, out: Path, n: int = 4, seed: int = 0) -> Path:
    """A PNG grid of ``n`` samples of the LoRA's first class (DPM-Solver++, 25 steps)."""
    snap = read_snapshot(cell)
    label = snap["config"]["target_class"]
    return save_grid(sample_images(cell, n, label, seed, batch=n, desc="grid"), out)


def sample_to_shard(cell_dir: str | os.PathLike, out_shard: str | os.PathLike, n: int, label: str, image_size: int,
                    seed: int = 0, batch: int = 8, options: dict | None = None, generator_cell: str = "",
                    extra_attrs: dict | None = None) -> Path:
    """Sample ``n`` images of class ``label`` into a synthetic shard with provenance."""
    cell_dir, o = Path(cell_dir), dict(options or {})
    snap = read_snapshot(cell_dir)
    names = sample_classes(cell_dir, label, snap.get("class_names"), extra_attrs, False)
    trained = snap["config"]["classes"] == "all" or label == snap["config"]["target_class"]
    if not trained:
        raise UserError(f"{cell_dir}: the LoRA learnt {snap['config']['target_class']} only; asked for {label} "
                        "(train it with [generate.sd_lora] classes = \"all\")")
    sampler, steps = o.get("sd_sampler", "dpmsolver++"), int(o.get("sd_steps", 25))
    guidance, negative = float(o.get("guidance_scale", 7.5)), str(o.get("negative_prompt", ""))
    images = sample_images(cell_dir, n, label, seed, batch, sampler, steps, guidance, negative)
    attrs = {"synthetic": True, "generator": "sd_lora", "generator_cell": generator_cell or str(cell_dir),
             "checkpoint_step": snap["step"], "base": snap["base"], "base_fingerprint": snap["base_fingerprint"],
             "lora_rank": snap["rank"], "sampler": sampler, "sampling_steps": steps, "guidance_scale": guidance,
             "negative_prompt": negative, "prompt": class_prompt(snap["prompt_template"], label),
             "sampling_seed": seed, "image_seed_rule": "torch seed of image i = SeedSequence([seed, i]) >> 1",
             "generated_resolution": snap["resolution"], "synthetic_class": label, **(extra_attrs or {}),
             "class_names": names}
    return write_synthetic_shard(out_shard, images, label, image_size, attrs, f"SYN_sd_lora_{seed}",
                                 "synthetic:sd_lora", n)
