"""Online image transforms on uint8 CHW tensors: the original recipe's training augmentation,
the stronger classic augmentation of the GTA arm, and evaluation (normalisation only)."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _finish() -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(size: int) -> v2.Compose:
    """RandomResizedCrop + horizontal/vertical flips + ImageNet normalisation (the original recipe)."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                       v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), *_finish()])


def gta_transform(size: int) -> v2.Compose:
    """Classic (generic transformation) augmentation for the GTA arm's extra images."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.4, 1.0), antialias=True),
                       v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                       v2.RandomRotation(45), v2.ColorJitter(0.25, 0.25, 0.25, 0.03), *_finish()])


def eval_transform() -> v2.Compose:
    """Evaluation: the shard image as is, normalised."""
    return v2.Compose(_finish())
