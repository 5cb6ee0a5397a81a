"""DDPM networks: diffusers UNet2DModel presets per resolution (attention at the 16x16 level),
loading real weights for fine-tuning, and parameter counts."""
from __future__ import annotations

import os

from ..errors import UserError
from ..metrics.extractors import asset_path

PRESETS: dict[int, tuple[int, ...]] = {
    16: (32, 64),
    32: (64, 128, 128),
    64: (64, 128, 256, 256),
    128: (128, 128, 256, 256, 512),
    256: (128, 128, 256, 256, 512, 512),
}


# google/ddpm-celebahq-256's UNet settings (the original's DDPM config) beyond diffusers' defaults: one attention
# head, no padding in the strided downsampling conv, the sinusoidal embedding's order and shift, GroupNorm eps.
# Every preset uses them, so the 256 px preset is that network and the others share its block pattern.
CELEBAHQ_SETTINGS = dict(attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
                         norm_eps=1e-6, norm_num_groups=32, act_fn="silu", mid_block_scale_factor=1,
                         center_input_sample=False, time_embedding_type="positional")


def block_types(resolution: int, channels: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Down/up block types with attention exactly at the level whose feature map is 16x16."""
    down = []
    for level in range(len(channels)):
        size = resolution // (2 ** level)
        down.append("AttnDownBlock2D" if size == 16 else "DownBlock2D")
    up = ["AttnUpBlock2D" if b == "AttnDownBlock2D" else "UpBlock2D" for b in reversed(down)]
    return tuple(down), tuple(up)


def build_unet(resolution: int, channels: tuple[int, ...] | None = None, layers_per_block: int = 2,
               num_class_embeds: int | None = None):
    """A fresh UNet2DModel for ``resolution`` (channels from the preset unless given)."""
    from diffusers import UNet2DModel

    if resolution not in PRESETS and channels is None:
        raise UserError(f"resolution {resolution} has no preset; use one of {', '.join(map(str, PRESETS))} or set channels")
    channels = tuple(channels or PRESETS[resolution])
    down, up = block_types(resolution, channels)
    return UNet2DModel(sample_size=resolution, in_channels=3, out_channels=3, layers_per_block=layers_per_block,
                       block_out_channels=channels, down_block_types=down, up_block_types=up,
                       num_class_embeds=num_class_embeds, **CELEBAHQ_SETTINGS)


def load_unet(init_from: str | os.PathLike, resolution: int, num_class_embeds: int | None = None):
    """Load real UNet weights (a diffusers pipeline folder, a unet folder, or a cached hub id)."""
    from diffusers import UNet2DModel

    path = init_from = asset_path(init_from)
    subfolder = "unet" if (path / "unet" / "config.json").is_file() else None
    try:
        unet = UNet2DModel.from_pretrained(str(init_from), subfolder=subfolder)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise UserError(f"init_from {init_from}: cannot load UNet weights ({str(exc).splitlines()[0]}); give a local "
                        "diffusers folder or a hub id already in the local cache") from None
    if unet.config.sample_size != resolution:
        raise UserError(f"init_from {init_from}: model is for {unet.config.sample_size} px, the study samples at "
                        f"{resolution} px; pick a matching model or resolution")
    if (unet.config.num_class_embeds or None) != num_class_embeds:
        raise UserError(f"init_from {init_from}: num_class_embeds {unet.config.num_class_embeds} does not match "
                        f"the run's {num_class_embeds}; use an unconditional (or matching conditional) model")
    return unet


def parameter_counts(resolution: int, num_class_embeds: int | None = None) -> dict:
    """JSON-able parameter counts of the preset UNet (``skingen gen summary``)."""
    unet = build_unet(resolution, num_class_embeds=num_class_embeds)
    per_block = {}
    for name, module in unet.named_children():
        per_block[name] = sum(p.numel() for p in module.parameters())
    return {"generator": "ddpm", "resolution": resolution, "channels": list(PRESETS[resolution]),
            "attention_at": 16, "total": sum(p.numel() for p in unet.parameters()), "per_module": per_block}
