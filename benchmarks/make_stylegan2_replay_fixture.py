"""Make tests/data/stylegan2_replay.npz: NVIDIA's stylegan2-ada-pytorch trained for 10 iterations from the parity
networks' weights on seeded draws, so a CI test can replay the same draws through our trainer without NVIDIA's code.

NVIDIA's code is non-commercial and never part of this repository: it is imported unmodified from the checkout
named by STYLEGAN2_ADA_PYTORCH (its training.networks Generator/Discriminator, training.loss.StyleGAN2Loss,
torch_utils.misc.nan_to_num). The iteration is its training_loop's: phases Gmain, Greg (every 4), Dmain, Dreg
(every 16) with lazy Adam (lr and betas scaled by interval/(interval + 1)), requires_grad toggled per phase,
gain = the phase's interval, gradients cleaned (NaN -> 0, +-Inf -> +-1e5) before each step, then the G_ema update
(ema_rampup None) and the buffers copied. Style mixing and augmentation are off here (their draws are not replayed;
tests/test_stylegan2_augment.py and the ADA bench cover them). The real batches, each phase's latents and a tape of
normals serving the synthesis and path-length noise come from tests/replay_sg2.py, seeded.

Recorded, in our parameter names: each phase's gradients (norm and 8 seeded projections per tensor) at every
iteration, pl_mean after each, and the updates of G, D and G_ema after the run.

``--float64`` makes tests/data/stylegan2_replay_f64.npz: the same replay in double precision (the draws are the
float32 ones, widened), so that the comparison does not depend on how a CPU's kernels round float32 (GAN training
with Adam amplifies a rounding difference into a 1e-3 drift within a few iterations). NVIDIA's networks cast
activations to ``torch.float32`` by name; for this run the script points that name at float64 (its code is not
changed) and makes float64 torch's default dtype.

Usage: STYLEGAN2_ADA_PYTORCH=/path/to/stylegan2-ada-pytorch python benchmarks/make_stylegan2_replay_fixture.py [--float64]
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from builders import projections  # noqa: E402
from nvidia_reference import nvidia_checkout  # noqa: E402
from replay_sg2 import PARITY, PHASES, SETTINGS, Tape, phase_latents, real_batch, taped_randn  # noqa: E402

from skingen.generators.stylegan2.nvidia_names import to_ours  # noqa: E402


def networks():
    """NVIDIA's G and D for the parity configuration, loaded with the parity fixture's 'uncond' weights."""
    from safetensors.torch import load_file
    from training import networks as nets

    tensors = load_file(str(PARITY))
    syn = dict(channel_base=1024, channel_max=32, num_fp16_res=0, conv_clamp=None)
    G = nets.Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=32, img_channels=3,
                       mapping_kwargs=dict(num_layers=2), synthesis_kwargs=syn)
    D = nets.Discriminator(c_dim=0, img_resolution=32, img_channels=3, epilogue_kwargs=dict(mbstd_group_size=4), **syn)
    for kind, net in (("G", G), ("D", D)):
        net.load_state_dict({k: tensors[f"uncond.{kind}.{k}"] for k in net.state_dict()})
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


def fingerprint(out: dict, prefix: str, module, kind: str, values) -> None:
    """Norm and projections of ``values`` (name -> tensor, reference names) under our names."""
    for name, v in values.items():
        ours = to_ours(name, kind, SETTINGS["resolution"])
        v = v.detach().double().numpy()
        out[f"{prefix}_norm/{kind}.{ours}"] = np.linalg.norm(v)
        out[f"{prefix}_proj/{kind}.{ours}"] = projections(f"{kind}.{ours}", v)


def run(out: dict, dtype=np.float32) -> None:
    """NVIDIA's loop for SETTINGS['iterations'] iterations, recorded into ``out``."""
    G, D = networks()
    if dtype == np.float64:
        G, D = G.double(), D.double()
        single = torch.float32
        torch.float32 = torch.float64  # the name NVIDIA's networks cast activations to (see the docstring)
    try:
        _iterate(out, G, D, dtype)
    finally:
        if dtype == np.float64:
            torch.float32 = single


def _iterate(out: dict, G, D, dtype) -> None:
    from torch_utils import misc
    from training.loss import StyleGAN2Loss

    s = SETTINGS
    G_ema = copy.deepcopy(G).eval()
    init = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in (("G", G), ("D", D))}
    loss = StyleGAN2Loss("cpu", G.mapping, G.synthesis, D, augment_pipe=None, style_mixing_prob=0.0,
                         r1_gamma=s["r1_gamma"], pl_weight=s["pl_weight"])
    phases = []
    for kind, module, interval in (("G", G, s["pl_interval"]), ("D", D, s["r1_interval"])):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=s["lr"] * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
        phases += [(f"{kind}main", kind, module, opt, 1), (f"{kind}reg", kind, module, opt, interval)]
    phases = [phases[0], phases[1], phases[2], phases[3]]  # Gmain, Greg, Dmain, Dreg: the loop's order
    c = torch.zeros(s["batch"], 0)
    for it in range(s["iterations"]):
        real, zs, tape = real_batch(it, dtype), phase_latents(it, dtype), Tape(it, dtype)
        for index, (name, kind, module, opt, interval) in enumerate(phases):
            if it % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            with taped_randn(tape):
                loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=zs[PHASES.index(name)], gen_c=c,
                                          sync=True, gain=interval)
            module.requires_grad_(False)
            grads = {}
            for n, p in module.named_parameters():
                if p.grad is not None:
                    misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
                    grads[n] = p.grad
            fingerprint(out, f"it{it}_{name}_grad", module, kind, grads)
            opt.step()
        beta = 0.5 ** (s["batch"] / max(s["ema_kimg"] * 1000, 1e-8))
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)
        out[f"it{it}_pl_mean"] = np.float64(loss.pl_mean)
        out[f"it{it}_noise_calls"] = np.array([int(np.prod(c)) for c in tape.calls])
    for kind, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        start = init["G" if kind == "G_ema" else kind]
        fingerprint(out, f"{kind}_update", module, "G" if kind == "G_ema" else kind,
                    {n: p - start[n] for n, p in module.named_parameters()})
    out["G_w_avg"] = G.mapping.w_avg.detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="default tests/data/stylegan2_replay.npz (_f64 with --float64)")
    parser.add_argument("--float64", action="store_true", help="the replay in double precision")
    args = parser.parse_args()
    args.out = args.out or str(ROOT / "tests" / "data" / f"stylegan2_replay{'_f64' if args.float64 else ''}.npz")
    if nvidia_checkout(__file__) is None:
        raise SystemExit(2)
    torch.set_num_threads(1)
    if args.float64:
        torch.set_default_dtype(torch.float64)
    out: dict = {"settings": np.array(repr(SETTINGS)), "dtype": np.array("float64" if args.float64 else "float32")}
    run(out, np.float64 if args.float64 else np.float32)
    np.savez_compressed(args.out, **out)
    pl = [round(float(out[f"it{i}_pl_mean"]), 5) for i in range(SETTINGS["iterations"])]
    print(f"wrote {args.out}: {len(out)} arrays; pl_mean {pl}")


if __name__ == "__main__":
    main()
