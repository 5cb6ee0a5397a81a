"""Classifiers: five timm models through one loop, arms build what they claim, resume equals continuous."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from builders import read_rows
from skingen.classify.arms import ArmConfig, build_arm
from skingen.classify.loop import Preempted, StopFlag, epoch_batches
from skingen.classify.models import MODELS, create_model
from skingen.classify.train import TrainConfig, train_classifier
from skingen.data.classes import CLASS_INDEX, CLASS_NAMES
from skingen.data.shards import ShardReader, ShardWriter
from skingen.errors import UserError
from skingen.metrics.predictions import read_predictions

TINY = dict(epochs=1, batch_size=16, gradcam_per_class=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_and_predicts_through_the_loop(name, phantom_shards, tmp_path):
    summary = train_classifier(phantom_shards, tmp_path, TrainConfig(model=name, **TINY), ArmConfig("real"))
    ids, _, y, prob = read_predictions(tmp_path / "predictions.csv")
    assert ids == ShardReader(phantom_shards / "test.h5").image_ids
    assert prob.shape == (len(ids), 5) and np.allclose(prob.sum(1), 1, atol=1e-4)
    assert (tmp_path / "gradcam.png").stat().st_size > 0 and (tmp_path / "curves.csv").is_file()
    assert summary["config"]["model"] == name and summary["arm"]["arm"] == "real"


def test_pretrained_weights_come_from_the_local_file(tmp_path):
    import safetensors.torch

    imagenet = create_model("resnet18", num_classes=1000)
    (tmp_path / "timm").mkdir()
    safetensors.torch.save_file(imagenet.state_dict(), tmp_path / "timm" / "resnet18.safetensors")
    model = create_model("resnet18", pretrained=True, weights_dir=tmp_path)
    assert torch.equal(model.conv1.weight, imagenet.conv1.weight)
    assert model.fc.out_features == 5
    with pytest.raises(UserError, match="efficientnet_b0.safetensors: ImageNet weights for efficientnet_b0 not found"):
        create_model("efficientnet_b0", pretrained=True, weights_dir=tmp_path)


def _synthetic_shard(path, n, size=32, label="MEL", synthetic=True):
    rng = np.random.default_rng(0)
    attrs = {"synthetic": True, "generator": "stand-in", "generator_cell": "test"} if synthetic else {}
    with ShardWriter(path, size, attrs=attrs) as w:
        for i in range(n):
            w.add(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), CLASS_INDEX[label], f"syn{i}", f"syn{i}", "synthetic")
    return path


def test_arms_build_exactly_what_they_claim(phantom_shards, tmp_path):
    real = ShardReader(phantom_shards / "train.h5")
    counts = np.bincount(real.labels, minlength=5)
    mel = counts[CLASS_INDEX["MEL"]]
    syn = _synthetic_shard(tmp_path / "syn.h5", 3 * mel)
    for name, dose, extra in (("real", 1.0, {}), ("gta", 1.5, {"gta": round(1.5 * mel)}),
                              ("oversample", 2.0, {"oversample": 2 * mel}), ("class_weighted", 1.0, {}),
                              ("synthetic", 1.0, {"synthetic": mel})):
        arm, _ = build_arm(real, ArmConfig(name, dose=dose, synthetic_shard=str(syn)))
        comp = arm.composition["per_class"]
        for k, cls in enumerate(CLASS_NAMES):
            assert comp[cls]["real"] == counts[k]
            expected = extra if cls == "MEL" else {}
            for kind in ("gta", "oversample", "synthetic"):
                assert comp[cls][kind] == expected.get(kind, 0), (name, cls, kind)
        assert np.bincount(arm.labels, minlength=5)[CLASS_INDEX["MEL"]] == mel + sum(extra.values())
        assert (arm.class_weights is not None) == (name == "class_weighted")
    only, _ = build_arm(real, ArmConfig("synthetic_only", dose=1.0, synthetic_shard=str(syn)))
    assert only.composition["per_class"]["MEL"] == {"real": 0, "gta": 0, "oversample": 0, "synthetic": mel}


def test_no_test_or_synthetic_image_reaches_val_or_test(phantom_shards, tmp_path):
    syn = _synthetic_shard(tmp_path / "syn.h5", 50)
    summary = train_classifier(phantom_shards, tmp_path / "cell", TrainConfig(**TINY),
                               ArmConfig("synthetic", dose=1.0, synthetic_shard=str(syn)))
    train_ids = set(ShardReader(phantom_shards / "train.h5").image_ids)
    test_ids = [r["image_id"] for r in read_rows(tmp_path / "cell" / "predictions.csv")]
    assert not train_ids & set(test_ids)
    assert not any(i.startswith("syn") for i in test_ids)
    assert test_ids == ShardReader(phantom_shards / "test.h5").image_ids
    assert summary["arm"]["synthetic_provenance"]["generator"] == "stand-in"


def test_synthetic_shards_are_checked(phantom_shards, tmp_path):
    real = ShardReader(phantom_shards / "train.h5")
    with pytest.raises(UserError, match="not a synthetic shard"):
        build_arm(real, ArmConfig("synthetic", synthetic_shard=str(_synthetic_shard(tmp_path / "a.h5", 50, synthetic=False))))
    with pytest.raises(UserError, match="classes other than MEL"):
        build_arm(real, ArmConfig("synthetic", synthetic_shard=str(_synthetic_shard(tmp_path / "b.h5", 50, label="NV"))))
    with pytest.raises(UserError, match="the dose needs"):
        build_arm(real, ArmConfig("synthetic", dose=5.0, synthetic_shard=str(_synthetic_shard(tmp_path / "c.h5", 2))))
    with pytest.raises(UserError, match="image size"):
        build_arm(real, ArmConfig("synthetic", synthetic_shard=str(_synthetic_shard(tmp_path / "d.h5", 50, size=16))))


def test_resume_after_preemption_equals_continuous_run(phantom_shards, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16, gradcam_per_class=0, seed=3)
    arm = ArmConfig("gta", dose=1.0)
    train_classifier(phantom_shards, tmp_path / "a", cfg, arm)
    with pytest.raises(Preempted):
        train_classifier(phantom_shards, tmp_path / "b", cfg, arm, stop_after_steps=3)  # mid-epoch 0
    assert not (tmp_path / "b" / "predictions.csv").exists()
    train_classifier(phantom_shards, tmp_path / "b", cfg, arm)
    a = torch.load(tmp_path / "a" / "best_model.pt")
    b = torch.load(tmp_path / "b" / "best_model.pt")
    for key in a:  # tolerance: bit-identical CPU arithmetic is expected; allow float noise
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    def curves(run):
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in read_rows(tmp_path / run / "curves.csv")]

    for row_a, row_b in zip(curves("a"), curves("b"), strict=True):  # same tolerance as the weights
        assert row_a.keys() == row_b.keys() and row_a["epoch"] == row_b["epoch"] and row_a["lr"] == row_b["lr"]
        assert row_a == pytest.approx(row_b, abs=1e-5), row_a["epoch"]


def test_stop_flag_catches_usr2_and_restores_handler():
    before = signal.getsignal(signal.SIGUSR2)
    with StopFlag() as stop:
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.requested
    assert signal.getsignal(signal.SIGUSR2) == before


def test_epoch_batches_are_seeded_and_sharded():
    a = epoch_batches(10, 3, seed=1, epoch=0)
    assert [len(b) for b in a] == [3, 3, 3, 1]
    assert np.array_equal(np.concatenate(a), np.concatenate(epoch_batches(10, 3, seed=1, epoch=0)))
    assert not np.array_equal(np.concatenate(a), np.concatenate(epoch_batches(10, 3, seed=1, epoch=1)))
    r0, r1 = epoch_batches(10, 4, 1, 0, rank=0, world=2), epoch_batches(10, 4, 1, 0, rank=1, world=2)
    assert not set(np.concatenate(r0)) & set(np.concatenate(r1))
    one = epoch_batches(10, 4, 1, 0)  # batch k of 2 processes together is batch k of 1 process
    assert [sorted([*x, *y]) for x, y in zip(r0, r1)] == [sorted(b) for b in one] and len(r0) == len(r1) == 3
    three = [epoch_batches(10, 3, 1, 0, rank=r, world=2) for r in (0, 1)]  # the last batch, 1 image: dropped
    assert len(three[0]) == len(three[1]) == 3 and sorted(np.concatenate(three[0] + three[1])) == sorted(
        np.concatenate(a[:3]))
    assert epoch_batches(10, 3, 1, 0, start=2)[0].tolist() == a[2].tolist()
    with pytest.raises(UserError, match="batch_size = 2 is smaller than the 3 processes"):
        epoch_batches(10, 2, 1, 0, rank=2, world=3)  # a process would get empty batches and hang the others


def test_classify_cli(cli, phantom_shards, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\nepochs = 1\nbatch_size = 16\ngradcam_per_class = 0\n[arm]\nname = "oversample"\n')
    res = cli("classify", "train", phantom_shards, "--out", tmp_path / "o", "--config", cfg, "--seed", "4")
    assert res.code == 0, res.err
    res = cli("classify", "metrics", tmp_path / "o" / "predictions.csv", "--baseline", tmp_path / "o" / "predictions.csv",
              "--n-boot", "100")
    assert res.code == 0 and (tmp_path / "o" / "metrics.json").is_file()
    with pytest.raises(SystemExit) as refused:  # the same minimum as 'skingen report --n-boot'
        cli("classify", "metrics", tmp_path / "o" / "predictions.csv", "--n-boot", "20")
    assert refused.value.code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepoch = 3\n")
    res = cli("classify", "train", phantom_shards, "--out", tmp_path / "o2", "--config", bad)
    assert res.code == 2 and "unknown key(s) epoch" in res.err


def test_gradcam_uses_a_finer_stage_when_the_last_map_would_be_under_4x4():
    import timm

    from skingen.classify.models import MODELS, find_layer

    spec = MODELS["resnet18"]
    assert spec.cam_layer_for(224) == "layer4.-1" and spec.cam_layer_for(64) == "layer3.-1"
    model = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    seen = {}
    layer = find_layer(model, spec.cam_layer_for(64))
    layer.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))  # returns None: output kept
    model(torch.zeros(1, 3, 64, 64))
    assert seen["shape"][-2:] == (4, 4)  # a map that can follow a lesion, not 2x2 or 1x1


def test_cells_with_one_seed_share_initial_weights_and_data_order():
    """Issue 24 item 1: the report resamples seed labels jointly because a seed fixes the same start everywhere."""
    from skingen.classify.train import initial_model

    cfg = TrainConfig(**{**TINY, "seed": 3})
    first = initial_model(cfg, 5, 32).state_dict()
    torch.randn(1000)  # whatever an arm or pipeline drew before
    again = initial_model(cfg, 5, 32).state_dict()
    other = initial_model(TrainConfig(**{**TINY, "seed": 4}), 5, 32).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())
