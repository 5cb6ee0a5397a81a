"""StyleGAN2-ADA training step as the reference's (issue 16 items 3, 4): style mixing in every generator
pass, w_avg on every training mapping call, separate lazy-regulariser steps with the adjusted Adam,
NaN/Inf gradient cleanup, reduced precision routed to the 4 highest resolutions with conv_clamp, and
presets that carry their training settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from builders import REPO
from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardWriter
from skingen.generators.ddpm_data import TrainImages
from skingen.generators.stylegan2.layers import EqualConv2d, ModulatedConv
from skingen.generators.stylegan2.networks import (Discriminator, Generator, MappingNetwork, network_config,
                                                   set_reduced_precision)
from skingen.generators.stylegan2.presets import preset_settings
from skingen.generators.stylegan2.steps import clean_grads, train_step
from skingen.generators.stylegan2.train import Run, StyleGAN2Config
from skingen.grid.spec import load_study

TINY = dict(resolution=16, preset="tiny", batch_size=4, grid_images=0, r1_interval=4, pl_interval=2,
            augment="fixed:0.5")


class OneProcess:
    """Stands in for Accelerate with one CPU process."""

    device, process_index, num_processes = torch.device("cpu"), 0, 1

    def gather(self, t):
        return t


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("sg2t") / "train.h5"
    rng = np.random.default_rng(0)
    with ShardWriter(path, 16, attrs={"split": "train"}) as w:
        for i in range(16):
            w.add(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), CLASS_INDEX["MEL"], f"i{i}", f"l{i}", "x")
    return path


def _run(shard, **kw) -> Run:
    cfg = StyleGAN2Config(**{**TINY, **kw})
    return Run(cfg, TrainImages(shard, cfg.classes, cfg.resolution), OneProcess())


def _spy_synthesis(run: Run) -> list[torch.Tensor]:
    seen = []
    run.G.synthesis.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize("mixing", [1.0, 0.0])
def test_every_generator_pass_mixes_styles(shard, mixing):
    run = _run(shard, style_mixing=mixing)
    seen = _spy_synthesis(run)
    train_step(run)  # step 0: G main, path length, D main (R1 does not run G)
    assert [len(ws) for ws in seen] == [4, 2, 4]  # G loss, path-length batch (half), D's fakes
    for ws in seen:  # unmixed ws repeat one w over the layers; mixed ones differ after the cutoff
        assert torch.allclose(ws[:, 0], ws[:, -1]) == (mixing == 0)


def test_w_avg_moves_on_every_training_mapping_call_and_not_in_eval():
    torch.manual_seed(0)
    mapping = MappingNetwork(8, 0, 8, 2, 3)
    z = torch.randn(4, 8)
    before = mapping.w_avg.clone()
    mapping(z)
    after_one = mapping.w_avg.clone()
    mapping(z)
    assert not torch.allclose(before, after_one) and not torch.allclose(after_one, mapping.w_avg)
    frozen = mapping.w_avg.clone()
    mapping(z, skip_w_avg_update=True)  # the second z of style mixing
    assert torch.equal(frozen, mapping.w_avg)
    mapping.eval()(z)
    assert torch.equal(frozen, mapping.w_avg)


def test_w_avg_moves_in_each_phase_that_runs_the_generator(shard):
    run = _run(shard, style_mixing=1.0)
    trace = []
    run.G.mapping.register_forward_hook(lambda m, args, kwargs, out: trace.append(
        (kwargs.get("skip_w_avg_update", False), m.w_avg.clone())), with_kwargs=True)
    w_avg = run.G.mapping.w_avg.clone()
    train_step(run)
    assert [skip for skip, _ in trace] == [False, True] * 3  # G main, path length, D main: each mixes
    for skip, now in trace:
        assert torch.equal(now, w_avg) == skip  # every non-mixing call moved it
        w_avg = now


def test_regularisers_take_their_own_steps_with_the_adjusted_adam(shard):
    run = _run(shard, g_lr=0.002, d_lr=0.003)
    for opt, lr, k in ((run.opt_g, 0.002, 2), (run.opt_d, 0.003, 4)):
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(lr * k / (k + 1))
        assert group["betas"] == pytest.approx((0.0, 0.99 ** (k / (k + 1))))
    calls = []
    for name in ("opt_g", "opt_d"):
        opt = getattr(run, name)
        opt.step = (lambda step, name: lambda *a, **kw: (calls.append((run.step, name)), step(*a, **kw))[1])(
            opt.step, name)
    for _ in range(8):
        train_step(run)
        run.step += 1
    g_steps = [s for s, n in calls if n == "opt_g"]
    d_steps = [s for s, n in calls if n == "opt_d"]
    assert g_steps == sorted(list(range(8)) + [0, 2, 4, 6])  # a main step each iteration, path length every 2
    assert d_steps == sorted(list(range(8)) + [0, 4])  # R1 every 4


def test_a_nan_gradient_is_zeroed_and_the_step_still_updates(shard):
    run = _run(shard)
    poisoned = run.D.blocks[0].conv0.weight
    poisoned.register_hook(lambda g: torch.full_like(g, float("nan")))
    before = {n: p.detach().clone() for n, p in run.D.named_parameters()}
    train_step(run)
    assert torch.isfinite(poisoned).all() and torch.equal(poisoned.detach(), before["blocks.0.conv0.weight"])
    moved = [n for n, p in run.D.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "out.weight" in moved and len(moved) > len(before) // 2
    g = torch.nn.Parameter(torch.zeros(4))
    g.grad = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.5])
    clean_grads(torch.nn.ParameterList([g]))
    assert g.grad.tolist() == [0.0, 1e5, -1e5, 0.5]


def _dtypes(module, kind) -> dict[str, torch.dtype]:
    """Output dtype of each block (``kind``) in a forward pass."""
    seen = {}
    for name, block in module.named_modules():
        if type(block).__name__ == kind:
            block.register_forward_hook(lambda m, a, out, name=name: seen.__setitem__(
                name, (out[0] if isinstance(out, tuple) else out).dtype))
    return seen


@pytest.mark.parametrize("res, reduced_g, reduced_d", [
    (64, [8, 16, 32, 64], [64, 32, 16, 8]),  # 4 highest resolutions (8 px at least, as the reference)
    (256, [32, 64, 128, 256], [256, 128, 64, 32]),
    (32, [8, 16, 32], [32, 16, 8]),  # fewer than 4 above 4 px: the 4 px block stays float32
])
def test_reduced_precision_runs_only_in_the_highest_resolution_blocks(res, reduced_g, reduced_d):
    cfg = network_config("tiny", res, num_fp16_res=4, conv_clamp=256.0)
    torch.manual_seed(0)
    G, D = Generator(cfg).eval().requires_grad_(False), Discriminator(cfg).eval().requires_grad_(False)
    z = torch.randn(2, cfg.z_dim)
    ref_img = G(z, noise_mode="const")
    ref_logits = D(ref_img)
    names_g = set_reduced_precision(G, torch.bfloat16)
    names_d = set_reduced_precision(D, torch.bfloat16)
    g_res = {f"synthesis.blocks.{i}": 2 ** (i + 2) for i in range(cfg.log2 - 1)}
    d_res = {f"blocks.{i}": res // 2 ** i for i in range(cfg.log2 - 2)}
    assert [g_res[n] for n in names_g] == reduced_g and [d_res[n] for n in names_d] == reduced_d
    g_types, d_types = _dtypes(G, "SynthesisBlock"), _dtypes(D, "DiscriminatorBlock")
    img = G(z, noise_mode="const")
    logits = D(img)
    assert {g_res[n]: t for n, t in g_types.items()} == {
        r: torch.bfloat16 if r in reduced_g else torch.float32 for r in g_res.values()}
    assert {d_res[n]: t for n, t in d_types.items()} == {
        r: torch.bfloat16 if r in reduced_d else torch.float32 for r in d_res.values()}
    assert img.dtype == logits.dtype == torch.float32  # the image and the epilogue stay float32
    assert torch.allclose(img, ref_img, atol=0.05 * float(ref_img.abs().max()))  # bf16 round-off only
    assert torch.allclose(logits, ref_logits, atol=0.05 * float(ref_logits.abs().max()) + 0.05)
    set_reduced_precision(G, None)
    assert torch.equal(G(z, noise_mode="const"), ref_img)


def test_conv_clamp_clamps_every_clamped_layer():
    cfg = network_config("tiny", 16, conv_clamp=0.05)
    torch.manual_seed(0)
    G, D = Generator(cfg), Discriminator(cfg)
    peaks = {}
    for net in (G, D):
        for name, m in net.named_modules():
            if isinstance(m, (ModulatedConv, EqualConv2d)) and m.clamp is not None:
                m.register_forward_hook(lambda mod, a, out, key=(id(net), name): peaks.__setitem__(
                    key, float(out.detach().abs().max())))
    D(G(torch.randn(2, cfg.z_dim)) * 50)
    assert len(peaks) > 10 and max(peaks.values()) <= 0.05 + 1e-7
    assert max(peaks.values()) == pytest.approx(0.05)  # the clamp was reached, so it did something
    layer = EqualConv2d(3, 4, 3, clamp=None)
    assert float(layer(torch.full((1, 3, 8, 8), 1e4)).abs().max()) > 0.05  # no clamp without conv_clamp


def test_mixed_precision_run_routes_blocks_and_trains(shard):
    run = _run(shard, mixed_precision="bf16")
    assert run.net_cfg.conv_clamp == 256.0 and run.net_cfg.num_fp16_res == 4
    assert run.reduced_blocks == [f"G.synthesis.blocks.{i}" for i in (1, 2)] + [f"D.blocks.{i}" for i in (0, 1)]
    assert all(np.isfinite(train_step(run)))
    plain = _run(shard)  # the default, "auto": float32 everywhere on a CPU (float16 there on a GPU)
    assert plain.net_cfg.conv_clamp is None and plain.reduced_blocks == [] and plain.precision_used == "float32"
    assert _run(shard, mixed_precision="fp16").precision_used == "float32"  # fp16 needs a GPU: recorded fallback


def test_fp16_reference_settings_and_prenormalisation(shard):
    """On a GPU "auto" and "fp16" run the reduced blocks in float16; the reference's pre-normalisation of weights
    and styles before a demodulated float16 convolution leaves the function unchanged."""
    from skingen.generators.stylegan2.layers import fp16_prenormalise, modulated_conv2d
    from skingen.generators.stylegan2.train import StyleGAN2Config, reduced_dtype

    for name, want in (("auto", torch.float16), ("fp16", torch.float16), ("bf16", torch.bfloat16), ("no", None)):
        assert reduced_dtype(StyleGAN2Config(mixed_precision=name), cuda=True) is want
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 8, 6, 6, generator=gen), 30 * torch.randn(5, 8, 3, 3, generator=gen)
    styles = 50 * torch.randn(2, 8, generator=gen)
    w2, s2 = fp16_prenormalise(w, styles)
    assert float(w2.abs().amax(dim=(1, 2, 3)).max()) == pytest.approx(1 / 72 ** 0.5) and float(s2.abs().max()) == 1.0
    for fused in (True, False):
        a = modulated_conv2d(x, w, styles, demodulate=True, padding=1, fused=fused)
        b = modulated_conv2d(x, w2, s2, demodulate=True, padding=1, fused=fused)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_presets_carry_the_reference_training_settings():
    assert preset_settings("paper256", 256) == dict(batch_size=64, g_lr=0.0025, d_lr=0.0025, r1_gamma=1.0,
                                                    ema_kimg=20.0, ema_rampup=0.0, fmaps=0.5, mapping_layers=8,
                                                    mbstd_group=8)
    assert preset_settings("stylegan2", 256) == dict(batch_size=32, g_lr=0.002, d_lr=0.002, r1_gamma=10.0,
                                                     ema_kimg=10.0, ema_rampup=0.0, fmaps=1.0, mapping_layers=8,
                                                     mbstd_group=4)
    auto = {res: preset_settings("auto", res) for res in (32, 256, 512, 1024)}
    assert [a["batch_size"] for a in auto.values()] == [32, 16, 8, 4]
    assert [a["mbstd_group"] for a in auto.values()] == [4, 4, 4, 4]
    assert [a["fmaps"] for a in auto.values()] == [0.5, 0.5, 1.0, 1.0]
    assert [a["g_lr"] for a in auto.values()] == [0.0025, 0.0025, 0.0025, 0.002]
    assert [a["r1_gamma"] for a in auto.values()] == pytest.approx([0.0002 * r * r / b for r, b in
                                                                    zip((32, 256, 512, 1024), (32, 16, 8, 4))])
    assert [a["ema_kimg"] for a in auto.values()] == pytest.approx([10, 5, 2.5, 1.25])
    assert {a["ema_rampup"] for a in auto.values()} == {0.05} and {a["mapping_layers"] for a in auto.values()} == {2}
    net = network_config("auto", 256)
    assert (net.channel_base, net.channel_max, net.mapping_layers, net.mbstd_group) == (16384, 512, 2, 4)
    assert network_config("auto", 512).channel_base == 32768


def test_each_setting_overrides_its_preset_alone():
    cfg = StyleGAN2Config(preset="paper256", batch_size=32, mapping_layers=2).resolved()
    assert (cfg.batch_size, cfg.mapping_layers, cfg.r1_gamma, cfg.ema_kimg, cfg.mbstd_group, cfg.g_lr) == (
        32, 2, 1.0, 20.0, 8, 0.0025)
    assert StyleGAN2Config(preset="paper256").steps == round(5000 * 1000 / 64)
    default = StyleGAN2Config().resolved()
    assert default.preset == "auto" and default.batch_size == 16 and default.r1_gamma == pytest.approx(0.8192)


def test_the_paper_study_runs_the_original_configuration():
    """The original ran the reference's auto config at 256 px with --batch=32 (reference/paper.md)."""
    sg2 = load_study(REPO / "jobs" / "paper.toml").generate.stylegan2_ada
    cfg = sg2.resolved()
    assert cfg.preset == "auto" and cfg.resolution == 256 and cfg.batch_size == 32
    assert cfg.r1_gamma == pytest.approx(0.8192) and cfg.ema_kimg == 5 and cfg.ema_rampup == 0
    assert (cfg.mapping_layers, cfg.mbstd_group, cfg.fmaps, cfg.g_lr, cfg.d_lr) == (2, 4, 0.5, 0.0025, 0.0025)
    assert (cfg.ada_target, cfg.ada_kimg, cfg.mirror, cfg.kimg) == (0.7, 100, True, 240)


def test_summary_prints_the_training_settings(cli):
    r = cli("gen", "summary", "--generator", "stylegan2_ada", "--resolution", "256")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["preset"] == "auto" and out["training"]["r1_gamma"] == pytest.approx(0.8192)
    assert out["training"]["mapping_layers"] == 2 and out["training"]["mbstd_group"] == 4


def test_compiled_training_takes_the_same_steps(shard, monkeypatch):
    """compile = true (what the GPU benchmark times) traces G.mapping, G.synthesis and D through torch.compile;
    the steps must equal the eager ones. The aot_eager backend runs dynamo and AOT autograd without a C
    compiler (inductor, the default on GPUs, adds only code generation)."""
    import functools

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    losses = {}
    for compiled in (True, False):
        torch.manual_seed(0)
        run = _run(shard, compile=compiled)
        assert (run.d_fwd is not run.D) == compiled
        losses[compiled] = [train_step(run) for _ in range(2)]
        losses[compiled].append([p.detach().clone() for p in (*run.G.parameters(), *run.D.parameters())])
    assert np.allclose(losses[True][:2], losses[False][:2], rtol=1e-5)  # G, D, R1, path-length losses
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(losses[True][2], losses[False][2]))


def test_every_parameter_gets_a_gradient_in_every_phase(shard):
    """The reference's regularisers add ``output * 0`` so that parameters they do not depend on (toRGB biases
    in the path-length phase, D's output bias in R1) still get a zero gradient and so an Adam step (issue 23)."""
    from skingen.generators.stylegan2.loss import path_length_penalty, r1_penalty

    run = _run(shard)
    real, c = run.batch()
    pl = path_length_penalty(run.G, run.latents(2), run.gen_c(2), run.pl_mean, 0.0, run.gen)
    pl.backward()
    missing = [name for name, p in run.G.named_parameters() if p.grad is None]
    assert missing == [], missing
    penalty, _ = r1_penalty(run.D, run.augment, real, c, run.gen)
    penalty.backward()
    missing = [name for name, p in run.D.named_parameters() if p.grad is None]
    assert missing == [], missing


def test_the_path_length_penalty_differentiates_through_the_running_mean(shard):
    """a = lerp(pl_mean, mean(lengths), decay) enters the penalty undetached, as the reference computes it: the
    gradient equals that of sum((l - a)^2)/n with a a function of l, not of a constant a."""
    from skingen.generators.stylegan2.loss import path_length_penalty

    run = _run(shard)
    run.pl_mean.fill_(0.5)
    z, c = run.latents(3), run.gen_c(3)
    state = run.gen.get_state()
    ours = path_length_penalty(run.G, z, c, run.pl_mean, 0.0, run.gen, decay=0.3)
    weight = next(p for p in run.G.synthesis.parameters() if p.ndim == 4)
    (g_ours,) = torch.autograd.grad(ours, weight)
    after = float(run.pl_mean)
    run.gen.set_state(state)
    ws = run.G.mapping(z, c, skip_w_avg_update=True)
    img = run.G.synthesis(ws)
    noise = torch.randn(img.shape, generator=run.gen) / 16.0  # sqrt(16 * 16)
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    target = 0.5 + 0.3 * (lengths.mean() - 0.5)
    (g_manual,) = torch.autograd.grad((lengths - target).square().mean(), weight, retain_graph=True)
    (g_detached,) = torch.autograd.grad((lengths - target.detach()).square().mean(), weight, allow_unused=True)
    assert after == pytest.approx(float(target.detach()), rel=1e-6)
    assert torch.allclose(g_ours, g_manual, rtol=1e-4, atol=1e-7 * float(g_manual.abs().max()))
    assert not torch.allclose(g_ours, g_detached, rtol=1e-3, atol=0)  # the detached form is really different


def test_ada_p_stays_at_the_target_and_is_clamped_below_only():
    """The reference's rule: sign(r_t - target) is 0 at the target; p + adjust is clamped at 0, not at 1."""
    from skingen.generators.stylegan2.augment import AdaController, AugmentPipe

    pipe, ada = AugmentPipe(), AdaController(target=0.5, interval=1, speed_kimg=0.001)
    pipe.p.fill_(0.3)
    ada.accumulate(torch.tensor([1.0, 1.0, 1.0, -1.0]))  # r_t = 0.5 exactly
    assert ada.maybe_update(pipe, 1, 8) and ada.r_t == 0.5
    assert float(pipe.p) == pytest.approx(0.3)
    for step in range(2, 5):
        ada.accumulate(torch.ones(4))
        ada.maybe_update(pipe, step, 8)
    assert float(pipe.p) == pytest.approx(0.3 + 3 * 8 / 1.0)  # not clamped at 1
    for step in range(5, 20):
        ada.accumulate(-torch.ones(4))
        ada.maybe_update(pipe, step, 8)
    assert float(pipe.p) == 0.0


def test_resuming_applies_the_reference_resume_settings_unless_the_study_sets_them():
    """The reference's train.py, resuming: ADA speed 100 kimg and no EMA ramp-up (issue 23)."""
    fresh = StyleGAN2Config(resolution=16, preset="tiny")
    assert fresh.resume_defaults() == {} and fresh.resolved().ada_kimg == 500 and fresh.resolved().ema_rampup == 0.05
    resumed = StyleGAN2Config(resolution=16, preset="tiny", init_from="/x/snapshot")
    assert resumed.resume_defaults() == {"ada_kimg": 100.0, "ema_rampup": 0.0}
    assert (resumed.resolved().ada_kimg, resumed.resolved().ema_rampup) == (100.0, 0.0)
    own = StyleGAN2Config(resolution=16, preset="tiny", init_from="/x/snapshot", ada_kimg=300.0, ema_rampup=0.1)
    assert own.resume_defaults() == {} and (own.resolved().ada_kimg, own.resolved().ema_rampup) == (300.0, 0.1)


def test_a_resumed_cell_records_the_resume_settings_it_applied(shard, tmp_path):
    from skingen.generators.stylegan2.train import train_stylegan2

    first = train_stylegan2(shard, tmp_path / "a", StyleGAN2Config(**TINY, kimg=0.008))
    assert first["resume_defaults_applied"] == {}
    second = train_stylegan2(shard, tmp_path / "b", StyleGAN2Config(**TINY, kimg=0.008,
                                                                       init_from=str(tmp_path / "a" / "snapshot")))
    assert second["resume_defaults_applied"] == {"ada_kimg": 100.0, "ema_rampup": 0.0}
    assert second["config"]["ada_kimg"] == 100.0 and second["transfer"]


def test_real_images_come_as_the_reference_walks_them():
    """Issue 23: a seeded shuffle walked endlessly with swaps inside a window of half the data set (not draws
    with replacement); processes split one walk, so together they see what one process sees."""
    from skingen.generators.stylegan2.sequence import RealSequence

    one = RealSequence(20, seed=3).take(400)
    ranks = [RealSequence(20, seed=3, rank=r, world=2).take(200) for r in (0, 1)]
    assert np.array_equal(np.stack(ranks, 1).reshape(-1), one)
    counts = np.bincount(one, minlength=20)
    assert counts.min() >= 15 and counts.max() <= 25  # 20 passes: every image about 20 times
    first = RealSequence(20, seed=3).take(20)
    assert first[0] == np.random.RandomState(3).permutation(20)[0]  # the walk starts on the seeded shuffle
    assert len(set(first.tolist())) >= 15  # a pass shows most images once (draws with replacement: ~13 of 20)
    resumed = RealSequence(20, seed=3)
    resumed.take(37)
    state = resumed.state_dict()
    again = RealSequence(20, seed=99)
    again.load_state_dict(state)
    assert np.array_equal(again.take(50), RealSequence(20, seed=3).take(87)[37:])


def test_mirror_doubles_the_sequence_with_flipped_copies(shard):
    run = _run(shard, mirror=True)
    assert len(run.sequence.order) == 2 * len(run.data)
    run.sequence.order[:4] = [0, 16, 1, 17]  # image 0, image 0 flipped, image 1, image 1 flipped
    run.sequence.window = 0
    x, _ = run.batch()
    assert torch.equal(x[1], x[0].flip(2)) and torch.equal(x[3], x[2].flip(2))
