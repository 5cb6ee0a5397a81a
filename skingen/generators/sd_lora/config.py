"""The ``sd_lora`` generator's settings and its class prompts."""
from __future__ import annotations

from dataclasses import dataclass

import torch

# Readable names for the prompts; a class not listed is named by its code in lower case.
READABLE = {"NV": "melanocytic nevus", "BCC": "basal cell carcinoma", "BKL": "benign keratosis", "MEL": "melanoma",
            "SCC": "squamous cell carcinoma", "AKIEC": "actinic keratosis", "AK": "actinic keratosis",
            "DF": "dermatofibroma", "VASC": "vascular lesion"}
SAMPLERS = ("dpmsolver++", "ddim")
SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
STANDIN = "standin:tiny"  # a tiny Stable Diffusion built locally (tests and the CPU demo), never downloaded


@dataclass(frozen=True)
class SDLoRAConfig:
    """Everything an ``sd_lora`` cell depends on; training follows diffusers' ``train_text_to_image_lora.py``."""

    base: str = "/assets/diffusers/stable-diffusion-v1-5"  # diffusers-format SD folder, or "standin:tiny"
    resolution: int = 512  # training and sampling size (the base's); samples are resized to the study's size
    target_class: str = "MEL"
    classes: str = "target"  # target: target-class train images; all: every train class, each with its prompt
    prompt_template: str = "a dermoscopic image of {name}"
    rank: int = 4
    alpha: float = 0.0  # 0: alpha = rank (the example's)
    max_steps: int = 15000
    epochs: int = 0  # > 0: the run's length in epochs over the training images (then max_steps is ignored)
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    lr_scheduler: str = "constant"
    warmup_steps: int = 500
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 1e-2
    adam_eps: float = 1e-8
    grad_clip: float = 1.0  # 0: no clipping (what the example does in effect: its clip is given a spent iterator)
    noise_offset: float = 0.0
    snr_gamma: float = 0.0  # 0: plain MSE; > 0: Min-SNR weighting with this gamma
    prediction_type: str = ""  # "": the base scheduler's (epsilon or v_prediction)
    mixed_precision: str = "auto"  # auto: fp16 on a GPU, fp32 on a CPU; no | fp16 | bf16
    gradient_checkpointing: bool = False
    random_flip: bool = True
    cache_latents: bool = True
    sampler: str = "dpmsolver++"
    sampling_steps: int = 25
    guidance_scale: float = 7.5
    negative_prompt: str = ""
    checkpoint_every: int = 500
    grid_images: int = 4
    log_every: int = 10
    seed: int = 0

    def lora_alpha(self) -> float:
        """LoRA alpha (the scale is alpha / rank)."""
        return self.alpha or float(self.rank)


def validate(cfg: SDLoRAConfig) -> None:
    """One-line errors for choices the loop and sampler branch on (a study checks every field before this)."""
    from ...errors import UserError

    checks = (("classes", ("target", "all")), ("prediction_type", ("", "epsilon", "v_prediction")),
              ("sampler", SAMPLERS), ("lr_scheduler", SCHEDULES), ("mixed_precision", ("auto", "no", "fp16", "bf16")))
    for key, allowed in checks:
        if getattr(cfg, key) not in allowed:
            raise UserError(f"sd_lora {key} = {getattr(cfg, key)!r}: use one of {', '.join(map(repr, allowed))}")


def class_prompt(template: str, code: str) -> str:
    """The prompt of class ``code``: the template with its readable name."""
    return template.format(name=READABLE.get(code, code.lower()), code=code)


def precision_used(cfg: SDLoRAConfig) -> str:
    """The precision the run uses: auto is fp16 on a GPU (the example's usual setting) and fp32 on a CPU;
    fp16 asked for on a CPU falls back to fp32 (recorded in train_summary.json)."""
    gpu = torch.cuda.is_available()
    if cfg.mixed_precision == "auto":
        return "fp16" if gpu else "no"
    if cfg.mixed_precision == "fp16" and not gpu:
        return "no"
    return cfg.mixed_precision


def weight_dtype(precision: str) -> torch.dtype:
    """The dtype of the frozen weights (VAE, text encoder, UNet) under ``precision``, as the example casts."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
