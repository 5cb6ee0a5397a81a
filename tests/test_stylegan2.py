"""StyleGAN2-ADA: architecture, equalised lr, demodulation, ADA, resume, learning, conditioning, sampling."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from builders import REPO
from skingen.classify.loop import Preempted
from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardReader, ShardWriter
from skingen.errors import UserError
from skingen.generators.stylegan2.augment import COLOUR, GEOMETRIC, AdaController, AugmentPipe
from skingen.generators.stylegan2.layers import EqualLinear, modulated_conv2d
from skingen.generators.stylegan2.networks import Discriminator, Generator, network_config
from skingen.generators.stylegan2.sample import sample_to_shard
from skingen.generators.stylegan2.snapshot import generate, load_generator
from skingen.generators.stylegan2.train import StyleGAN2Config, train_stylegan2

RED, BLUE = (220, 40, 40), (40, 40, 220)
TINY = dict(resolution=16, preset="tiny", batch_size=8, grid_images=0, log_every=5, r1_interval=4, pl_interval=2)


@pytest.fixture(scope="module")
def two_colour_shard(tmp_path_factory):
    """16 px train shard: flat red MEL and flat blue NV images (with a little noise)."""
    path = tmp_path_factory.mktemp("sg2") / "train.h5"
    rng = np.random.default_rng(0)
    with ShardWriter(path, 16, attrs={"split": "train"}) as w:
        for i in range(64):
            label, colour = ("MEL", RED) if i % 2 else ("NV", BLUE)
            img = np.clip(np.array(colour) + rng.integers(-10, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            w.add(img, CLASS_INDEX[label], f"img{i}", f"les{i}", "x")
    return path


@pytest.mark.parametrize("res", [16, 32, 64, 128, 256])
def test_output_shapes(res):
    cfg = network_config("tiny", res)
    G, D = Generator(cfg), Discriminator(cfg)
    img = G(torch.randn(2, cfg.z_dim))
    assert img.shape == (2, 3, res, res) and D(img).shape == (2, 1)
    assert G.mapping(torch.randn(2, cfg.z_dim)).shape == (2, 2 * int(np.log2(res)) - 2, cfg.w_dim)


def test_paper256_matches_config_f_architecture(cli):
    r = cli("gen", "summary", "--generator", "stylegan2_ada", "--resolution", "256", "--preset", "paper256")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["num_ws"] == 14 and s["channels"]["4"] == 512 and s["channels"]["256"] == 64  # 16384 / 256
    assert s["G_mapping"] == 8 * (512 * 512 + 512)  # 8 FC layers, 512 -> 512
    assert 24e6 < s["G_total"] < 25.5e6 and 23.5e6 < s["D"] < 24.5e6
    layers = {row["layer"] for row in s["layers"]}
    assert "G.synthesis.blocks.0.const" not in layers and any(".torgb." in name for name in layers)
    full = json.loads(cli("gen", "summary", "--generator", "stylegan2_ada", "--resolution", "256", "--preset",
                          "stylegan2").out)
    assert full["channels"]["256"] == 128 and full["G_total"] > s["G_total"]
    with pytest.raises(UserError, match="power of two"):
        network_config("tiny", 48)


def test_equalised_lr_weights_are_unit_normal_at_init():
    G = Generator(network_config("small", 32))
    conv = G.synthesis.blocks[2].conv1.weight.detach()
    assert abs(float(conv.std()) - 1) < 0.05 and abs(float(conv.mean())) < 0.05
    fc = EqualLinear(256, 256, lr_mul=0.01)
    assert abs(float(fc.weight.std()) * 0.01 - 1) < 0.05  # stored N(0, 1) / lr_mul
    assert abs(float((fc.weight * fc.scale).std()) - 1 / 16) < 0.005  # effective: N(0, 1/fan_in) at run time


def test_demodulation_keeps_activations_at_unit_scale():
    torch.manual_seed(0)
    x = torch.randn(4, 64, 16, 16)
    weight = torch.randn(64, 64, 3, 3)
    styles = torch.exp(torch.randn(4, 64))  # strongly varying per-channel styles
    demod = modulated_conv2d(x, weight, styles, demodulate=True)
    raw = modulated_conv2d(x, weight, styles, demodulate=False)
    assert 0.8 < float(demod[:, :, 1:-1, 1:-1].std()) < 1.2
    assert float(raw.std()) > 10  # without demodulation the scale follows the styles


@pytest.mark.parametrize("up,demodulate,kernel", [(False, True, 3), (True, True, 3), (False, False, 1)])
def test_unfused_modulated_conv_is_the_fused_one(up, demodulate, kernel):
    """Training's path (styles and demodulation around one shared conv) = the grouped conv, values and gradients."""
    torch.manual_seed(0)
    x = torch.randn(3, 16, 8, 8)
    weight, styles = torch.randn(24, 16, kernel, kernel), torch.exp(torch.randn(3, 16))
    outs, grads = [], []
    for fused in (True, False):
        leaves = [t.clone().requires_grad_(True) for t in (x, weight, styles)]
        out = modulated_conv2d(*leaves, demodulate=demodulate, padding=kernel // 2, up=up, fused=fused)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([t.grad for t in leaves])
    assert outs[0].shape == outs[1].shape == (3, 24, 16 if up else 8, 16 if up else 8)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-4 * float(outs[0].abs().max()))
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


def test_augment_is_identity_at_p0_differentiable_and_unbiased():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 32, 32) * 2 - 1
    pipe = AugmentPipe()
    assert torch.equal(pipe(x, gen), x)
    pipe.p.fill_(1.0)
    src = x.clone().requires_grad_(True)
    out = pipe(src, gen)
    out.square().sum().backward()
    assert out.shape == x.shape and torch.isfinite(src.grad).all() and float(src.grad.abs().sum()) > 0
    geo = AugmentPipe(("xflip", "rotate90", "xint"))
    geo.p.fill_(1.0)
    assert float((geo(x, gen).mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs().max()) < 0.03
    colour = AugmentPipe(("brightness", "hue", "lumaflip"))
    colour.p.fill_(1.0)
    means = torch.stack([colour(x, gen).mean(dim=(1, 2, 3)) for _ in range(200)])  # (draws, images)
    assert float((means.mean(0) - x.mean(dim=(1, 2, 3))).abs().mean()) < 0.03  # kept in expectation
    assert float(means.std(0).mean()) > 0.1  # ... while each draw does change the image
    assert set(AugmentPipe().transforms) == set(GEOMETRIC + COLOUR)


def test_ada_p_rises_when_d_overfits_and_falls_otherwise():
    pipe, ada = AugmentPipe(), AdaController(target=0.6, interval=4, speed_kimg=0.1)
    for step in range(1, 9):
        ada.accumulate(torch.full((8, 1), 3.0))  # D sure of every real: overfitting
        ada.maybe_update(pipe, step, 8)
    high = float(pipe.p)
    assert high > 0.5 and ada.r_t == 1.0
    for step in range(9, 17):
        ada.accumulate(torch.full((8, 1), -3.0))
        ada.maybe_update(pipe, step, 8)
    assert float(pipe.p) < high and ada.r_t == -1.0


def test_resume_equals_continuous(two_colour_shard, tmp_path):
    cfg = StyleGAN2Config(**TINY, kimg=0.096, ada_kimg=0.5, seed=3)  # 12 steps; ADA moves p meanwhile
    caller_rng = torch.get_rng_state()
    full = train_stylegan2(two_colour_shard, tmp_path / "full", cfg)
    assert torch.equal(torch.get_rng_state(), caller_rng)  # the run's seeding does not leak into the caller
    with pytest.raises(Preempted):
        train_stylegan2(two_colour_shard, tmp_path / "cut", cfg, stop_after_steps=5)
    resumed = train_stylegan2(two_colour_shard, tmp_path / "cut", cfg)
    assert resumed["steps"] == full["steps"] == 12 and full["ada_p"] > 0
    a, _ = load_generator(tmp_path / "full" / "snapshot")
    b, _ = load_generator(tmp_path / "cut" / "snapshot")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name  # tolerance: float32 round-off only
    assert resumed["ada_p"] == pytest.approx(full["ada_p"])


def _mean_colour(G, label=None, n=16):
    return generate(G, range(n), psi=1.0, class_index=label).reshape(-1, 3).mean(0)


def test_training_moves_samples_toward_the_data_and_follows_the_label(two_colour_shard, tmp_path):
    cfg = StyleGAN2Config(**{**TINY, "log_every": 20, "grid_images": 4}, kimg=1.6, classes=("MEL", "NV"), conditional=True,
                          g_lr=0.005, d_lr=0.005, pl_weight=0.0, augment="none", ema_kimg=0.05)
    torch.manual_seed(0)  # the baseline: a seeded untrained G, whatever ran before (margins ~100 and ~270)
    G0 = Generator(network_config("tiny", 16, 5))
    summary = train_stylegan2(two_colour_shard, tmp_path / "c", cfg)
    G, meta = load_generator(tmp_path / "c" / "snapshot")
    mel, nv = _mean_colour(G, CLASS_INDEX["MEL"]), _mean_colour(G, CLASS_INDEX["NV"])
    before = _mean_colour(G0, CLASS_INDEX["MEL"])
    assert np.abs(mel - RED).mean() < np.abs(before - RED).mean()  # samples moved toward the data
    assert mel[0] - mel[2] > nv[0] - nv[2] + 40  # MEL samples redder than NV samples: the label is followed
    assert summary["train_images"] == 64 and meta["step"] == 200
    assert (tmp_path / "c" / "samples" / "step_0000200.png").is_file()  # conditional grid: first trained class
    with pytest.raises(UserError, match="class-conditional"):
        generate(G, range(2))


def test_sampling_into_a_shard_with_provenance(two_colour_shard, tmp_path, cli):
    r = cli("gen", "train", two_colour_shard.parent, "--generator", "stylegan2_ada", "--out", tmp_path / "g",
            "--kimg", "0.016", "--resolution", "16", "--preset", "tiny")
    assert r.code == 0, r.err
    assert (tmp_path / "g" / "snapshot" / "network.safetensors").is_file()
    shard = sample_to_shard(tmp_path / "g", tmp_path / "s.h5", 10, "MEL", 32, psi=0.8, seed=1)
    reader = ShardReader(shard)
    assert len(reader) == 10 and reader.attrs["synthetic"] and reader.attrs["generator"] == "stylegan2_ada"
    assert reader.attrs["truncation_psi"] == 0.8 and reader.attrs["synthetic_class"] == "MEL"
    assert reader.image(0).shape == (32, 32, 3) and (reader.labels == CLASS_INDEX["MEL"]).all()
    G, _ = load_generator(tmp_path / "g" / "snapshot")
    collapsed = generate(G, range(4), psi=0.0)  # psi 0: every sample is the average w
    assert np.array_equal(collapsed[0], collapsed[3])
    with pytest.raises(UserError, match="trained on MEL, not SCC"):
        sample_to_shard(tmp_path / "g", tmp_path / "x.h5", 2, "SCC", 16)


def test_a_conditional_generator_samples_with_the_classes_it_was_trained_with(tmp_path):
    """Its class input follows the training shard's label order; sampling labels by it, and refuses another."""
    path = tmp_path / "train.h5"
    with ShardWriter(path, 16, attrs={"split": "train", "class_names": ["MEL", "NV"]}) as w:
        for i in range(16):
            w.add(np.full((16, 16, 3), 200 if i % 2 else 40, np.uint8), i % 2, f"img{i}", f"les{i}", "x")
    train_stylegan2(path, tmp_path / "g", StyleGAN2Config(**{**TINY, "classes": ("NV",)}, kimg=0.016, conditional=True))
    shard = ShardReader(sample_to_shard(tmp_path / "g", tmp_path / "s.h5", 4, "NV", 16))  # as 'skingen gen sample'
    assert list(shard.attrs["class_names"]) == ["MEL", "NV"] and (shard.labels == 1).all()
    with pytest.raises(UserError, match="trained with classes MEL, NV, asked to label by NV, BCC"):
        sample_to_shard(tmp_path / "g", tmp_path / "x.h5", 2, "NV", 16,
                        extra_attrs={"class_names": ["NV", "BCC", "BKL", "MEL", "SCC"]})


def test_transfer_from_a_snapshot_loads_its_weights(two_colour_shard, tmp_path):
    base = StyleGAN2Config(**TINY, kimg=0.016)
    train_stylegan2(two_colour_shard, tmp_path / "a", base)
    frozen = StyleGAN2Config(**TINY, kimg=0.008, g_lr=0.0, d_lr=0.0, init_from=str(tmp_path / "a" / "snapshot"))
    train_stylegan2(two_colour_shard, tmp_path / "b", frozen)
    a, _ = load_generator(tmp_path / "a" / "snapshot")
    b, _ = load_generator(tmp_path / "b" / "snapshot")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))  # lr 0: still the source's weights
    transfer = json.loads((tmp_path / "b" / "train_summary.json").read_text())["transfer"]  # the cell's record
    assert len(transfer["G"]["copied"]) == len(a.state_dict()) and transfer["G"]["skipped"] == [] and transfer["D"]
    assert (tmp_path / "a" / "snapshot" / "discriminator.safetensors").is_file()
    wrong = StyleGAN2Config(**{**TINY, "preset": "small"}, kimg=0.008, init_from=str(tmp_path / "a" / "snapshot"))
    with pytest.raises(UserError, match="does not fit this network"):
        train_stylegan2(two_colour_shard, tmp_path / "c", wrong)


def test_gradient_averaging_maps_the_flat_bucket_back_to_each_parameter():
    from skingen.generators.stylegan2.steps import average_grads as _average_grads

    class TwoProcesses:  # stands in for Accelerate: its reduce returns a recognisable function of its input
        num_processes = 2

        def reduce(self, t, reduction):
            assert reduction == "mean" and t.ndim == 1
            return t * 3 + 1

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Conv2d(2, 5, 3), torch.nn.Linear(4, 2, bias=False))
    for p in list(net.parameters())[:-1]:
        p.grad = torch.randn_like(p)
    before = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    _average_grads(TwoProcesses(), net)
    for p, g in zip(net.parameters(), before):
        assert (p.grad is None) if g is None else torch.equal(p.grad, g * 3 + 1)


def test_two_processes_hold_identical_parameters(two_colour_shard, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[stylegan2_ada]\nresolution = 16\npreset = "tiny"\nbatch_size = 8\ngrid_images = 0\n'
                   'kimg = 0.024\nr1_interval = 2\npl_interval = 2\n')
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "skingen.cli", "gen", "train", str(two_colour_shard.parent), "--generator",
                           "stylegan2_ada", "--out", str(tmp_path / "c"), "--config", str(cfg)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = sorted((tmp_path / "c" / "ranks").glob("rank*.sha256"))
    assert len(ranks) == 2 and ranks[0].read_text() == ranks[1].read_text()
    summary = json.loads((tmp_path / "c" / "train_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["effective_batch"] == 8
    assert "seed * 1000 + process index (0..1)" in summary["random_streams"]  # issue 23 item 3: recorded


def test_the_global_batch_splits_evenly_across_processes():
    """As the reference (batch % GPUs == 0): kimg, the EMA half-life and ADA count the images trained on."""
    from skingen.errors import UserError
    from skingen.generators.stylegan2.train import per_process_batch

    assert per_process_batch(32, 8) == 4 and per_process_batch(4, 1) == 4
    for batch, n in ((30, 4), (4, 4)):
        with pytest.raises(UserError, match=f"batch_size = {batch} does not split"):
            per_process_batch(batch, n)
