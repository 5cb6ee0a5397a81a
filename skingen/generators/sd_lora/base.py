"""The Stable Diffusion base: its folder (or the locally built stand-in), its parts, its fingerprint.

The stand-in (``standin:tiny``) has the real interface — UNet2DConditionModel, AutoencoderKL, CLIPTextModel and
a CLIP tokenizer over a byte-level vocabulary written here — at a size a CPU trains in seconds. It is built
from a fixed seed the first time it is asked for, into the asset cache, so nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import UserError
from ...metrics.extractors import asset_path, assets_dir
from .config import STANDIN

PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
STANDIN_MAX_TOKENS = 48


@dataclass
class Base:
    """A loaded base: frozen parts, its folder and fingerprint."""

    folder: Path
    tokenizer: object
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    scheduler: object
    fingerprint: str


def base_folder(base: str) -> Path:
    """The base's diffusers folder: ``standin:tiny`` built on first use, ``/assets/…`` in the asset cache."""
    if base == STANDIN:
        return build_standin(assets_dir() / "diffusers" / "sd-standin-tiny")
    folder = asset_path(base)
    missing = [p for p in PARTS if not (folder / p).is_dir()]
    if missing or not (folder / "model_index.json").is_file():
        raise UserError(f"sd_lora base {base}: not a diffusers Stable Diffusion folder (missing "
                        f"{', '.join(missing) or 'model_index.json'}); run 'skingen assets fetch --only sd15' "
                        "or point [generate.sd_lora] base at one")
    return folder


def fingerprint(folder: Path) -> str:
    """sha256 over the base's configs and its weight files' names, sizes and modification times (cheap; keys the
    latent cache, so a weight file swapped for another of the same size is seen)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".txt"):
            rel = str(path.relative_to(folder))
            digest.update(rel.encode())
            stat = path.stat()
            digest.update(path.read_bytes() if path.suffix in (".json", ".txt")
                          else f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def load_base(base: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Base:
    """The base's parts, frozen, in ``dtype`` on ``device``."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = base_folder(base)
    try:
        tok = CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer")
        te = CLIPTextModel.from_pretrained(str(folder), subfolder="text_encoder", torch_dtype=dtype)
        vae = AutoencoderKL.from_pretrained(str(folder), subfolder="vae", torch_dtype=dtype)
        unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet", torch_dtype=dtype)
        sched = DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler")
    except (OSError, ValueError) as exc:
        raise UserError(f"sd_lora base {folder}: cannot load ({str(exc).splitlines()[0]}); fetch it again") from None
    for part in (te, vae, unet):
        part.requires_grad_(False)
        part.to(device)
    return Base(folder, tok, te.eval(), vae.eval(), unet, sched, fingerprint(folder))


def _byte_vocabulary() -> dict[str, int]:
    """CLIP's byte-to-character table as a vocabulary: every byte alone and word-final, plus the two specials."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in codes]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def build_standin(folder: Path, seed: int = 0) -> Path:
    """Write the tiny stand-in base (32 px images, 16x16 latents) into ``folder`` once; return it."""
    if (folder / "model_index.json").is_file():
        return folder
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = _byte_vocabulary()
    special = vocab["<|endoftext|>"]
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        te = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=STANDIN_MAX_TOKENS, bos_token_id=vocab["<|startoftext|>"], eos_token_id=special,
            pad_token_id=special))
        vae = AutoencoderKL(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                            sample_size=32)
        unet = UNet2DConditionModel(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    norm_num_groups=8, attention_head_dim=4)
    finally:
        torch.random.set_rng_state(state)
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                          steps_offset=1, set_alpha_to_one=False, num_train_timesteps=1000)
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=STANDIN_MAX_TOKENS)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".standin-"))
    pipe.save_pretrained(str(tmp))
    (tmp / "standin.json").write_text(json.dumps({"seed": seed, "what": "tiny Stable Diffusion stand-in"}))
    try:
        os.rename(tmp, folder)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
