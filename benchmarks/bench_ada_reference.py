"""Our ADA augmentation side by side with NVIDIA's ``AugmentPipe`` (stylegan2-ada-pytorch; issue 16 item 2).

What it measures: whether ``skingen.generators.stylegan2.augment.AugmentPipe`` draws the same distribution
of augmented images as NVIDIA's reference ``training/augment.py`` ``AugmentPipe``, for each of the 12
transforms alone (p = 1) and for all of them together at p = 0.2.

Method. The random draws of the two implementations differ, so distributions are compared, not images.
A fixed batch of four smooth but asymmetric 32x32 RGB images in [-1, 1] (a gradient per channel, an
off-centre blob, distinct colours per channel) is augmented many times by each implementation (512
outputs each: 16 calls on a batch of 32 = the 4 images x 8 copies; the batch is the same in both, since
the reference pads by the batch's largest transformed corner and so do we). Each output gets 12 summary
features, each measured relative to its input image: the change of the per-channel means (3), the log
std ratio, the change of the luminance-weighted centroid x and y (weights: luminance less its minimum),
the log ratio of the luminance-weighted spatial spread, the change of the spread's x/y anisotropy, the
correlation with the input, a flip feature corr(out, xflip(in)) - corr(out, in), the change of the hue
angle of the mean colour about the luma axis, and the log ratio of its chroma. Features that agree to
within floating-point noise are merged before testing (an un-augmented sample goes through the resampler
in both, which is the identity only up to ~1e-6, differently in each). Each feature's distribution is
compared between the two implementations with a two-sample Kolmogorov-Smirnov test. PASS needs every
p-value above a Bonferroni threshold: family-wise alpha 0.01 over the 13 configurations x 12 features.
(The discrete transforms give atoms, where KS's p-value is conservative; samples in one call share the
batch's padding, a dependence both implementations have alike.)
Positive controls (deliberately wrong variants against the same reference) show the test detects a
doubled scale std, a halved rotation range, a wrong flip probability and a tilted hue axis.

NVIDIA's code is not part of this repository (non-commercial licence): fetch it yourself and point
``STYLEGAN2_ADA_PYTORCH`` at the checkout; it is imported from there, unmodified (on CPU its custom ops
use their reference implementations).

Usage: STYLEGAN2_ADA_PYTORCH=/path/to/stylegan2-ada-pytorch python benchmarks/bench_ada_reference.py
       [--calls 16] [--threads 1]
"""
from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from scipy.stats import ks_2samp

from skingen.generators.stylegan2 import augment as ours_mod
from skingen.generators.stylegan2.augment import COLOUR, GEOMETRIC, AugmentPipe

sys.path.insert(0, str(Path(__file__).parent))
from nvidia_reference import nvidia_checkout  # noqa: E402

RES, COPIES, ALPHA = 32, 8, 0.01
FEATURES = ("dmean_r", "dmean_g", "dmean_b", "log_std", "d_cx", "d_cy", "log_spread", "d_aniso", "corr_in",
            "flip_sens", "d_hue", "log_chroma")
# Our constructor argument -> the reference's, for the strengths both expose.
STD_NAMES = {"translate_std": "xfrac_std", "scale_std": "scale_std", "aniso_std": "aniso_std",
             "brightness_std": "brightness_std", "contrast_std": "contrast_std", "saturation_std": "saturation_std"}
# Strengths the reference exposes and ours fixes in code (skingen/generators/stylegan2/augment.py).
FIXED_IN_OURS = {"xint_max": (0.125, "line 86: (rand*2-1) * 0.125"),
                 "rotate_max": (1.0, "lines 93/98: (rand*2-1) * pi, a full circle"),
                 "hue_max": (1.0, "line 121: (rand*2-1) * pi, a full circle")}
SNAP_TOL = 1e-4  # features closer than this are one value (float noise of the identity resample is ~1e-6)


def test_images() -> torch.Tensor:
    """Four smooth, asymmetric RGB images (1 per row of the returned (4, 3, RES, RES) batch) in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, RES), torch.linspace(-1, 1, RES), indexing="ij")
    blobs = [(0.45, -0.3), (-0.5, 0.2), (0.3, 0.55), (-0.2, -0.5)]
    gen = torch.Generator().manual_seed(0)
    images = []
    for bx, by in blobs:
        slope = torch.rand(3, 2, generator=gen) * 1.6 - 0.8  # per-channel gradient
        amp = torch.tensor([1.2, -0.8, 0.5]) * (torch.rand(3, generator=gen) + 0.5)  # blob differs per channel
        offset = torch.tensor([0.25, -0.15, -0.05])  # distinct mean colour
        blob = torch.exp(-((xs - bx) ** 2 + (ys - by) ** 2) / (2 * 0.2 ** 2))
        images.append(torch.stack([torch.tanh(slope[c, 0] * xs + slope[c, 1] * ys + amp[c] * blob + offset[c])
                                   for c in range(3)]))
    return torch.stack(images)


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def _raw(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Absolute per-image statistics of a batch (N, 3, H, W)."""
    n, _, h, w = x.shape
    mean = x.mean((2, 3))
    lum = x.mean(1)  # the luma axis of ADA is (1, 1, 1)
    wgt = lum - lum.flatten(1).amin(1)[:, None, None]
    wgt = wgt / wgt.sum((1, 2), keepdim=True)
    gx = (torch.arange(w, dtype=x.dtype) - (w - 1) / 2)[None, None, :]
    gy = (torch.arange(h, dtype=x.dtype) - (h - 1) / 2)[None, :, None]
    cx, cy = (wgt * gx).sum((1, 2)), (wgt * gy).sum((1, 2))
    vx = (wgt * (gx - cx[:, None, None]) ** 2).sum((1, 2))
    vy = (wgt * (gy - cy[:, None, None]) ** 2).sum((1, 2))
    e1 = torch.tensor([1.0, -1.0, 0.0]) / math.sqrt(2)  # a basis of the plane orthogonal to the luma axis
    e2 = torch.tensor([1.0, 1.0, -2.0]) / math.sqrt(6)
    c1, c2 = mean @ e1, mean @ e2
    return dict(mean=mean, std=x.flatten(1).std(1), cx=cx, cy=cy, spread=(vx + vy).sqrt(), aniso=0.5 * (vx / vy).log(),
                hue=torch.atan2(c2, c1), chroma=torch.hypot(c1, c2))


def features(out: torch.Tensor, inp: torch.Tensor) -> np.ndarray:
    """(N, len(FEATURES)) features of each output, relative to its input."""
    o, i = _raw(out), _raw(inp)
    dhue = torch.remainder(o["hue"] - i["hue"] + math.pi, 2 * math.pi) - math.pi
    corr = _corr(out, inp)
    cols = [*(o["mean"] - i["mean"]).unbind(1), (o["std"] / i["std"]).log(), o["cx"] - i["cx"], o["cy"] - i["cy"],
            (o["spread"] / i["spread"]).log(), o["aniso"] - i["aniso"], corr, _corr(out, inp.flip(3)) - corr, dhue,
            (o["chroma"] / i["chroma"]).log()]
    return torch.stack(cols, 1).double().numpy()


def snap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace values by the index of their cluster (pooled values chained within SNAP_TOL), so that an
    atom both implementations put at the same place up to float noise is one value; KS is rank-based."""
    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")
    gaps = np.diff(pooled[order]) > SNAP_TOL
    ids = np.empty(len(pooled))
    ids[order] = np.concatenate([[0], np.cumsum(gaps)])
    return ids[:len(a)], ids[len(a):]


def compare(fa: np.ndarray, fb: np.ndarray) -> list[tuple[str, float, float]]:
    """(feature, KS D, p) for every feature."""
    rows = []
    for k, name in enumerate(FEATURES):
        a, b = snap(fa[:, k], fb[:, k])
        if np.all(a == a[0]) and np.all(b == a[0]):  # one value in both (e.g. a colour feature under a flip)
            rows.append((name, 0.0, 1.0))
            continue
        res = ks_2samp(a, b)
        rows.append((name, float(res.statistic), float(res.pvalue)))
    return rows


def draw(pipe, batch: torch.Tensor, calls: int, seed: int, is_ours: bool) -> np.ndarray:
    """Features of ``calls`` augmentations of ``batch``; ours draws from its own generator, the reference
    from torch's global one (it takes none)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    feats = []
    with torch.no_grad():
        for _ in range(calls):
            out = pipe(batch, generator=gen) if is_ours else pipe(batch)
            feats.append(features(out, batch))
    return np.concatenate(feats)


def ours_pipe(transforms: tuple[str, ...], p: float, **kw) -> AugmentPipe:
    pipe = AugmentPipe(transforms=transforms, **kw)
    pipe.p.fill_(p)
    return pipe


def ref_pipe(ref_aug, transforms: tuple[str, ...], p: float, **kw):
    pipe = ref_aug.AugmentPipe(**{**{t: 1 for t in transforms}, **kw})  # kw may override a multiplier
    pipe.p.copy_(torch.as_tensor(p))
    return pipe


@contextmanager
def tilted_luma():
    """Our module's luma (hue) axis tilted to (1, 1, 0.5): a deliberately wrong hue axis, for a control."""
    saved = ours_mod.LUMA
    ours_mod.LUMA = torch.tensor([1.0, 1.0, 0.5, 0.0]) / math.sqrt(2.25)
    try:
        yield
    finally:
        ours_mod.LUMA = saved


def check_defaults(ref_aug) -> bool:
    ref = vars(ref_aug.AugmentPipe())  # its constructor stores every strength as an attribute (the class is
    # wrapped by a persistence decorator whose __init__ takes *args, so its signature does not show them)
    mine = {k: v.default for k, v in inspect.signature(AugmentPipe.__init__).parameters.items()}
    same = True
    print("default strengths (ours = reference):")
    for o, r in STD_NAMES.items():
        ok = float(mine[o]) == float(ref[r])
        same &= ok
        print(f"  {o:15s} {mine[o]!s:6} {r:15s} {ref[r]!s:6} {'same' if ok else 'DIFFERENT'}")
    for r, (value, where) in FIXED_IN_OURS.items():
        ok = float(ref[r]) == value
        same &= ok
        print(f"  {'(fixed in code)':15s} {value!s:6} {r:15s} {ref[r]!s:6} {'same' if ok else 'DIFFERENT'}  [{where}]")
    print(f"  => defaults {'all equal' if same else 'DIFFER'}; each configuration below uses both pipes' defaults")
    return same


def run_controls(ref_aug, batch: torch.Tensor, calls: int, threshold: float) -> bool:
    """Deliberately wrong variants against the reference: each must be detected at the same threshold."""
    print("\npositive controls (a deliberately wrong variant vs the reference at its defaults; same threshold):")
    controls = [  # (label, our pipe, reference pipe, tilt our hue axis)
        ("ours scale_std 0.4 (doubled)", ours_pipe(("scale",), 1.0, scale_std=0.4),
         ref_pipe(ref_aug, ("scale",), 1.0), False),
        ("ours rotate vs ref rotate_max 0.5 (angle range x2)", ours_pipe(("rotate",), 1.0),
         ref_pipe(ref_aug, ("rotate",), 1.0, rotate_max=0.5), False),
        ("ours xflip vs ref xflip=0.5 (P(flip) .5 vs .25)", ours_pipe(("xflip",), 1.0),
         ref_pipe(ref_aug, ("xflip",), 1.0, xflip=0.5), False),
        ("ours hue about (1,1,0.5) (wrong axis)", ours_pipe(("hue",), 1.0),
         ref_pipe(ref_aug, ("hue",), 1.0), True),
    ]
    all_detected = True
    for j, (label, mine, ref, tilt) in enumerate(controls):
        with tilted_luma() if tilt else nullcontext():
            fa = draw(mine, batch, calls, 3000 + j, True)
        fb = draw(ref, batch, calls, 4000 + j, False)
        name, d, pv = min(compare(fa, fb), key=lambda r: (r[2], -r[1]))
        detected = pv <= threshold
        all_detected &= detected
        print(f"  {label:52s} {name:12s} D={d:.3f} p={pv:.2e}  {'DETECTED' if detected else 'NOT DETECTED'}")

    return all_detected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=16, help="calls per configuration and implementation")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    path = nvidia_checkout("benchmarks/bench_ada_reference.py")
    if path is None:
        return
    from training import augment as ref_aug

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    base = test_images()
    batch = base.repeat(COPIES, 1, 1, 1)  # 32 images: the 4 test images x 8 copies
    n = args.calls * batch.shape[0]
    configs = [((t,), 1.0) for t in GEOMETRIC + COLOUR] + [(GEOMETRIC + COLOUR, 0.2)]
    n_tests = len(configs) * len(FEATURES)
    threshold = ALPHA / n_tests
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU; reference from {path}")
    defaults_same = check_defaults(ref_aug)
    print(f"{len(base)} test images {RES}x{RES}, batch {batch.shape[0]}, {args.calls} calls -> {n} outputs per "
          f"implementation and configuration; {len(FEATURES)} features")
    print(f"seeds: configuration i (0-based) draws ours from torch.Generator seed 1000+i and the reference "
          f"after torch.manual_seed(2000+i); controls 3000+j / 4000+j")
    print(f"PASS if every feature's KS p > {threshold:.2e} = {ALPHA} / ({len(configs)} configurations x "
          f"{len(FEATURES)} features) (Bonferroni, family-wise alpha {ALPHA})\n")

    print(f"{'configuration':22s} {'worst feature':14s} {'KS D':>6s} {'p':>9s}  verdict")
    results = []
    for i, (transforms, p) in enumerate(configs):
        fa = draw(ours_pipe(transforms, p), batch, args.calls, 1000 + i, True)
        fb = draw(ref_pipe(ref_aug, transforms, p), batch, args.calls, 2000 + i, False)
        rows = compare(fa, fb)
        name, d, pv = min(rows, key=lambda r: (r[2], -r[1]))
        ok = all(r[2] > threshold for r in rows)
        label = transforms[0] if len(transforms) == 1 else f"all 12 at p={p}"
        label = f"{label} (p={p})" if len(transforms) == 1 else label
        results.append((label, name, d, pv, ok))
        print(f"{label:22s} {name:14s} {d:6.3f} {pv:9.2e}  {'PASS' if ok else 'FAIL'}")

    all_detected = run_controls(ref_aug, batch, args.calls, threshold)

    print(f"\ndefaults equal: {defaults_same}; configurations: "
          f"{sum(r[4] for r in results)}/{len(results)} PASS; controls: "
          f"{'all detected' if all_detected else 'NOT all detected'}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
