"""ADA's geometric transforms resample at twice the resolution (sym6 wavelet filter), as the reference does."""
from __future__ import annotations

import math

import torch

from skingen.generators.stylegan2.augment import AugmentPipe, geometric_resample, rotate2d, translate2d

N, SIZE = 8, 32


def _band_limited(cut: float, seed: int = 0) -> torch.Tensor:
    """White noise with every frequency above ``cut`` cycles/pixel removed (0.25 = half the Nyquist band)."""
    x = torch.randn(N, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    f = torch.fft.fftfreq(SIZE).abs()
    keep = (f[:, None] <= cut) & (f[None, :] <= cut)
    return torch.fft.ifft2(torch.fft.fft2(x) * keep).real


def _shift(tx: float, ty: float) -> torch.Tensor:
    return translate2d(torch.full((N,), tx), torch.full((N,), ty), N, "cpu")


def _round_trip(x: torch.Tensor, tx: float, ty: float) -> torch.Tensor:
    return geometric_resample(geometric_resample(x, _shift(tx, ty)), _shift(-tx, -ty))


def test_a_band_limited_image_survives_a_subpixel_shift_and_back():
    x = _band_limited(0.25)
    y = _round_trip(x, 0.5, -0.5)  # a half-pixel shift: one whole pixel of the 2x grid
    assert float(y.var() / x.var()) >= 0.95  # one bilinear pass at 1x keeps ~0.46 of it
    assert 1 - float((y - x).var() / x.var()) >= 0.95
    smooth = _band_limited(0.125, seed=1)
    for tx, ty in ((0.25, 0.25), (0.3, -0.7)):  # any fraction: the 2x grid keeps the signal, bilinear at 2x damps little
        z = _round_trip(smooth, tx, ty)
        assert 1 - float((z - smooth).var() / smooth.var()) >= 0.95 and float(z.var() / smooth.var()) >= 0.9


def test_identity_and_whole_pixel_moves_are_exact():
    x = torch.randn(N, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    # sym6 is an orthogonal wavelet filter: up- then downsampling with it is the identity
    assert torch.allclose(geometric_resample(x, torch.eye(3).repeat(N, 1, 1)), x, atol=1e-4)
    y = geometric_resample(x, _shift(3.0, -2.0))  # output pixel (i, j) reads input (i + 3, j - 2)
    assert torch.allclose(y[:, :, 2:, :-3], x[:, :, :-2, 3:], atol=1e-4)
    smooth = _band_limited(0.25, seed=3)  # a quarter turn: exact up to the filter's slight asymmetry
    turned = geometric_resample(smooth, rotate2d(torch.full((N,), math.pi / 2), N, "cpu"))
    assert float((turned - torch.rot90(smooth, 1, dims=(2, 3))).var() / smooth.var()) < 0.01


def test_p0_is_the_identity_and_p1_changes_every_image():
    x = torch.rand(N, 3, SIZE, SIZE) * 2 - 1
    pipe = AugmentPipe()
    assert pipe(x, torch.Generator().manual_seed(0)) is x
    pipe.p.fill_(1.0)
    out = pipe(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and bool(((out - x).abs().amax(dim=(1, 2, 3)) > 0.1).all())
