"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with Limited Data").

Every image the discriminator sees (real and generated) passes through the same differentiable
pipeline. Each transform is applied per sample with probability p. The geometric ones (x-flip,
90-degree rotations, integer translation, isotropic scaling, arbitrary rotation, anisotropic
scaling, fractional translation) are composed into one 3x3 matrix per sample (pixel units, output
to input) and applied as the reference (stylegan2-ada-pytorch) does, at twice the resolution so that
a sub-pixel shift does not blur: reflection padding wide enough for the transformed corners,
upsampling by 2 with the 12-tap symlet-6 wavelet low-pass filter, one bilinear resampling at 2x,
then the same filter (time-reversed) and decimation back to the input size. An orthogonal wavelet
filter makes upsampling followed by downsampling exactly the identity. The colour transforms
(brightness, contrast, luma flip, hue rotation, saturation) form one 4x4 matrix. p adapts from
r_t = E[sign(D(real))] toward a target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)
# Decomposition low-pass filter of the Daubechies symlet with 6 vanishing moments (sym6), as tabulated
# for the discrete wavelet transform; normalised to unit sum where used.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
SYM6_PAD = len(SYM6) // 4  # margin (in input pixels) the filter needs on each side


def _matrix(rows: list, n: int, device) -> torch.Tensor:
    """Stack per-sample entries (tensors (N,) or floats) into (N, k, k) matrices."""
    return torch.stack([torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device).expand(n)
                                     for v in row], dim=-1) for row in rows], dim=-2)


def translate2d(tx, ty, n, dev):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, dev)


def scale2d(sx, sy, n, dev):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, dev)


def rotate2d(theta, n, dev):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], n, dev)


class AugmentPipe(torch.nn.Module):
    """The ADA pipeline; ``p`` is a buffer so it is saved with the module's state."""

    def __init__(self, transforms: tuple[str, ...] = GEOMETRIC + COLOUR, translate_std: float = 0.125,
                 scale_std: float = 0.2, aniso_std: float = 0.2, brightness_std: float = 0.2,
                 contrast_std: float = 0.5, saturation_std: float = 1.0):
        super().__init__()
        unknown = set(transforms) - set(GEOMETRIC + COLOUR)
        if unknown:
            raise ValueError(f"unknown augmentations {sorted(unknown)}")
        self.transforms = tuple(transforms)
        self.std = dict(translate=translate_std, scale=scale_std, aniso=aniso_std, brightness=brightness_std,
                        contrast=contrast_std, saturation=saturation_std)
        self.register_buffer("p", torch.zeros([]))

    def _gate(self, n: int, dev, gen, prob=None) -> torch.Tensor:
        """1 where a sample gets the transform (probability p), else 0."""
        prob = self.p if prob is None else prob
        return (torch.rand(n, device=dev, generator=gen) < prob).float()

    def _geometry(self, n: int, h: int, w: int, dev, gen) -> torch.Tensor:
        """Per-sample 3x3 matrices mapping output to input pixel coordinates (origin at the image centre)."""
        g = torch.eye(3, device=dev).repeat(n, 1, 1)
        on = lambda name: name in self.transforms  # noqa: E731 - tiny local predicate
        rand = lambda: torch.rand(n, device=dev, generator=gen)  # noqa: E731
        randn = lambda: torch.randn(n, device=dev, generator=gen)  # noqa: E731
        if on("xflip"):
            flip = self._gate(n, dev, gen) * (rand() < 0.5).float()
            g = g @ scale2d(1 - 2 * flip, torch.ones(n, device=dev), n, dev)
        if on("rotate90"):
            k = torch.floor(rand() * 4) * self._gate(n, dev, gen)
            g = g @ rotate2d(k * math.pi / 2, n, dev)
        if on("xint"):
            frac = (torch.rand(2, n, device=dev, generator=gen) * 2 - 1) * 0.125 * self._gate(n, dev, gen)
            g = g @ translate2d(torch.round(frac[0] * w), torch.round(frac[1] * h), n, dev)  # whole pixels
        if on("scale"):
            s = torch.exp2(randn() * self.std["scale"] * self._gate(n, dev, gen))
            g = g @ scale2d(s, s, n, dev)
        p_rot = 1 - torch.sqrt((1 - self.p).clamp(0, 1))  # rotation before and after aniso: p overall
        if on("rotate"):
            g = g @ rotate2d((rand() * 2 - 1) * math.pi * self._gate(n, dev, gen, p_rot), n, dev)
        if on("aniso"):
            s = torch.exp2(randn() * self.std["aniso"] * self._gate(n, dev, gen))
            g = g @ scale2d(s, 1 / s, n, dev)
        if on("rotate"):
            g = g @ rotate2d((rand() * 2 - 1) * math.pi * self._gate(n, dev, gen, p_rot), n, dev)
        if on("xfrac"):
            gate = self._gate(n, dev, gen)
            g = g @ translate2d(randn() * self.std["translate"] * w * gate, randn() * self.std["translate"] * h * gate,
                                n, dev)
        return g

    def _colour(self, n: int, dev, gen) -> torch.Tensor:
        """Per-sample 4x4 colour matrices acting on homogeneous RGB in [-1, 1]."""
        c = torch.eye(4, device=dev).repeat(n, 1, 1)
        v = LUMA.to(dev)
        vv = torch.outer(v, v)
        on = lambda name: name in self.transforms  # noqa: E731
        if on("brightness"):
            b = torch.randn(n, device=dev, generator=gen) * self.std["brightness"] * self._gate(n, dev, gen)
            c = _matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], n, dev) @ c
        if on("contrast"):
            s = torch.exp2(torch.randn(n, device=dev, generator=gen) * self.std["contrast"] * self._gate(n, dev, gen))
            c = _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], n, dev) @ c
        if on("lumaflip"):
            i = torch.floor(torch.rand(n, device=dev, generator=gen) * 2) * self._gate(n, dev, gen)
            c = (torch.eye(4, device=dev) - 2 * vv * i[:, None, None]) @ c
        if on("hue"):
            theta = (torch.rand(n, device=dev, generator=gen) * 2 - 1) * math.pi * self._gate(n, dev, gen)
            c = _rotate_about(v[:3], theta) @ c
        if on("saturation"):
            s = torch.exp2(torch.randn(n, device=dev, generator=gen) * self.std["saturation"] * self._gate(n, dev, gen))
            c = (vv + (torch.eye(4, device=dev) - vv) * s[:, None, None]) @ c
        return c

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch (N, 3, H, W) in [-1, 1]; identity when p == 0."""
        if float(self.p) <= 0:
            return images
        n, _, h, w = images.shape
        dev = images.device
        geo = [t for t in self.transforms if t in GEOMETRIC]
        x = images
        if geo:
            x = geometric_resample(x, self._geometry(n, h, w, dev, generator))
        if any(t in COLOUR for t in self.transforms):
            c = self._colour(n, dev, generator).to(x.dtype)
            x = torch.einsum("nij,njhw->nihw", c[:, :3, :3], x) + c[:, :3, 3, None, None]
        return x


def _sym6(device, dtype) -> torch.Tensor:
    f = torch.tensor(SYM6, dtype=torch.float64)
    return (f / f.sum()).to(device=device, dtype=dtype)


def _separable(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int], flip: bool) -> torch.Tensor:
    """Filter rows and columns with the 1-D ``f`` (a convolution, or a correlation when not ``flip``);
    ``pad`` before/after on both axes, negative values crop."""
    c = x.shape[1]
    f = f.flip(0) if flip else f
    lo, hi = pad
    x = F.pad(x, [max(lo, 0), max(hi, 0)] * 2)
    x = x[:, :, max(-lo, 0):x.shape[2] - max(-hi, 0), max(-lo, 0):x.shape[3] - max(-hi, 0)]
    x = F.conv2d(x, f.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, f.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _supersample_pad(g: torch.Tensor, h: int, w: int) -> list[int]:
    """Reflection padding [left, right, top, bottom] that covers every sample's transformed corners
    plus the filter's margin (at most the image size less one, as reflection allows)."""
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=g.dtype, device=g.device)
    xy = (g @ corners.t())[:, :2, :].permute(1, 0, 2).flatten(1)  # (2, N * 4)
    margin = torch.cat([-xy, xy]).max(dim=1).values  # x0, y0, x1, y1
    margin = margin + torch.tensor([SYM6_PAD * 2 - cx, SYM6_PAD * 2 - cy] * 2, dtype=g.dtype, device=g.device)
    limit = torch.tensor([w - 1, h - 1] * 2, dtype=g.dtype, device=g.device)
    mx0, my0, mx1, my1 = (int(v) for v in margin.clamp(min=0).minimum(limit).ceil().tolist())
    return [mx0, mx1, my0, my1]


def geometric_resample(images: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Resample each image through its matrix ``g`` (N, 3, 3; output -> input pixel coordinates centred on
    the image) at twice the resolution: pad, sym6-upsample, bilinear, sym6-downsample. Same size out."""
    n, c, h, w = images.shape
    dev, f = images.device, _sym6(images.device, images.dtype)
    g = g.to(device=dev, dtype=torch.float32)
    mx0, mx1, my0, my1 = _supersample_pad(g, h, w)
    x = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
    g = translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, n, dev) @ g  # the padded image's centre moved
    up = x.new_zeros(n, c, x.shape[2] * 2, x.shape[3] * 2)  # zero insertion, then the filter (gain 2 per axis)
    up[:, :, ::2, ::2] = x
    x = _separable(up, f * 2, ((len(SYM6) + 1) // 2, (len(SYM6) - 2) // 2), flip=True)
    half, double = scale2d(0.5, 0.5, n, dev), scale2d(2, 2, n, dev)
    shift, unshift = translate2d(-0.5, -0.5, n, dev), translate2d(0.5, 0.5, n, dev)
    g = shift @ double @ g @ half @ unshift  # the same map in the 2x grid's pixel coordinates
    out_h, out_w = (h + SYM6_PAD * 2) * 2, (w + SYM6_PAD * 2) * 2
    g = scale2d(2 / x.shape[3], 2 / x.shape[2], n, dev) @ g @ scale2d(out_w / 2, out_h / 2, n, dev)  # normalised
    grid = F.affine_grid(g[:, :2, :].to(x.dtype), [n, c, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    pad = -SYM6_PAD * 2 + (len(SYM6) - 2) // 2  # crop the extra margin back to h, w
    return _separable(x, f, (pad, pad), flip=False)[:, :, ::2, ::2]


def _rotate_about(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(N, 4, 4) rotations by ``theta`` about a unit 3-D axis (Rodrigues)."""
    n = theta.shape[0]
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], device=theta.device)
    eye = torch.eye(3, device=theta.device)
    r = eye + torch.sin(theta)[:, None, None] * k + (1 - torch.cos(theta))[:, None, None] * (k @ k)
    out = torch.eye(4, device=theta.device).repeat(n, 1, 1)
    out[:, :3, :3] = r
    return out


@dataclass
class AdaController:
    """Moves p toward the overfitting target: up when E[sign(D(real))] > target, down otherwise."""

    target: float = 0.6
    interval: int = 4  # discriminator steps between adjustments
    speed_kimg: float = 500.0  # images for p to traverse 0 -> 1
    sign_sum: float = 0.0
    count: int = 0
    r_t: float = 0.0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add one batch of D(real) outputs."""
        self.sign_sum += float(torch.sign(real_logits.detach()).sum())
        self.count += real_logits.numel()

    def maybe_update(self, pipe: AugmentPipe, step: int, batch_size: int) -> bool:
        """Every ``interval`` steps, adjust ``pipe.p``; returns whether it adjusted."""
        if step % self.interval or not self.count:
            return False
        self.r_t = self.sign_sum / self.count
        sign = (self.r_t > self.target) - (self.r_t < self.target)  # 0 at the target, as the reference's np.sign
        adjust = sign * batch_size * self.interval / (self.speed_kimg * 1000)
        pipe.p.copy_((pipe.p + adjust).clamp(min=0))  # the reference clamps below only
        self.sign_sum, self.count = 0.0, 0
        return True
