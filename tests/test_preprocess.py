"""Preprocessing steps, presets (built-in and TOML), quarantine of failing images, phantom evaluation."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from builders import read_rows, split_with_bad_path
from skingen.data.shards import ShardReader
from skingen.errors import BadImage, UserError
from skingen.preprocess import get_pipeline
from skingen.preprocess import steps as S
from skingen.preprocess.quality import ssim_map
from skingen.preprocess.registry import step_defaults


def _skin(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([220, 170, 150], np.float32)
    noise = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 4)
    return np.clip(base + noise[..., None], 0, 255).astype(np.uint8)


def _psnr(a, b):
    return 10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_dullrazor_removes_a_hair_and_its_mask_finds_it():
    clean = _skin()
    hairy = clean.copy()
    cv2.line(hairy, (10, 20), (300, 220), (35, 25, 20), 2, cv2.LINE_AA)
    truth = np.zeros(clean.shape[:2], np.uint8)
    cv2.line(truth, (10, 20), (300, 220), 255, 2)
    mask = S.hair_mask(hairy) > 0
    assert (mask & (truth > 0)).sum() / (truth > 0).sum() > 0.9
    assert mask.mean() < 0.05
    assert _psnr(S.dullrazor(hairy), clean) > _psnr(hairy, clean) + 10


def test_shades_of_gray_neutralises_a_cast_and_clips():
    img = _skin()
    img[:8, :8] = 255  # white pixels: the blue gain (> 1) pushes them past 255
    out = S.shades_of_gray(img, p=6)
    means = out.reshape(-1, 3).astype(float).mean(0)
    assert means.max() - means.min() < 0.1 * means.mean()  # the reddish cast is gone
    # without the clip, 255 * gain would wrap around to a small value
    assert out.dtype == np.uint8 and (out[:8, :8, 2] == 255).all()


def test_dark_corners_filled_and_plain_image_untouched():
    clean = _skin()
    h, w = clean.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    corner = np.hypot(x - w / 2, y - h / 2) > 0.45 * np.hypot(w, h)
    vignetted = clean.copy()
    vignetted[corner] = 5
    for mode in ("inpaint", "mask"):
        out = S.dark_corners(vignetted, mode=mode)
        assert out[corner].mean() > 150, mode
    assert np.array_equal(S.dark_corners(clean), clean)
    with pytest.raises(ValueError, match="black"):
        S.dark_corners(np.zeros_like(clean))


def test_ruler_ticks_near_border_removed_lesion_kept():
    img = _skin()
    cv2.circle(img, (160, 120), 50, (90, 60, 40), -1)  # a lesion in the middle
    for x in range(40, 280, 8):
        cv2.line(img, (x, 232), (x, 232 - (8 if x % 40 else 14)), (20, 20, 20), 1)
    mask = S.ruler_mask(img) > 0
    assert mask[215:, :].sum() > 50 and not mask[70:170, 110:210].any()
    ticks = (img == 20).all(axis=2)
    out = S.ruler_removal(img)
    assert ticks.sum() > 100 and out[ticks].mean() > 150  # dark ticks filled with skin


def test_specular_spots_removed():
    img = _skin()
    spots = np.zeros(img.shape[:2], np.uint8)
    for c in ((50, 50), (200, 100), (120, 180)):
        cv2.circle(spots, c, 3, 255, -1)
    shiny = img.copy()
    shiny[spots > 0] = 255
    out = S.specular_removal(shiny)
    assert _psnr(out, img) > _psnr(shiny, img) + 10


def test_ssim_identity_and_damage():
    a = _skin()
    assert np.allclose(ssim_map(a, a), 1.0)
    noise = np.random.default_rng(1).integers(0, 255, a.shape, dtype=np.uint8)
    assert ssim_map(a, noise).mean() < 0.1


def test_presets_record_every_parameter():
    adv = get_pipeline("advanced").record()
    assert [s["step"] for s in adv["steps"]] == ["dark_corners", "dullrazor", "ruler_removal", "shades_of_gray"]
    for step in adv["steps"]:
        assert {k: v for k, v in step.items() if k != "step"} == step_defaults(step["step"])
    assert get_pipeline("basic").record()["steps"] == []


def test_toml_preset_and_its_errors(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "kaggle_hair"\n[[steps]]\nstep = "dullrazor"\nkernel_size = 17\ninpaint_radius = 1\n')
    pipe = get_pipeline(good)
    assert pipe.name == "kaggle_hair" and pipe.steps[0][1]["inpaint_radius"] == 1
    assert pipe.steps[0][1]["threshold"] == 10  # defaults filled in and recorded
    bad_step = tmp_path / "a.toml"
    bad_step.write_text('[[steps]]\nstep = "unsharp"\n')
    with pytest.raises(UserError, match="unknown step 'unsharp'"):
        get_pipeline(bad_step)
    bad_param = tmp_path / "b.toml"
    bad_param.write_text('[[steps]]\nstep = "dullrazor"\nkernal_size = 3\n')
    with pytest.raises(UserError, match="no parameter\\(s\\) kernal_size"):
        get_pipeline(bad_param)
    with pytest.raises(UserError, match="unknown"):
        get_pipeline("fancy")


def test_failing_step_names_itself():
    with pytest.raises(BadImage, match="preprocessing step dark_corners failed"):
        get_pipeline("advanced")(np.zeros((64, 80, 3), np.uint8), 32)


def test_pack_with_preset_records_params_and_quarantines_failures(cli, phantom_dir, tmp_path):
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((48, 64, 3), np.uint8))
    split, rows, victim = split_with_bad_path(cli, phantom_dir, tmp_path, black)
    res = cli("data", "pack", split, "--out", tmp_path / "sh", "--size", "32", "--pipeline", "advanced")
    assert res.code == 0, res.err
    q = read_rows(tmp_path / "sh" / "quarantine.csv")
    assert len(q) == 1 and q[0]["image_id"] == victim["image_id"] and "dark_corners" in q[0]["reason"]
    shard = ShardReader(tmp_path / "sh" / "train.h5")
    assert shard.attrs["pipeline"] == "advanced"
    params = json.loads(shard.attrs["pipeline_params"])
    assert params["steps"][1] == {"step": "dullrazor", **step_defaults("dullrazor")}
    total = sum(len(ShardReader(tmp_path / "sh" / f"{s}.h5")) for s in ("train", "val", "test"))
    assert total == len(rows) - 1


def test_bad_preset_on_the_cli_is_one_line(cli, tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text('[[steps]]\nstep = "dullrazor"\nsize = 3\n')
    res = cli("data", "pack", tmp_path / "missing.csv", "--out", tmp_path / "o", "--size", "32", "--pipeline", bad)
    assert res.code == 2 and "size" in res.err and len(res.err.strip().splitlines()) == 1


def test_eval_on_phantom_advanced_beats_basic_and_reports_lesion_interior(cli, phantom_dir, tmp_path):
    res = cli("preprocess", "eval", phantom_dir, "--out", tmp_path / "ev", "--limit", "60")
    assert res.code == 0, res.err
    report = json.loads((tmp_path / "ev" / "preprocess_eval.json").read_text())
    basic, adv = report["pipelines"]["basic"], report["pipelines"]["advanced"]
    assert basic["hair_iou"] == 0.0 and adv["hair_iou"] > 0.15
    assert adv["regions"]["hair"]["psnr"] > basic["regions"]["hair"]["psnr"] + 5
    assert adv["regions"]["vignette"]["psnr"] > basic["regions"]["vignette"]["psnr"] + 3
    for res_ in (basic, adv):
        assert res_["regions"]["lesion_interior"]["n_pixels"] > 0 and res_["images_per_s"] > 0
    table = read_rows(tmp_path / "ev" / "preprocess_eval.csv")
    assert {r["pipeline"] for r in table} == {"basic", "advanced"}
    panel = cv2.imread(str(tmp_path / "ev" / "preprocess_panel.png"))
    assert panel.shape[1] == 4 * 160 and panel.shape[0] % 160 == 0 and panel.shape[0] >= 3 * 160
