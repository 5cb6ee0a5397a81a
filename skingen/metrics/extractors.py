"""Feature extractors for generative metrics: one registry, one interface.

An :class:`Extractor` takes float NCHW images in [0, 255] at its ``input_size`` and returns
``(features (N, D), logits (N, C) or None)``. Images reach that size by clean-fid's "clean"
resize (PIL bicubic on float channels, no re-quantisation), so FID from our features equals
clean-fid's for the same extractor.

- ``inception``: the standard FID Inception-v3 (TorchScript ``inception-2015-12-05.pt``, the file
  clean-fid and StyleGAN2-ADA use), 2048-d pool features, logits of the 1008-way head without bias
  (as StyleGAN2-ADA's IS). Weights only from ``$SKINGEN_ASSETS/inception/``.
- ``dinov2_vits14`` / ``dinov2_vitl14``: self-supervised DINOv2 ViT-S/14 or ViT-L/14 (timm), CLS features
  (384-d / 1024-d) at 224 px, ImageNet normalisation, no logits (dgm-eval's recommended space is ViT-L/14).
- ``clip_vitl14_336``: the CLIP ViT-L/14@336 image tower with its projection (timm's OpenAI port, 768-d),
  L2-normalised, CLIP normalisation -- the space CMMD is defined in. timm rather than open_clip: timm is
  already the project's one model library, loads the same OpenAI weights from one local file, and adds
  no dependency.
- ``tiny`` and ``dinov2_standin``: fixed-seed random networks with the same interfaces (a small CNN; the
  DINOv2 ViT-S/14 architecture at 56 px), for tests and the CPU demo (their numbers are not comparable
  with the real spaces'; reports name the extractor).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UserError


@dataclass
class Extractor:
    """A loaded feature extractor and what identifies it in results."""

    name: str
    input_size: int
    dim: int
    net: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
    weights_sha256: str
    implementation: str
    device: torch.device
    model: torch.nn.Module | None = None  # the underlying network, where there is one module

    resize_mode: str = "clean"  # "clean" (clean-fid's, = dgm-eval's clean_resize) or "torch_bicubic" (CMMD's)

    def resize(self, image: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8 image to float32 (S, S, 3) in [0, 255] by the space's resize."""
        return resize_image(image, self.input_size, self.resize_mode)

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (and logits) of a float NCHW batch in [0, 255] as float32 numpy."""
        feats, logits = self.net(batch.to(self.device))
        return (feats.float().cpu().numpy(),
                None if logits is None else logits.float().cpu().numpy())


def resize_image(image: np.ndarray, size: int, mode: str = "clean") -> np.ndarray:
    """"clean": clean-fid's resize (PIL bicubic on float channels, no re-quantisation) -- what dgm-eval's
    ``clean_resize`` does; "torch_bicubic": ``torch.nn.functional.interpolate(mode="bicubic")`` on float
    values, no antialiasing -- what the CMMD reference does before CLIP's processor."""
    if mode == "torch_bicubic":
        x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
        return torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic")[0].permute(1, 2, 0).numpy()
    from cleanfid.resize import make_resizer

    return make_resizer("PIL", False, "bicubic", (size, size))(image)


def assets_dir(path: str | os.PathLike | None = None) -> Path:
    """The local asset cache: ``path``, else ``$SKINGEN_ASSETS``, else ``~/.cache/skingen``."""
    return Path(path or os.environ.get("SKINGEN_ASSETS", "~/.cache/skingen")).expanduser()


def asset_path(path: str | os.PathLike) -> Path:
    """A path in a study file: ``/assets/REST`` means REST in the asset cache (the container binds the cache at
    /assets and sets SKINGEN_ASSETS=/assets, so one study file works in and out of the container)."""
    text = str(path)
    if text.startswith("/assets/") and not Path(text).exists():
        return assets_dir() / text[len("/assets/"):]
    return Path(path)


def sha256_file(path: Path) -> str:
    """sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _state_sha256(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _missing(path: Path, asset: str) -> UserError:
    return UserError(f"{path}: {asset} weights missing; run 'skingen assets fetch --only {asset}' on a machine "
                     f"with internet (cache: {path.parent.parent}, or set SKINGEN_ASSETS)")


class TinyCNN(torch.nn.Module):
    """Deterministic stand-in: 3 strided convs from a fixed seed, 64-d features, 10 logits."""

    def __init__(self, seed: int = 1234):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        shapes = [(16, 3), (32, 16), (64, 32)]
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(i, o, 3, stride=2, padding=1) for o, i in shapes)
        for conv in self.convs:
            conv.weight.data = torch.randn(conv.weight.shape, generator=gen) / (conv.weight[0].numel() ** 0.5)
            conv.bias.data.zero_()
        self.head = torch.nn.Linear(64, 10)
        self.head.weight.data = torch.randn(10, 64, generator=gen) / 8
        self.head.bias.data.zero_()
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - 128.0) / 128.0
        for conv in self.convs:
            x = torch.nn.functional.leaky_relu(conv(x), 0.2)
        feats = x.mean(dim=(2, 3))
        return feats, self.head(feats)


def _load_tiny(_assets: Path, device: torch.device) -> Extractor:
    net = TinyCNN().to(device)
    return Extractor("tiny", 64, 64, net, _state_sha256(net), "skingen TinyCNN (stand-in)", device, net)


def _load_inception(assets: Path, device: torch.device) -> Extractor:
    path = assets / "inception" / "inception-2015-12-05.pt"
    if not path.is_file():
        raise _missing(path, "inception")
    from importlib.metadata import version

    base = torch.jit.load(str(path), map_location=device).eval()

    def net(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = base.layers.forward((x - 128) / 128).view(x.shape[0], 2048)  # as cleanfid.InceptionV3W
        logits = feats @ base.output.weight.T  # the 1008-way head without its bias, as StyleGAN2-ADA's IS
        return feats, logits

    return Extractor("inception", 299, 2048, net, sha256_file(path), f"clean-fid {version('clean-fid')} "
                     "TorchScript Inception-v3 (inception-2015-12-05.pt), clean resize", device)


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


@dataclass(frozen=True)
class TimmSpace:
    """A timm network as a feature space: its model id, input size, normalisation and output."""

    name: str
    timm_id: str
    input_size: int
    dim: int
    norm: tuple = IMAGENET
    head: bool = False  # keep the model's head (CLIP: the image projection) instead of the pooled features
    l2: bool = False  # L2-normalise the features (CLIP embeddings, as CMMD uses them)
    resize: str = "clean"  # see resize_image
    stand_in: bool = False  # random seeded weights, no asset (tests and the CPU demo)


TIMM_SPACES = {
    "dinov2_vits14": TimmSpace("dinov2_vits14", "vit_small_patch14_dinov2.lvd142m", 224, 384),
    "dinov2_vitl14": TimmSpace("dinov2_vitl14", "vit_large_patch14_dinov2.lvd142m", 224, 1024),
    "clip_vitl14_336": TimmSpace("clip_vitl14_336", "vit_large_patch14_clip_336.openai", 336, 768, CLIP, head=True,
                                 l2=True, resize="torch_bicubic"),
    "dinov2_standin": TimmSpace("dinov2_standin", "vit_small_patch14_dinov2.lvd142m", 56, 384, stand_in=True),
}


def timm_kwargs(space: TimmSpace) -> dict:
    """timm.create_model arguments of a space: its input size, and no head unless it keeps one (CLIP)."""
    return dict(img_size=space.input_size) | ({} if space.head else dict(num_classes=0))


def _timm_model(space: TimmSpace, assets: Path):
    import timm

    kwargs = timm_kwargs(space)
    if space.stand_in:
        torch.manual_seed(0)
        return timm.create_model(space.timm_id.split(".")[0], pretrained=False, **kwargs), None
    path = assets / "timm" / f"{space.timm_id}.safetensors"
    if not path.is_file():
        raise _missing(path, space.name)
    # timm's own loader from the local file: strict keys, the position embedding resampled to the input size
    return timm.create_model(space.timm_id, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                             **kwargs), path


def load_timm_space(space: TimmSpace, assets: Path, device: torch.device) -> Extractor:
    """A timm feature space: clean resize to its input, its normalisation, CLS/pooled features (or the CLIP
    projection), optionally L2-normalised."""
    import timm

    model, path = _timm_model(space, assets)
    model = model.to(device).eval()

    def net(x: torch.Tensor) -> tuple[torch.Tensor, None]:
        feats = model(normalise(x, space))
        return (torch.nn.functional.normalize(feats, dim=1) if space.l2 else feats), None

    sha = _state_sha256(model) if path is None else sha256_file(path)
    label = f"timm {timm.__version__} {space.timm_id}" + (" with random weights (stand-in)" if space.stand_in else "")
    return Extractor(space.name, space.input_size, space.dim, net, sha, f"{label}, {space.resize} resize", device,
                     model, space.resize)


def normalise(x: torch.Tensor, space: TimmSpace) -> torch.Tensor:
    """NCHW values in [0, 255] -> the network's input: /255, minus the space's mean, over its std."""
    mean = torch.tensor(space.norm[0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(space.norm[1], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x / 255 - mean) / std


def network_input(images: list[np.ndarray], space: TimmSpace) -> torch.Tensor:
    """What a space's network receives for uint8 (H, W, 3) images: its resize, then its normalisation."""
    x = np.stack([resize_image(img, space.input_size, space.resize) for img in images])
    return normalise(torch.from_numpy(x).permute(0, 3, 1, 2), space)


EXTRACTORS: dict[str, Callable[[Path, torch.device], Extractor]] = {
    "inception": _load_inception,
    "tiny": _load_tiny,
    **{name: (lambda assets, device, space=space: load_timm_space(space, assets, device))
       for name, space in TIMM_SPACES.items()},
}
STAND_INS = ("tiny", "dinov2_standin")  # numbers not comparable with the real spaces'
FEATURE_DIMS = {"inception": 2048, "tiny": 64, **{n: s.dim for n, s in TIMM_SPACES.items()}}


def load_extractor(name: str, assets: str | os.PathLike | None = None, device: str | None = None) -> Extractor:
    """Load extractor ``name`` from the local asset cache onto ``device`` (default: cuda if available)."""
    if name not in EXTRACTORS:
        raise UserError(f"extractor {name!r} unknown; available: {', '.join(EXTRACTORS)}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return EXTRACTORS[name](assets_dir(assets), dev)
