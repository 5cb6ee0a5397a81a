"""Grad-CAM grids on a fixed set of test images (the same for every cell of a study)."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..atomic import atomic_path
from ..data.classes import shard_classes
from .models import MODELS, find_layer
from .transforms import IMAGENET_MEAN, IMAGENET_STD

TILE = 112


def fixed_test_images(image_ids: list[str], labels: np.ndarray, per_class: int) -> list[int]:
    """Indices of the first ``per_class`` images of each class by image id: identical across cells."""
    order = sorted(range(len(image_ids)), key=lambda i: image_ids[i])
    picks = []
    for k in range(int(labels.max()) + 1 if len(labels) else 0):
        picks += [i for i in order if labels[i] == k][:per_class]
    return picks


def vit_tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """ViT activations (B, 1 + N, C) without the class token -> (B, C, sqrt N, sqrt N)."""
    patches = tokens[:, 1:, :]
    side = int(math.isqrt(patches.shape[1]))
    return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def _denormalise(x: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return np.clip((x.cpu() * std + mean).permute(1, 2, 0).numpy(), 0, 1).astype(np.float32)


def _tile(rgb01: np.ndarray, text: str) -> np.ndarray:
    tile = cv2.resize((rgb01 * 255).astype(np.uint8), (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    cv2.putText(tile, text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def gradcam_grid(model: torch.nn.Module, model_name: str, dataset, out: Path, per_class: int = 2) -> Path:
    """Write a 2-row PNG (images; Grad-CAM overlays for the predicted class) for the fixed test images."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image

    reader = dataset.readers[0]
    names = shard_classes(reader)
    picks = fixed_test_images(reader.image_ids, reader.labels, per_class)
    device = next(model.parameters()).device
    x = torch.stack([dataset[i][0] for i in picks]).to(device)
    spec = MODELS[model_name]
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1).cpu().numpy()
    reshape = vit_tokens_to_map if spec.is_vit else None
    layer = find_layer(model, spec.cam_layer_for(int(x.shape[-1])))
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=x, targets=None)
    top, bottom = [], []
    for j, i in enumerate(picks):
        rgb = _denormalise(x[j])
        top.append(_tile(rgb, f"true {names[reader.labels[i]]}"))
        overlay = show_cam_on_image(rgb, maps[j], use_rgb=True).astype(np.float32) / 255
        bottom.append(_tile(overlay, f"pred {names[pred[j]]}"))
    grid = np.vstack([np.hstack(top), np.hstack(bottom)])
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.tobytes())
    return out
