"""Our StyleGAN2-ADA training step side by side with NVIDIA's stylegan2-ada-pytorch (issue 16 item 8).

Same configuration in both: paper256 channels (channel_base 16384, channel_max 512, mapping 8 layers,
minibatch-std group 8), float32, no conv_clamp, batch 8, ADA at fixed p = 0.2 with all 12 transforms,
style mixing 0.9, no R1 and no path length; lazy-Adam settings of paper256 (lr 0.0025). One iteration
is the G main and D main phases with their optimiser steps (zero_grad, backward, NaN cleanup, Adam),
as the reference's ``training_loop`` runs them; EMA, logging and ADA updates are left out of both.
Both draw their real batch through our data loader. Steps alternate (ours, reference) in one process
after a warm-up, with the same ``torch.set_num_threads``; the medians and ours/NVIDIA are printed.

NVIDIA's code is not part of this repository (non-commercial licence): fetch it yourself and point
``STYLEGAN2_ADA_PYTORCH`` at the checkout; it is imported from there, unmodified (on CPU its custom ops
use their reference implementations; no patches are needed with torch 2.x).

Usage: STYLEGAN2_ADA_PYTORCH=/path/to/stylegan2-ada-pytorch python benchmarks/bench_stylegan2_reference.py
       [--res 32 64] [--steps 5] [--warmup 2] [--threads N] [--profile]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from accelerate import Accelerator

from skingen.generators.ddpm_data import TrainImages
from skingen.generators.stylegan2.steps import train_step
from skingen.generators.stylegan2.train import Run, StyleGAN2Config

sys.path.insert(0, str(Path(__file__).parent))
from bench_stylegan2 import shard  # noqa: E402
from nvidia_reference import nvidia_checkout  # noqa: E402

BATCH, P, LR, MIXING = 8, 0.2, 0.0025, 0.9


def ours(train: Path, res: int) -> Run:
    cfg = StyleGAN2Config(resolution=res, preset="paper256", fmaps=0.5, mapping_layers=8, mbstd_group=8,
                          batch_size=BATCH, g_lr=LR, d_lr=LR, r1_gamma=0, pl_weight=0, style_mixing=MIXING,
                          augment=f"fixed:{P}")
    return Run(cfg, TrainImages(train, ("MEL",), res), Accelerator(cpu=True))


def reference(res: int):
    """NVIDIA's G, D, augment pipe, loss and lazy Adams for the same configuration (imported from the env path)."""
    from training import augment, networks
    from training.loss import StyleGAN2Loss

    net = dict(channel_base=16384, channel_max=512, num_fp16_res=0, conv_clamp=None)
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                           mapping_kwargs=dict(num_layers=8), synthesis_kwargs=net).train().requires_grad_(False)
    D = networks.Discriminator(c_dim=0, img_resolution=res, img_channels=3, epilogue_kwargs=dict(mbstd_group_size=8),
                               **net).train().requires_grad_(False)
    pipe = augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                               contrast=1, lumaflip=1, hue=1, saturation=1).train().requires_grad_(False)
    pipe.p.copy_(torch.as_tensor(P))
    loss = StyleGAN2Loss("cpu", G.mapping, G.synthesis, D, augment_pipe=pipe, style_mixing_prob=MIXING, r1_gamma=0,
                         pl_weight=0)

    def adam(module, interval):
        r = interval / (interval + 1)
        return torch.optim.Adam(module.parameters(), lr=LR * r, betas=(0.0, 0.99 ** r), eps=1e-8)

    return SimpleNamespace(G=G, D=D, loss=loss, phases=[("Gmain", G, adam(G, 4)), ("Dmain", D, adam(D, 16))])


def reference_step(ref, run: Run) -> None:
    """The reference training loop's G main and D main phases for one batch."""
    from torch_utils import misc

    real, _ = run.batch()
    c = torch.zeros(BATCH, 0)
    for name, module, opt in ref.phases:
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        ref.loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=torch.randn(BATCH, 512), gen_c=c,
                                      sync=True, gain=1)
        module.requires_grad_(False)
        for param in module.parameters():
            if param.grad is not None:
                misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
        opt.step()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile(label: str, fn, rows: int = 25) -> None:
    """Self CPU time per operator over one step."""
    from torch.profiler import ProfilerActivity, profile as prof

    with prof(activities=[ProfilerActivity.CPU]) as p:
        fn()
    print(f"--- profile: {label}")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def compare(train: Path, res: int, steps: int, warmup: int, do_profile: bool) -> float:
    torch.manual_seed(0)
    run, ref = ours(train, res), reference(res)
    ours_fn, ref_fn = (lambda: train_step(run)), (lambda: reference_step(ref, run))
    for _ in range(warmup):
        ours_fn()
        ref_fn()
    t_ours, t_ref = [], []
    for _ in range(steps):
        t_ours.append(timed(ours_fn))
        t_ref.append(timed(ref_fn))
    mo, mr = statistics.median(t_ours), statistics.median(t_ref)
    print(f"{res:>3} px batch {BATCH}: ours {mo:6.2f} s (all {', '.join(f'{t:.2f}' for t in t_ours)}), "
          f"NVIDIA {mr:6.2f} s (all {', '.join(f'{t:.2f}' for t in t_ref)}) -> ours/NVIDIA {mo / mr:.3f}", flush=True)
    if do_profile:
        profile(f"ours {res} px", ours_fn)
        profile(f"NVIDIA {res} px", ref_fn)
    return mo / mr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", action="store_true", help="print a per-operator profile of one step of each")
    args = parser.parse_args()
    path = nvidia_checkout("benchmarks/bench_stylegan2_reference.py")
    if path is None:
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU; reference from {path}")
    with tempfile.TemporaryDirectory() as tmp:
        for res in args.res:
            compare(shard(Path(tmp) / f"t{res}.h5", res), res, args.steps, args.warmup, args.profile)


if __name__ == "__main__":
    main()
