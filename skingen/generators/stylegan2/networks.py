"""StyleGAN2 config-F networks: mapping, skip-architecture synthesis, residual discriminator.

Channel counts follow ``min(channel_base // resolution, channel_max)``. The generator's w is
broadcast to ``num_ws`` layers (two convs per block above 4x4, one at 4x4, plus the last toRGB;
each toRGB shares its w with the next block's first conv). Class conditioning embeds the label
into the mapping network; the discriminator projects its output onto a label embedding mapped by a
network of its own (embedding, pixel norm, ``d_mapping_layers`` layers at lr multiplier 0.01, width
``channels(4)``), as in stylegan2-ada-pytorch. Parameter and buffer names translate to the
reference's through ``nvidia_names``. As the reference, the ``num_fp16_res`` highest-resolution blocks
(8 px at least) may compute in reduced precision (``set_reduced_precision``); the image, the mapping
and D's epilogue stay float32.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .layers import EqualConv2d, EqualLinear, MinibatchStd, ModulatedConv, normalize_2nd_moment, upsample2x
from .presets import network_fields


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture hyper-parameters (what a network snapshot records)."""

    resolution: int = 256
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0  # number of classes for conditioning (0: unconditional)
    channel_base: int = 16384
    channel_max: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    mbstd_group: int = 8
    conv_clamp: float | None = None  # 256 with mixed precision
    num_fp16_res: int = 0  # reduced precision in the N highest-resolution blocks (4 with mixed precision)
    d_mapping_layers: int = 8  # the conditional D's label mapping (the reference's default, whatever G's)

    def channels(self, res: int) -> int:
        """Feature maps at resolution ``res``."""
        return min(self.channel_base // res, self.channel_max)

    def reduced(self, res: int) -> bool:
        """Whether the block at ``res`` may run in reduced precision (the reference's fp16_resolution rule)."""
        return res >= max(2 ** (self.log2 + 1 - self.num_fp16_res), 8)

    @property
    def log2(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network consumes."""
        return 2 * self.log2 - 2


def network_config(preset: str, resolution: int, c_dim: int = 0, fmaps: float | None = None,
                   mapping_layers: int | None = None, mbstd_group: int | None = None, **overrides) -> NetworkConfig:
    """The network of ``preset`` (``presets``) at ``resolution`` (a power of two, 16-1024)."""
    from ...errors import UserError

    if resolution < 16 or resolution > 1024 or resolution & (resolution - 1):
        raise UserError(f"StyleGAN2 resolution {resolution}: use a power of two from 16 to 1024")
    fields = network_fields(preset, resolution, fmaps, mapping_layers, mbstd_group)
    return NetworkConfig(resolution=resolution, c_dim=c_dim, **{**fields, **overrides})


class MappingNetwork(torch.nn.Module):
    """z (pixel-normalised) [+ pixel-normalised class embedding] -> w through ``num_layers`` lr-reduced FC
    layers, broadcast to ``num_ws`` copies. ``z_dim = 0``: the label alone (the discriminator's label
    mapping, which returns one vector per sample and tracks no average)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int, num_ws: int | None,
                 lr_mul: float = 0.01, track_w_avg: bool = True):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        if c_dim:
            self.embed = EqualLinear(c_dim, w_dim)
        dims = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * num_layers
        self.layers = torch.nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activation=True)
                                          for a, b in zip(dims[:-1], dims[1:]))
        if track_w_avg:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                skip_w_avg_update: bool = False, w_avg_beta: float = 0.995, psi: float | None = None) -> torch.Tensor:
        """w for each sample (N, num_ws, w_dim); ``psi`` is an alias of ``truncation_psi``. In training mode
        every call moves ``w_avg`` toward the batch's mean w (unless ``skip_w_avg_update``), as the reference."""
        psi = truncation_psi if psi is None else psi
        parts = [normalize_2nd_moment(z)] if self.z_dim else []
        if self.c_dim:
            parts.append(normalize_2nd_moment(self.embed(c)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if self.training and not skip_w_avg_update and hasattr(self, "w_avg"):
            self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, w_avg_beta))
        if psi != 1.0:
            x = self.w_avg.lerp(x, psi)  # truncation toward the average w
        return x if self.num_ws is None else x.unsqueeze(1).repeat(1, self.num_ws, 1)


def block_dtype(block: torch.nn.Module, default: torch.dtype) -> torch.dtype:
    """The block's compute dtype: its reduced dtype when it is one of the reduced blocks, else ``default``."""
    return block.reduced_dtype if block.use_reduced and block.reduced_dtype is not None else default


def set_reduced_precision(module: torch.nn.Module, dtype: torch.dtype | None) -> list[str]:
    """Run the reduced-precision blocks of G or D (``NetworkConfig.num_fp16_res``) in ``dtype`` (None: the
    parameters' dtype), everything else in the parameters' dtype; returns the names of the reduced blocks."""
    names = []
    for name, block in module.named_modules():
        if hasattr(block, "use_reduced"):
            block.reduced_dtype = dtype
            if block.use_reduced and dtype is not None:
                names.append(name)
    return names


class SynthesisBlock(torch.nn.Module):
    """One resolution: (upsampling conv), conv, toRGB added to the upsampled image (skip architecture)."""

    def __init__(self, cfg: NetworkConfig, in_ch: int, out_ch: int, res: int):
        super().__init__()
        self.first = res == 4
        if self.first:
            self.const = torch.nn.Parameter(torch.randn(out_ch, 4, 4))
        else:
            self.conv0 = ModulatedConv(in_ch, out_ch, cfg.w_dim, res, up=True, clamp=cfg.conv_clamp)
        self.conv1 = ModulatedConv(out_ch, out_ch, cfg.w_dim, res, clamp=cfg.conv_clamp)
        self.torgb = ModulatedConv(out_ch, 3, cfg.w_dim, res, kernel=1, demodulate=False, activation=False,
                                   use_noise=False, clamp=cfg.conv_clamp)
        self.num_conv = 1 if self.first else 2
        self.use_reduced, self.reduced_dtype = cfg.reduced(res), None

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str):
        dtype = block_dtype(self, self.conv1.weight.dtype)
        if self.first:
            x = self.const[None].to(dtype).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x.to(dtype), ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        rgb = self.torgb(x, ws[:, self.num_conv], noise_mode).to(self.conv1.weight.dtype)  # the image: float32
        img = rgb if img is None else upsample2x(img) + rgb
        return x, img


class SynthesisNetwork(torch.nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, 3, R, R), roughly in [-1, 1]."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = torch.nn.ModuleList()
        for k in range(2, cfg.log2 + 1):
            res = 2 ** k
            self.blocks.append(SynthesisBlock(cfg, cfg.channels(res // 2) if res > 4 else 0, cfg.channels(res), res))

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode {noise_mode!r}: use 'random', 'const' or 'none'")
        x = img = None
        i = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i:i + block.num_conv + 1], noise_mode)
            i += block.num_conv
        return img


class Generator(torch.nn.Module):
    """Mapping + synthesis; ``forward(z, c)`` returns images."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim, self.img_resolution = cfg.z_dim, cfg.c_dim, cfg.w_dim, cfg.resolution
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, cfg.mapping_layers, cfg.num_ws,
                                      cfg.mapping_lr_mul)
        self.synthesis = SynthesisNetwork(cfg)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                noise_mode: str = "random", psi: float | None = None) -> torch.Tensor:
        """Images (N, 3, R, R), raw (not clamped); ``psi`` is an alias of ``truncation_psi``."""
        return self.synthesis(self.mapping(z, c, truncation_psi, psi=psi), noise_mode)

    def config_dict(self) -> dict:
        """The architecture as a plain dict (stored beside network snapshots)."""
        return asdict(self.cfg)


class DiscriminatorBlock(torch.nn.Module):
    """Residual block: (fromRGB at the top), conv, downsampling conv, 1x1 downsampling skip, / sqrt(2)."""

    def __init__(self, cfg: NetworkConfig, in_ch: int, out_ch: int, res: int):
        super().__init__()
        top = res == cfg.resolution
        self.use_reduced, self.reduced_dtype = cfg.reduced(res), None
        self.fromrgb = EqualConv2d(3, in_ch, 1, clamp=cfg.conv_clamp) if top else None
        self.conv0 = EqualConv2d(in_ch, in_ch, 3, clamp=cfg.conv_clamp)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, down=True, clamp=cfg.conv_clamp)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, down=True, activation=False)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None) -> torch.Tensor:
        dtype = block_dtype(self, self.conv0.weight.dtype)
        x = self.fromrgb(img.to(dtype)) if self.fromrgb is not None else x.to(dtype)
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + y) * math.sqrt(0.5)


class Discriminator(torch.nn.Module):
    """Residual discriminator; the epilogue appends minibatch std, then conv, FC and the output (or projection)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        res_list = [2 ** k for k in range(cfg.log2, 2, -1)]
        self.blocks = torch.nn.ModuleList(DiscriminatorBlock(cfg, cfg.channels(r), cfg.channels(r // 2), r)
                                          for r in res_list)
        self.c_dim, self.img_resolution = cfg.c_dim, cfg.resolution
        ch = cfg.channels(4)
        self.cmap_dim = ch if cfg.c_dim else 0
        self.mbstd = MinibatchStd(cfg.mbstd_group, 1)
        self.conv = EqualConv2d(ch + 1, ch, 3, clamp=cfg.conv_clamp)
        self.fc = EqualLinear(ch * 16, ch, activation=True)
        self.out = EqualLinear(ch, self.cmap_dim or 1)
        if cfg.c_dim:
            self.mapping = MappingNetwork(0, cfg.c_dim, ch, cfg.d_mapping_layers, None, cfg.mapping_lr_mul,
                                          track_w_avg=False)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = None
        for block in self.blocks:
            x = block(x, img)
        x = self.conv(self.mbstd(x.to(self.conv.weight.dtype)))  # the epilogue: float32
        x = self.out(self.fc(x.flatten(1)))
        if self.cfg.c_dim:  # projection onto the mapped label
            x = (x * self.mapping(None, c)).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x
