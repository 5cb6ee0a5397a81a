"""One model factory over timm, with a registry of the study's five classifiers.

Pretrained ImageNet weights come only from a local file (compute nodes are offline):
``pretrained_cfg_overlay=dict(file=...)`` loads them and timm swaps in a fresh 5-way head.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    """A study model: its timm architecture and where Grad-CAM looks."""

    timm_name: str
    cam_layer: str  # dotted path to the target layer
    is_vit: bool = False
    small_cam_layer: str = ""  # a finer stage (stride 16) for images too small for cam_layer's map
    cam_stride: int = 32  # downsampling of cam_layer's output

    def cam_layer_for(self, image_size: int) -> str:
        """cam_layer, or small_cam_layer when cam_layer's map would be under 4x4 (e.g. 1x1 or 2x2 at 32-64 px:
        a constant or corner-bound Grad-CAM)."""
        if self.small_cam_layer and image_size // self.cam_stride < 4:
            return self.small_cam_layer
        return self.cam_layer


MODELS: dict[str, ModelSpec] = {
    "resnet18": ModelSpec("resnet18", "layer4.-1", small_cam_layer="layer3.-1"),
    "resnet50": ModelSpec("resnet50", "layer4.-1", small_cam_layer="layer3.-1"),
    "vit_b16": ModelSpec("vit_base_patch16_224", "blocks.-1.norm1", is_vit=True),
    "efficientnet_b0": ModelSpec("efficientnet_b0", "conv_head"),
    "vgg16": ModelSpec("vgg16", "features.-2"),
}


def weights_file(name: str, weights_dir: str | os.PathLike | None) -> Path:
    """Where the ImageNet weights of ``name`` are expected in the local asset cache."""
    root = Path(weights_dir or os.environ.get("SKINGEN_ASSETS", "~/.cache/skingen")).expanduser()
    spec = MODELS[name]
    for suffix in (".safetensors", ".pth"):
        path = root / "timm" / f"{spec.timm_name}{suffix}"
        if path.is_file():
            return path
    raise UserError(f"{root / 'timm' / (spec.timm_name + '.safetensors')}: ImageNet weights for {name} not found; "
                    f"run 'skingen assets fetch --only {name}' on a machine with internet (same SKINGEN_ASSETS), "
                    "or set pretrained = false")


def create_model(name: str, num_classes: int = 5, image_size: int = 224, pretrained: bool = False,
                 weights_dir: str | os.PathLike | None = None) -> torch.nn.Module:
    """Build study model ``name`` with a new ``num_classes`` head; ImageNet weights from the local cache."""
    import timm

    if name not in MODELS:
        raise UserError(f"model {name!r} unknown; available: {', '.join(MODELS)}")
    spec = MODELS[name]
    kwargs: dict = {"num_classes": num_classes}
    if spec.is_vit:
        kwargs["img_size"] = image_size
    if pretrained:
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file(name, weights_dir))}
    return timm.create_model(spec.timm_name, pretrained=pretrained, **kwargs)


def find_layer(model: torch.nn.Module, dotted: str) -> torch.nn.Module:
    """The sub-module at a dotted path; integer parts index sequences (``-1`` = last)."""
    layer = model
    for part in dotted.split("."):
        layer = layer[int(part)] if part.lstrip("-").isdigit() else getattr(layer, part)
    return layer
