"""Our DDPM trainer against diffusers' unconditional-training recipe, step by step (issue 23 item 4).

tests/data/ddpm_replay.npz was made by benchmarks/make_ddpm_replay_fixture.py with diffusers imported from a
checkout (DIFFUSERS_PATH): the example's optimizer, lr schedule, loss, clipping and EMA on our trainer's draws,
6 steps in fp32 on one process. Here the same draws go through ``train_ddpm``: the learning rate and loss of
every step, and every parameter's update and EMA update after the run, must equal the reference's (updates
compared by their norm and 8 seeded random projections, to 1e-4 of the update's norm). The fixture also records
each tensor's gradient relative to the largest; the tensors whose gradient is zero in exact arithmetic move by
amplified rounding in both implementations and are left out (the test names which)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from builders import projections, read_rows
from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardWriter
from skingen.generators.ddpm import DDPMConfig, _draws, train_ddpm
from skingen.generators.ddpm_data import TrainImages
from skingen.generators.ddpm_model import build_unet

FIXTURE = np.load(Path(__file__).parent / "data" / "ddpm_replay.npz")
VARIANTS = ("", "accum_")  # plain; 2 micro-batches per optimiser step


@pytest.fixture(scope="module", params=VARIANTS, ids=["plain", "grad_accum_2"])
def replay(request, tmp_path_factory):
    prefix = request.param
    tmp = tmp_path_factory.mktemp("replay")
    with ShardWriter(tmp / "train.h5", 16, attrs={"split": "train"}) as w:
        for i, img in enumerate(FIXTURE["images"]):
            w.add(img, CLASS_INDEX["MEL"], f"img{i}", f"les{i}", "x")
    cfg = DDPMConfig(**ast.literal_eval(str(FIXTURE[f"{prefix}settings"])))
    train_ddpm(tmp / "train.h5", tmp / "cell", cfg)
    return tmp, cfg, lambda key: FIXTURE[prefix + key]


def test_our_trainer_draws_the_recorded_batches_noise_and_timesteps(replay):
    tmp, cfg, ref = replay
    data = TrainImages(tmp / "train.h5", cfg.classes, cfg.resolution)
    draws = [_draws(data, cfg, micro, 0, 1) for micro in range(cfg.max_steps * cfg.grad_accum)]
    assert [len(d[3]) for d in draws] == ref("sizes").tolist()
    assert np.array_equal(torch.cat([d[3] for d in draws]).numpy(), ref("t"))
    assert np.array_equal(torch.cat([d[2] for d in draws]).numpy(), ref("eps"))
    assert np.array_equal(torch.cat([d[0] for d in draws]).numpy(), ref("x"))


def test_learning_rate_and_loss_of_every_step_equal_the_reference(replay):
    tmp, cfg, ref = replay
    curves = read_rows(tmp / "cell" / "curves.csv")
    assert [int(r["step"]) for r in curves] == list(range(1, cfg.max_steps + 1))
    assert np.allclose([float(r["lr"]) for r in curves], ref("lr"), rtol=1e-9, atol=1e-12)
    assert np.allclose([float(r["loss"]) for r in curves], ref("loss"), rtol=2e-5, atol=1e-6)  # 6 decimals kept


def _updates(after: dict, cfg: DDPMConfig) -> dict:
    torch.manual_seed(cfg.seed)  # the trainer's init: set_seed(seed), then build_unet
    from accelerate.utils import set_seed

    set_seed(cfg.seed)
    init = build_unet(cfg.resolution, cfg.channels, cfg.layers_per_block).state_dict()
    return {k: after[k].double().numpy() - init[k].double().numpy() for k in init if init[k].is_floating_point()}


@pytest.mark.parametrize("kind", ["update", "ema_update"])
def test_parameters_and_ema_after_the_run_equal_the_reference(replay, kind):
    from safetensors.torch import load_file

    tmp, cfg, ref = replay
    path = (tmp / "cell" / "state" / "model.safetensors" if kind == "update"
            else tmp / "cell" / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors")
    ours = _updates(load_file(str(path)), cfg)
    assert len(ours) == sum(k.startswith(f"{kind}_norm/") for k in FIXTURE.files) > 50
    rounding_only = {n for n in ours if float(ref(f"grad_rel/{n}")) < 1e-6}
    # gradients that are zero in exact arithmetic: with 32 channels in 32 groups, GroupNorm removes every
    # per-channel constant (conv biases, the time embedding's projection) and softmax removes the key bias;
    # Adam turns their ~1e-9 rounding into full-size steps in any implementation
    assert 10 <= len(rounding_only) <= 20 and all(".to_k.bias" in n or "time_emb_proj" in n or n.endswith(".bias")
                                                  for n in rounding_only), sorted(rounding_only)
    worst = 0.0
    for name, delta in ours.items():
        if name in rounding_only:
            continue
        ref_norm = float(ref(f"{kind}_norm/{name}"))
        if ref_norm == 0:
            assert np.linalg.norm(delta) == 0, name
            continue
        err = max(abs(np.linalg.norm(delta) - ref_norm),
                  np.abs(projections(name, delta) - ref(f"{kind}_proj/{name}")).max()) / ref_norm
        worst = max(worst, err)
    print(f"{kind}: worst error {worst:.2e} of the update's norm")
    assert worst <= 1e-4, worst
