"""Our StyleGAN2-ADA training step against NVIDIA's, iteration by iteration (issue 23 item 4).

tests/data/stylegan2_replay.npz was made by benchmarks/make_stylegan2_replay_fixture.py with NVIDIA's code imported
from a checkout: 10 iterations of its training loop (Gmain, Greg every 4, Dmain, Dreg every 16; lazy Adam; G_ema)
from the parity networks' weights, on the seeded draws of tests/replay_sg2.py. Here the same draws go through
our ``train_step``: every phase's gradients must equal the reference's to 1e-5 of that phase's largest gradient,
and G, D and G_ema after 10 iterations to 1e-4 of each parameter's own update (norms and 8 seeded projections)."""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from builders import projections
from replay_sg2 import PARITY, PHASES, SETTINGS, Tape, phase_latents, real_batch, taped_randn
from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardWriter
from skingen.generators.ddpm_data import TrainImages
from skingen.generators.stylegan2.loss import lazy_adam
from skingen.generators.stylegan2.networks import Discriminator, Generator, NetworkConfig
from skingen.generators.stylegan2.nvidia_names import import_state_dict
from skingen.generators.stylegan2.steps import train_step
from skingen.generators.stylegan2.train import Run, StyleGAN2Config, _ema_update

FIXTURES = {"float32": np.load(Path(__file__).parent / "data" / "stylegan2_replay.npz"),
            "float64": np.load(Path(__file__).parent / "data" / "stylegan2_replay_f64.npz")}
S = SETTINGS


def _run(tmp: Path, dtype: torch.dtype) -> Run:
    """Our Run with the replay's settings, its networks the parity configuration with the parity weights."""
    assert all(ast.literal_eval(str(f["settings"])) == S for f in FIXTURES.values())
    from safetensors.torch import load_file

    with ShardWriter(tmp / "train.h5", 32, attrs={"split": "train"}) as w:
        for i in range(4):
            w.add(np.full((32, 32, 3), 60 * i, np.uint8), CLASS_INDEX["MEL"], f"img{i}", f"les{i}", "x")
    cfg = StyleGAN2Config(resolution=32, preset="tiny", batch_size=S["batch"], g_lr=S["lr"], d_lr=S["lr"],
                          r1_gamma=S["r1_gamma"], pl_weight=S["pl_weight"], pl_interval=S["pl_interval"],
                          r1_interval=S["r1_interval"], style_mixing=0.0, augment="none", ema_kimg=S["ema_kimg"],
                          ema_rampup=0.0, mirror=False, mixed_precision="no")
    run = Run(cfg, TrainImages(tmp / "train.h5", ("MEL",), 32), Accelerator(cpu=True))
    net = NetworkConfig(resolution=32, z_dim=64, w_dim=64, channel_base=1024, channel_max=32, mapping_layers=2,
                        mbstd_group=4)
    tensors = load_file(str(PARITY))
    run.G, run.D = Generator(net).train(), Discriminator(net).train()
    for kind, module in (("G", run.G), ("D", run.D)):
        ref = {k[len(f"uncond.{kind}."):]: v for k, v in tensors.items() if k.startswith(f"uncond.{kind}.")}
        module.load_state_dict(import_state_dict(ref, module, kind))
        module.to(dtype)
    run.G_ema = copy.deepcopy(run.G).eval().requires_grad_(False)
    run.g_fwd, run.d_fwd, run.net_cfg = run.G, run.D, net
    run.opt_g = lazy_adam(run.G.parameters(), S["lr"], (0.0, 0.99), S["pl_interval"])
    run.opt_d = lazy_adam(run.D.parameters(), S["lr"], (0.0, 0.99), S["r1_interval"])
    return run


def _capture(run: Run, log: list) -> None:
    """Record each optimiser step's gradients (after averaging and cleaning) before it runs."""
    for opt, kind, module in ((run.opt_g, "G", run.G), (run.opt_d, "D", run.D)):
        step = opt.step

        def wrapped(*a, _step=step, _kind=kind, _module=module, **k):
            log.append((_kind, {n: p.grad.detach().clone() for n, p in _module.named_parameters() if p.grad is not None}))
            return _step(*a, **k)

        opt.step = wrapped


@pytest.fixture(scope="module", params=["float32", "float64"])
def replay(request, tmp_path_factory):
    """Our trainer through the fixture's 10 iterations, in float32 and in float64 (torch's default dtype for the
    while, so that every tensor the step makes is double too)."""
    torch.set_num_threads(1)
    dtype = {"float32": torch.float32, "float64": torch.float64}[request.param]
    np_dtype = np.float64 if request.param == "float64" else np.float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        run = _run(tmp_path_factory.mktemp("sg2replay"), dtype)
        init = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in (("G", run.G), ("D", run.D))}
        grads, pl_means, calls = {}, [], []
        for it in range(S["iterations"]):
            zs, log = phase_latents(it, np_dtype), []
            queue = [zs[0]] + ([zs[1][:S["batch"] // 2]] if it % S["pl_interval"] == 0 else []) + [zs[2]]
            run.batch = lambda it=it: (real_batch(it, np_dtype), None)
            run.latents = lambda n, q=queue: q.pop(0)
            _capture(run, log)
            with taped_randn(Tape(it, np_dtype)) as tape:
                train_step(run)
            _ema_update(run)
            run.step += 1
            names = [p for p in PHASES if it % {"Gmain": 1, "Greg": S["pl_interval"], "Dmain": 1,
                                                "Dreg": S["r1_interval"]}[p] == 0]
            grads.update({(it, name): entry for name, entry in zip(names, log)})
            pl_means.append(float(run.pl_mean))
            calls.append([int(np.prod(c)) for c in tape.calls])
    finally:
        torch.set_default_dtype(default)
    assert run.G.synthesis.blocks[0].conv1.weight.dtype == dtype
    return request.param, run, init, grads, pl_means, calls


def _errors(fixture, prefix: str, values: dict, kind: str, scale: float) -> dict:
    """Per tensor: the largest |norm diff| or |projection diff|, divided by ``scale`` (0: by its own norm)."""
    out = {}
    for name, v in values.items():
        key = f"{kind}.{name}"
        v = v.detach().double().numpy()
        ref_norm = float(fixture[f"{prefix}_norm/{key}"])
        denom = scale or ref_norm
        if denom == 0:
            assert np.linalg.norm(v) == 0, key
            continue
        err = max(abs(np.linalg.norm(v) - ref_norm), np.abs(projections(key, v) - fixture[f"{prefix}_proj/{key}"]).max())
        out[name] = err / denom
    return out


def test_the_same_draws_are_consumed_in_the_same_order(replay):
    precision, _, _, _, _, calls = replay
    for it, ours in enumerate(calls):
        assert ours == FIXTURES[precision][f"it{it}_noise_calls"].tolist(), it


# Tolerances. In float64 rounding (~1e-16) stays far below anything Adam or the GAN amplifies within 10
# iterations, so the replay is held to the bounds on any CPU: every phase's gradients to 1e-5 of the
# phase's largest, every tensor after 10 iterations to 1e-4 of its own update, pl_mean to 1e-8.
# In float32, on the kernels that made the fixture, the replay agrees to float32 rounding: every phase's
# gradients to <= 1e-6 of the phase's largest (one 4e-5 at iteration 7), every tensor after 10 iterations to
# <= 1e-5 of its update but one modulation bias (1.4e-4: Adam with beta1 = 0 steps each element by ~lr however
# small its gradient). Other CPU kernels (AVX2 vs AVX-512) round differently, and from the first Adam step --
# a sign step for such elements -- GAN training amplifies that: iteration 0's G main phase (identical weights)
# stays at 2e-7, later phases drift to ~1e-3 (median) and the networks after 10 iterations to ~2e-3 of an update
# (max 1e-2). The float32 bounds below hold on any CPU and still fail on the errors this replay was built to
# catch: a detached path-length mean (~1e-2 of Greg's gradients at iteration 0), parameters Adam skips (20-46 %
# of an update).
BOUNDS = {"float64": {"first": dict.fromkeys(PHASES, 1e-5), "any": 1e-5, "median": 1e-5, "net_median": 1e-4,
                      "net_worst": 1e-4, "pl": 1e-8},
          "float32": {"first": {"Gmain": 1e-5, "Greg": 1e-4, "Dmain": 1e-3, "Dreg": 1e-3}, "any": 0.1,
                      "median": 1e-2, "net_median": 1e-2, "net_worst": 0.05, "pl": 1e-2}}


def test_every_phase_gradient_equals_the_reference(replay):
    precision, _, _, grads, _, _ = replay
    fixture, bound = FIXTURES[precision], BOUNDS[precision]
    assert len(grads) == 10 + 3 + 10 + 1  # Gmain and Dmain every iteration, Greg at 0, 4, 8, Dreg at 0
    worst_seen, medians = {}, []
    for (it, phase), (kind, values) in grads.items():
        assert len(values) == sum(k.startswith(f"it{it}_{phase}_grad_norm/") for k in fixture.files), (it, phase)
        largest = max(float(fixture[f"it{it}_{phase}_grad_norm/{kind}.{n}"]) for n in values)
        errors = _errors(fixture, f"it{it}_{phase}_grad", values, kind, largest)
        worst_seen[(it, phase)] = max(errors.values())
        medians.append(float(np.median(list(errors.values()))))
    print(precision, "per-phase gradient errors (of the phase's largest):",
          {k: f"{v:.1e}" for k, v in worst_seen.items()})
    for phase, first in bound["first"].items():
        assert worst_seen[(0, phase)] <= first, (phase, worst_seen[(0, phase)])
    assert max(worst_seen.values()) <= bound["any"] and max(medians) <= bound["median"], (worst_seen, medians)


def test_path_length_mean_and_networks_after_ten_iterations_equal_the_reference(replay):
    precision, run, init, _, pl_means, _ = replay
    fixture, bound = FIXTURES[precision], BOUNDS[precision]
    assert np.allclose(pl_means, [float(fixture[f"it{i}_pl_mean"]) for i in range(S["iterations"])], rtol=bound["pl"])
    assert abs(pl_means[0] / float(fixture["it0_pl_mean"]) - 1) <= 1e-5
    for kind, module, start in (("G", run.G, init["G"]), ("D", run.D, init["D"]), ("G_ema", run.G_ema, init["G"])):
        updates = {n: p.detach() - start[n] for n, p in module.named_parameters()}
        errors = _errors(fixture, f"{kind}_update", updates, "G" if kind == "G_ema" else kind, 0.0)
        ranked = sorted(errors.items(), key=lambda kv: kv[1])
        median = float(np.median(list(errors.values())))
        print(precision, kind, f"median {median:.1e}", "worst", [(n, f"{e:.1e}") for n, e in ranked[-2:]])
        assert median <= bound["net_median"] and ranked[-1][1] <= bound["net_worst"], ranked[-3:]
    assert np.allclose(run.G.mapping.w_avg.numpy(), fixture["G_w_avg"], rtol=bound["pl"], atol=1e-4 * bound["pl"])
