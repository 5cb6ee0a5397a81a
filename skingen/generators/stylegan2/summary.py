"""``skingen gen summary --generator stylegan2_ada``: the preset's training settings, parameter counts and
the layer table."""
from __future__ import annotations

import torch

from .networks import Discriminator, Generator, network_config
from .presets import preset_settings


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layers(module: torch.nn.Module, prefix: str) -> list[dict]:
    rows = []
    for name, child in module.named_children():
        direct = sum(p.numel() for p in child.parameters(recurse=False))
        if direct:
            rows.append({"layer": f"{prefix}.{name}", "type": type(child).__name__, "params": direct,
                         "shape": list(child.weight.shape) if hasattr(child, "weight") else None})
        rows += _layers(child, f"{prefix}.{name}")
    return rows


def parameter_summary(resolution: int, preset: str = "auto", conditional: bool = False) -> dict:
    """The preset's training settings (each overridable in [stylegan2_ada]), counts for G (mapping and
    synthesis separately) and D, the channels per resolution, and every layer."""
    cfg = network_config(preset, resolution, 5 if conditional else 0)
    G, D = Generator(cfg), Discriminator(cfg)
    return {"generator": "stylegan2_ada", "preset": preset, "resolution": resolution, "conditional": conditional,
            "training": preset_settings(preset, resolution), "num_ws": cfg.num_ws, "G_mapping": _count(G.mapping),
            "G_synthesis": _count(G.synthesis),
            "G_total": _count(G), "D": _count(D),
            "channels": {str(2 ** k): cfg.channels(2 ** k) for k in range(2, cfg.log2 + 1)},
            "layers": _layers(G, "G") + _layers(D, "D")}
