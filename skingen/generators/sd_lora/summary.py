"""Parameter counts of ``sd_lora``: the SD-1.5 UNet (built on the meta device, nothing loaded) and its LoRA."""
from __future__ import annotations

from .config import SDLoRAConfig


def parameter_summary(resolution: int, rank: int = 4) -> dict:
    """JSON-able counts: frozen UNet and trainable LoRA at ``rank`` (``skingen gen summary``)."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    from .snapshot import add_lora, lora_parameters

    with init_empty_weights():
        unet = UNet2DConditionModel(sample_size=resolution // 8, cross_attention_dim=768)
        frozen = sum(p.numel() for p in unet.parameters())
        add_lora(unet, SDLoRAConfig(rank=rank), 0)
    lora = sum(p.numel() for p in lora_parameters(unet))
    return {"generator": "sd_lora", "resolution": resolution, "unet_frozen": frozen, "lora_rank": rank,
            "total": lora, "note": "SD-1.5 UNet layout; the VAE and text encoder are frozen and not counted"}
