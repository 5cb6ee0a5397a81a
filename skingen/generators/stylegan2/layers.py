"""StyleGAN2 building blocks in plain PyTorch, written from Karras et al. 2020 (config F).

Equalised learning rate: every weight is stored N(0, 1) (divided by ``lr_mul``) and scaled at run
time by ``lr_mul / sqrt(fan_in)``, so Adam sees all layers at one scale. Resampling uses the
separable [1, 3, 3, 1] FIR filter: upsampling inserts zeros and filters (gain 4), downsampling
filters and drops every second sample. Activations are leaky ReLU (0.2) times sqrt(2), which keeps
the signal's second moment through a layer.

Resampling convolutions follow the order of operations of NVIDIA's stylegan2-ada-pytorch (so that
imported weights compute the same function, see ``tests/test_stylegan2_parity.py``): a downsampling
conv filters at full resolution (padding k//2 + 1) and then convolves with stride 2; an upsampling
conv is a stride-2 transposed convolution followed by the filter (padding 1, gain 4).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LRELU_GAIN = math.sqrt(2.0)


def lrelu(x: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) with the sqrt(2) gain; optional clamp (mixed precision)."""
    x = F.leaky_relu(x, 0.2) * LRELU_GAIN
    return x.clamp(-clamp, clamp) if clamp is not None else x


def fir_kernel(device=None) -> torch.Tensor:
    """The normalised 2-D [1, 3, 3, 1] outer-product filter."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    k = k[:, None] * k[None, :]
    return k / k.sum()


def _filter(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    c = x.shape[1]
    x = F.pad(x, pad)
    weight = kernel.to(x.dtype).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Zero-insertion upsampling by 2 followed by the FIR filter (gain 4 keeps the mean)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, h * 2, w * 2)
    up[:, :, ::2, ::2] = x
    return _filter(up, fir_kernel(x.device) * 4, (2, 1, 2, 1))


class EqualLinear(torch.nn.Module):
    """Fully connected layer with equalised learning rate and an optional lrelu activation."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = torch.nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(x) if self.activation else x


class EqualConv2d(torch.nn.Module):
    """Convolution with equalised learning rate; optional FIR downsampling by 2 and lrelu."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, down: bool = False,
                 activation: bool = True, clamp: float | None = None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel * kernel)
        self.down, self.activation, self.clamp = down, activation, clamp
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = (self.weight * self.scale).to(x.dtype)
        if self.down:  # filter at full resolution, then the conv with stride 2 and no further padding
            p = self.padding + 1
            x = F.conv2d(_filter(x, fir_kernel(x.device), (p, p, p, p)), weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype)[None, :, None, None]
        return lrelu(x, self.clamp) if self.activation else x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 1, up: bool = False, fused: bool = True) -> torch.Tensor:
    """Per-sample modulated convolution: scale input channels by ``styles``, then (optionally) normalise
    each output channel's weights to unit L2 norm (demodulation).

    ``fused``: one grouped convolution with per-sample weights (the reference's inference path).
    Otherwise, as the reference in training: the input is scaled by the styles, convolved with the shared
    weight (one batched conv; its weight gradient is one GEMM, not one per sample) and the output scaled
    by the demodulation coefficients (from a (N, in) x (in, out) product); the same function.
    ``up``: a stride-2 transposed convolution (output 2H + k - 2 before trimming), then the FIR filter
    with gain 4 and the padding that brings the output to exactly 2H."""
    if x.dtype == torch.float16 and demodulate:
        weight, styles = fp16_prenormalise(weight, styles)
    if not fused:
        out = _conv(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), padding, up)
        if demodulate:
            # sum over (in, k, k) of (w s)^2 = s^2 @ (sum over k of w^2): no (N, out, in, k, k) tensor
            dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t()).add(1e-8).rsqrt()
            out = out * dcoefs.to(out.dtype)[:, :, None, None]
        return out
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    wts = weight[None] * styles[:, None, :, None, None]  # (N, out, in, k, k)
    if demodulate:
        wts = wts * torch.rsqrt(wts.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    x = x.reshape(1, n * c_in, h, w)
    if up:
        wts = wts.transpose(1, 2).reshape(n * c_in, c_out, kh, kw)  # transposed conv: (in, out/groups, k, k)
    else:
        wts = wts.reshape(n * c_out, c_in, kh, kw)
    out = _conv(x, wts.to(x.dtype), padding, up, groups=n)
    return out.reshape(n, c_out, *out.shape[2:])


def fp16_prenormalise(weight: torch.Tensor, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's guard against float16 overflow before a demodulated convolution: each output channel's
    weights scaled to max |w| = 1/sqrt(fan-in), each sample's styles to max |s| = 1. Demodulation divides
    both scales out again, so the result is the same function."""
    fan_in = weight[0].numel()
    weight = weight / (weight.abs().amax(dim=(1, 2, 3), keepdim=True) * fan_in ** 0.5)
    return weight, styles / styles.abs().amax(dim=1, keepdim=True)


def _conv(x: torch.Tensor, weight: torch.Tensor, padding: int, up: bool, groups: int = 1) -> torch.Tensor:
    """Plain or upsampling (transposed, stride 2, then FIR with gain 4) convolution; ``weight`` as F expects."""
    if not up:
        return F.conv2d(x, weight, padding=padding, groups=groups)
    if groups == 1:
        weight = weight.transpose(0, 1)  # (out, in, k, k) -> the transposed conv's (in, out, k, k)
    out = F.conv_transpose2d(x, weight, stride=2, groups=groups)
    p = padding + 3 - weight.shape[-2]  # the filter's 4 taps trim 3; the conv added k - 1 rows
    return _filter(out, fir_kernel(x.device) * 4, (p, p, p, p))


class ModulatedConv(torch.nn.Module):
    """A synthesis layer: style affine from w, modulated conv (upsampling by 2 when ``up``), noise, bias, lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel: int = 3,
                 up: bool = False, demodulate: bool = True, activation: bool = True, use_noise: bool = True,
                 clamp: float | None = None):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        self.scale = 1 / math.sqrt(in_channels * kernel * kernel)
        self.up, self.demodulate, self.activation, self.clamp = up, demodulate, activation, clamp
        self.padding = kernel // 2
        self.resolution = resolution
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        else:
            self.noise_strength = None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        styles = self.affine(w)
        if not self.demodulate:  # toRGB: the style scale is folded into the weight scale
            styles = styles * self.scale
        # demodulation normalises the weight, so (as the reference) it is used unscaled there
        # fused (grouped) for inference, styles and demodulation around one shared conv in training (as the reference)
        x = modulated_conv2d(x, self.weight, styles, self.demodulate, self.padding, up=self.up,
                             fused=not self.training or x.shape[0] == 1)
        if self.noise_strength is not None and noise_mode != "none":
            noise = (torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
                     if noise_mode == "random" else self.noise_const.to(x.dtype)[None, None])
            x = x + noise * self.noise_strength.to(x.dtype)
        x = x + self.bias.to(x.dtype)[None, :, None, None]
        if self.activation:
            return lrelu(x, self.clamp)
        return x.clamp(-self.clamp, self.clamp) if self.clamp is not None else x  # toRGB: clamped, linear


class MinibatchStd(torch.nn.Module):
    """Append the standard deviation over groups of samples (averaged over features) as extra channels."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:  # the group must divide the batch (small last batches, multi-process shards)
            g -= 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # (n/g, f, c/f, h, w)
        y = y.mean(dim=(2, 3, 4)).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm: scale each vector to unit root-mean-square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()
