"""``sd_lora``: prompts, the latent cache, resume, class scopes, bad input, the CLI, and a three-generator study."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from skingen.classify.loop import Preempted
from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardReader, ShardWriter
from skingen.errors import UserError
from skingen.generators.sd_lora import latents
from skingen.generators.sd_lora.base import build_standin
from skingen.generators.sd_lora.config import SDLoRAConfig, class_prompt
from skingen.generators.sd_lora.sample import sample_to_shard
from skingen.generators.sd_lora.snapshot import lora_state
from skingen.generators.sd_lora.train import Trainer, train_sd_lora


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return str(build_standin(tmp_path_factory.mktemp("sdbase") / "base"))


@pytest.fixture
def shard(tmp_path):
    """16 px MEL images (reddish) and a few NV (greenish), packed at 16 px, in a fresh folder per test."""
    rng = np.random.default_rng(0)
    path = tmp_path / "shards" / "train.h5"
    path.parent.mkdir()
    with ShardWriter(path, 16, attrs={"split": "train"}) as w:
        for i in range(12):
            label = "NV" if i % 4 == 3 else "MEL"
            colour = np.array([60, 180, 60] if label == "NV" else [190, 60, 50])
            img = np.clip(colour + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            w.add(img, CLASS_INDEX[label], f"img{i}", f"les{i}", "x")
    return path


def tiny(base: str, **kw) -> SDLoRAConfig:
    return SDLoRAConfig(**{**dict(base=base, resolution=32, max_steps=4, batch_size=4, lr=1e-3, warmup_steps=0,
                                  checkpoint_every=0, grid_images=0, log_every=1, sampling_steps=3), **kw})


def test_prompts_name_the_class_readably():
    assert class_prompt("a dermoscopic image of {name}", "MEL") == "a dermoscopic image of melanoma"
    assert class_prompt("a dermoscopic image of {name}", "BCC") == "a dermoscopic image of basal cell carcinoma"
    assert class_prompt("{name}, dermoscopy ({code})", "XYZ") == "xyz, dermoscopy (XYZ)"


def test_trains_on_target_class_only_and_caches_latents_once(base, shard, tmp_path, monkeypatch):
    summary = train_sd_lora(shard, tmp_path / "a", tiny(base))
    assert summary["train_images"] == 9 and summary["steps"] == 4 and summary["pretrained_from"] == "base"
    cache = summary["latent_cache"]
    assert cache and cache.startswith(str(shard.parent / "latents"))  # beside the image shards
    enc = latents._read(Path(cache))
    assert enc.mean.shape == (9, 2, 4, 16, 16) and enc.prompts == ["a dermoscopic image of melanoma"]
    monkeypatch.setattr(latents, "encode_all", lambda *a, **k: pytest.fail("the cache was not reused"))
    again = train_sd_lora(shard, tmp_path / "b", tiny(base))
    assert again["latent_cache"] == cache
    a = json.loads((tmp_path / "a" / "snapshot" / "snapshot.json").read_text())
    assert a["rank"] == 4 and a["alpha"] == 4.0 and a["prediction_type"] == "epsilon"
    from safetensors.numpy import load_file

    ours_a = load_file(str(tmp_path / "a" / "snapshot" / "pytorch_lora_weights.safetensors"))
    ours_b = load_file(str(tmp_path / "b" / "snapshot" / "pytorch_lora_weights.safetensors"))
    assert all(np.array_equal(ours_a[k], ours_b[k]) for k in ours_a)  # seeded: the same run twice


def test_cached_latents_train_as_encoding_every_step(base, shard, tmp_path):
    states = []
    for cache in (True, False):
        t = Trainer(shard, tmp_path / str(cache), tiny(base, cache_latents=cache))
        for micro in range(3):
            t.step(micro)
        states.append(lora_state(t.acc.unwrap_model(t.unet)))
    worst = max(float((states[0][k] - states[1][k]).abs().max()) for k in states[0])
    assert worst < 1e-5, worst  # the same posteriors and embeddings, encoded in other batch shapes


def test_resume_after_stop_equals_continuous(base, shard, tmp_path):
    cfg = tiny(base, max_steps=5, checkpoint_every=2, log_every=2)  # the stop falls inside a log window
    train_sd_lora(shard, tmp_path / "full", cfg)
    with pytest.raises(Preempted):
        train_sd_lora(shard, tmp_path / "cut", cfg, stop_after_steps=3)
    train_sd_lora(shard, tmp_path / "cut", cfg)
    full, cut = (json.loads((tmp_path / d / "progress.json").read_text()) for d in ("full", "cut"))
    assert full["step"] == cut["step"] == 5 and full["curves"] == cut["curves"]
    a = torch.load(tmp_path / "full" / "state" / "training_state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "state" / "training_state.pt", weights_only=True)
    assert all(torch.equal(a["lora"][k], b["lora"][k]) for k in a["lora"])
    with pytest.raises(UserError, match="saved by a run with") as exc:  # other settings never resume this state
        train_sd_lora(shard, tmp_path / "cut", tiny(base, max_steps=6, rank=8))
    assert "\n" not in str(exc.value)


def test_noise_offset_and_min_snr_change_training(base, shard, tmp_path):
    plain = train_sd_lora(shard, tmp_path / "p", tiny(base, max_steps=2))["final_loss"]
    offset = train_sd_lora(shard, tmp_path / "o", tiny(base, max_steps=2, noise_offset=0.5))["final_loss"]
    snr = train_sd_lora(shard, tmp_path / "s", tiny(base, max_steps=2, snr_gamma=5.0))["final_loss"]
    assert len({plain, offset, snr}) == 3


def test_all_classes_lora_samples_any_class_target_lora_only_its_own(base, shard, tmp_path):
    train_sd_lora(shard, tmp_path / "t", tiny(base, max_steps=1))
    with pytest.raises(UserError, match="learnt MEL only"):
        sample_to_shard(tmp_path / "t", tmp_path / "nv.h5", 2, "NV", 16, options={"sd_steps": 2})
    summary = train_sd_lora(shard, tmp_path / "all", tiny(base, max_steps=1, classes="all"))
    assert summary["train_images"] == 12
    enc = latents._read(Path(summary["latent_cache"]))
    assert enc.prompts == ["a dermoscopic image of melanocytic nevus", "a dermoscopic image of melanoma"]
    out = sample_to_shard(tmp_path / "all", tmp_path / "nv.h5", 3, "NV", 16, seed=2, batch=2,
                          options={"sd_steps": 2, "sd_sampler": "ddim", "guidance_scale": 3.0})
    r = ShardReader(out)
    assert len(r) == 3 and r.image(0).shape == (16, 16, 3) and (r.labels == CLASS_INDEX["NV"]).all()
    assert r.attrs["prompt"] == "a dermoscopic image of melanocytic nevus" and r.attrs["sampler"] == "ddim"
    assert r.attrs["generated_resolution"] == 32 and r.attrs["guidance_scale"] == 3.0


def test_bad_base_is_a_one_line_error(shard, tmp_path):
    with pytest.raises(UserError) as exc:
        train_sd_lora(shard, tmp_path / "x", tiny(str(tmp_path / "nowhere")))
    assert "skingen assets fetch --only sd15" in str(exc.value) and "\n" not in str(exc.value)


def test_cli_trains_and_samples(base, shard, tmp_path, cli):
    r = cli("gen", "train", shard.parent, "--generator", "sd_lora", "--out", tmp_path / "c", "--base", base,
            "--max-steps", "2", "--resolution", "32")
    assert r.code == 0 and "sd_lora: 2 steps on 9 train images" in r.out
    r = cli("gen", "sample", tmp_path / "c", "--generator", "sd_lora", "--out", tmp_path / "s.h5", "--n", "2",
            "--image-size", "16", "--steps", "2")
    assert r.code == 0 and ShardReader(tmp_path / "s.h5").attrs["sampler"] == "dpmsolver++"
    r = cli("gen", "summary", "--generator", "sd_lora", "--resolution", "512")
    assert r.code == 0 and json.loads(r.out)["total"] == 797184  # SD-1.5's UNet, rank 4 on q/k/v/out


def test_paper_ldm_study_starts_every_generator_from_pretrained_weights():
    from builders import REPO
    from skingen.assets import study_assets
    from skingen.generators.registry import get_generator
    from skingen.grid.spec import load_study

    spec = load_study(REPO / "jobs" / "paper-ldm.toml")
    assert spec.name == "paper-ldm" and spec.generate.generators == ("ddpm", "stylegan2_ada", "sd_lora")
    assert "synthetic_sd_lora" in spec.classify.arms
    assert {"sd15", "ddpm_celebahq_256", "stylegan2_ffhq256"} <= set(study_assets(REPO / "jobs" / "paper-ldm.toml"))
    starts = {g: get_generator(g).pretrained(getattr(spec.generate, g)) for g in spec.generate.generators}
    assert "none" not in starts.values() and starts["sd_lora"] == "stable-diffusion-v1-5"


def test_three_generator_study_runs_end_to_end(base, tmp_path):
    """train -> latent cache -> sample -> metrics -> classifier arm -> report with ddpm, stylegan2_ada and sd_lora."""
    from builders import GENERATE, read_rows, study_variant
    from skingen.grid.plan import plan_study
    from skingen.grid.run import run_study
    from skingen.grid.spec import load_study

    arms = 'arms = ["real", "synthetic_ddpm", "synthetic_stylegan2_ada", "synthetic_sd_lora"]'
    path = study_variant(tmp_path, replace={'arms = ["real", "oversample"]': arms})
    extra = GENERATE.replace('generators = ["ddpm", "stylegan2_ada"]', 'generators = ["ddpm", "stylegan2_ada", "sd_lora"]')
    extra += (f'\n[generate.sd_lora]\nbase = "{base}"\nresolution = 32\nmax_steps = 3\nbatch_size = 8\n'
              'checkpoint_every = 0\ngrid_images = 2\nsampling_steps = 3\n')
    path.write_text(path.read_text() + extra)
    out = tmp_path / "out"
    summary = run_study(path, "debug", out)
    assert all(counts["failed"] == 0 for counts in summary.values())
    cells = plan_study(load_study(path))
    assert all((c.folder(out) / "DONE").is_file() for c in cells)
    of = {(c.stage, c.config.get("generator")): c.folder(out) for c in cells}
    pack = next(c for c in cells if c.stage == "pack").folder(out)
    assert list((pack / "latents").glob("sd-*.h5"))  # the cache beside the image shards
    syn = ShardReader(of["sample", "sd_lora"] / "synthetic.h5")
    n_mel = int((ShardReader(pack / "train.h5").labels == CLASS_INDEX["MEL"]).sum())
    assert len(syn) == n_mel and syn.attrs["generator"] == "sd_lora" and syn.image(0).shape == (32, 32, 3)
    assert syn.attrs["generator_cell"] == of["train_gen", "sd_lora"].name
    clf = next(c for c in cells if c.stage == "train_clf" and c.config["arm"].get("generator") == "sd_lora")
    composition = json.loads((clf.folder(out) / "train_summary.json").read_text())["arm"]
    assert composition["synthetic_provenance"]["generator"] == "sd_lora"
    report = out / "report"
    gen_rows = read_rows(report / "tables" / "generative_metrics.csv")
    assert {"ddpm", "stylegan2_ada", "sd_lora"} <= {r["Generator"] for r in gen_rows}
    arms_seen = {r["Arm"] for r in read_rows(report / "tables" / "classifier_global.csv")}
    assert arms_seen == {"real", "synthetic_ddpm", "synthetic_stylegan2_ada", "synthetic_sd_lora"}
    generator = [r for r in read_rows(report / "tables" / "factor_effects.csv")
                 if r["Factor"] == "generator" and r["Metric"] == "macro_f1"]
    assert len(generator) == 2  # every generator minus the reference (stylegan2_ada when listed)
    assert "Samples of sd_lora (basic)" in (report / "index.html").read_text()


def test_clipping_is_applied_at_the_set_norm_and_off_at_zero(base, shard, tmp_path, monkeypatch):
    calls = []
    for clip in (0.5, 0.0):
        t = Trainer(shard, tmp_path / str(clip), tiny(base, grad_clip=clip))
        monkeypatch.setattr(t.acc, "clip_grad_norm_", lambda params, norm: calls.append((len(list(params)), norm)))
        t.step(0)
    n_lora = sum(1 for n, _ in t.acc.unwrap_model(t.unet).named_parameters() if "lora_" in n)
    assert calls == [(n_lora, 0.5)]


def test_real_base_layout_alpha_and_v_prediction_reach_the_sampler(base, shard, tmp_path):
    """A base whose model_index lists SD-1.5's safety checker and feature extractor (not fetched) still loads; the
    LoRA's alpha and prediction type travel with the snapshot into the pipeline."""
    import shutil

    from skingen.generators.sd_lora.sample import load_pipeline

    real = tmp_path / "sd15-like"
    shutil.copytree(base, real)
    index = json.loads((real / "model_index.json").read_text())
    index.update(safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
                 feature_extractor=["transformers", "CLIPImageProcessor"])
    (real / "model_index.json").write_text(json.dumps(index))
    train_sd_lora(shard, tmp_path / "c", tiny(str(real), max_steps=1, alpha=8.0, prediction_type="v_prediction"))
    for sampler in ("dpmsolver++", "ddim"):
        pipe, snap = load_pipeline(tmp_path / "c", sampler)
        assert pipe.scheduler.config.prediction_type == "v_prediction" == snap["prediction_type"]
    scales = {v for m in pipe.unet.modules() if hasattr(m, "scaling") and isinstance(m.scaling, dict)
              for v in m.scaling.values()}
    assert scales == {2.0}  # alpha 8 / rank 4, as trained
    out = sample_to_shard(tmp_path / "c", tmp_path / "s.h5", 2, "MEL", 16, options={"sd_steps": 2})
    assert len(ShardReader(out)) == 2


def test_bad_choices_are_one_line_errors_outside_a_study(base, shard, tmp_path):
    with pytest.raises(UserError, match="sd_lora classes = 'everything': use one of 'target', 'all'"):
        train_sd_lora(shard, tmp_path / "x", tiny(base, classes="everything"))


def test_one_and_two_processes_train_the_same_lora(base, shard, tmp_path):
    """The same global batches and draws on 1 and 2 processes (gloo, CPU); 9 images in batches of 4, so the third
    batch holds one image and the second process runs it at weight 0. The schedule counts optimiser steps."""
    import subprocess
    import sys

    from safetensors.numpy import load_file

    from builders import REPO, read_rows

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[sd_lora]\nbase = "{base}"\nresolution = 32\nbatch_size = 4\nmax_steps = 4\nlr = 1e-3\n'
                   'warmup_steps = 2\nlr_scheduler = "cosine"\ncheckpoint_every = 0\ngrid_images = 0\nlog_every = 1\n')
    for n in (1, 2):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
                               "-m", "skingen.cli", "gen", "train", str(shard.parent), "--generator", "sd_lora",
                               "--out", str(tmp_path / f"p{n}"), "--config", str(cfg)],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = sorted((tmp_path / "p2" / "ranks").glob("rank*.sha256"))
    assert len(ranks) == 2 and ranks[0].read_text() == ranks[1].read_text()
    lrs = [[float(r["lr"]) for r in read_rows(tmp_path / f"p{n}" / "curves.csv")] for n in (1, 2)]
    assert len(lrs[0]) == 4 and lrs[0] == lrs[1]
    one, two = (load_file(str(tmp_path / f"p{n}" / "snapshot" / "pytorch_lora_weights.safetensors")) for n in (1, 2))
    worst = max(float(np.abs(one[k] - two[k]).max() / np.abs(one[k]).max()) for k in one if "up" in k)
    apart = max(float(np.abs(one[k] - two[k]).max()) for k in one)
    print("1 vs 2 processes: worst lora_B tensor", worst, "largest difference", apart)
    # measured 1.0e-5 of the update (lora_B starts at 0, so its values are its updates), 1.2e-7 absolute
    assert worst < 1e-4 and apart < 1e-5
