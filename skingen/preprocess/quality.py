"""Image-fidelity measures restricted to a region: PSNR from pooled squared error, SSIM map means."""
from __future__ import annotations

import cv2
import numpy as np

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004; Gaussian window sigma 1.5) averaged over colour channels."""
    a, b = a.astype(np.float64), b.astype(np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + C1) * (2 * cov + C2)
    den = (mu_a ** 2 + mu_b ** 2 + C1) * (var_a + var_b + C2)
    out = num / den
    return out.mean(axis=2) if out.ndim == 3 else out


class RegionScore:
    """Accumulates squared error and SSIM over the pixels of one region across many images."""

    def __init__(self) -> None:
        self.sq_err = 0.0
        self.values = 0
        self.ssim_sum = 0.0
        self.pixels = 0
        self.images = 0

    def add(self, out: np.ndarray, ref: np.ndarray, region: np.ndarray, ssim: np.ndarray) -> None:
        """Add one image's pixels inside boolean ``region``."""
        if not region.any():
            return
        diff = out[region].astype(np.float64) - ref[region].astype(np.float64)
        self.sq_err += float((diff ** 2).sum())
        self.values += diff.size
        self.ssim_sum += float(ssim[region].sum())
        self.pixels += int(region.sum())
        self.images += 1

    def result(self) -> dict:
        """PSNR (dB, 8-bit peak) and mean SSIM over the accumulated pixels, with the counts."""
        if not self.values:
            return {"n_images": 0, "n_pixels": 0, "psnr": None, "ssim": None}
        mse = self.sq_err / self.values
        psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
        return {"n_images": self.images, "n_pixels": self.pixels, "psnr": round(float(psnr), 3),
                "ssim": round(self.ssim_sum / self.pixels, 4)}
