"""The demo's classifiers learn (issues 17 and 22): real-arm ResNet-18 cells trained with the demo's own
training settings (``jobs/demo.toml``: image size, epochs, batch size, lr, milestones) on the demo's own
phantom and split beat chance (0.2 balanced accuracy over five classes) clearly, for several seeds.

One short run from random init is a chaotic trajectory: rounding that differs between CPUs, kernel paths
and thread counts moves its result by +-0.1 or more (``benchmarks/bench_demo_learns.py``; figures in
``benchmarks/RESULTS.md``). So no single run is asserted on: every seed must be far from chance and
the median must clear 0.5, a bar the demo's settings clear with margin on every seed, thread count and
kernel path measured. Catches a regression to "predicts NV for every image" -- too few steps, an lr that
stalls, or phantom class cues too weak to survive the resize.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from skingen.classify.arms import ArmConfig
from skingen.classify.train import train_classifier
from skingen.data.ingest import ingest
from skingen.data.pack import pack
from skingen.data.phantom import make_phantom
from skingen.data.shards import ShardReader
from skingen.data.split import SplitConfig, make_split
from skingen.grid.spec import load_study
from skingen.metrics.diagnostic import all_metrics
from skingen.metrics.predictions import evaluate_predictions, read_predictions

DEMO = Path(__file__).resolve().parents[1] / "jobs" / "demo.toml"
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory):
    """The demo's phantom, split and basic shards (the harder pipeline of the two)."""
    study = load_study(DEMO)
    root = tmp_path_factory.mktemp("demo_learns")
    ph, sp = study.data.phantom, study.split
    phantom = make_phantom(root / "phantom", ph.n, size=ph.size, seed=ph.seed, workers=2)
    ingest([phantom], root / "manifest.csv")
    make_split(root / "manifest.csv", root / "split.csv",
               SplitConfig(val=sp.val, test=sp.test, seed=sp.seed, dedup=sp.dedup))
    pack(root / "split.csv", root / "basic", study.image_size, workers=2)
    return study, root / "basic"


@pytest.fixture(scope="module")
def demo_runs(demo_shards, tmp_path_factory):
    """One real-arm ResNet-18 cell per seed with the demo's settings: (summary, test metrics, predictions)."""
    study, shards = demo_shards
    runs = []
    for seed in SEEDS:
        out = tmp_path_factory.mktemp(f"seed{seed}")
        cfg = dataclasses.replace(study.classify.train, model="resnet18", gradcam_per_class=0, checkpoint_every=0,
                                  seed=seed)
        summary = train_classifier(shards, out, cfg, ArmConfig(name="real"))
        _, _, y, prob = read_predictions(out / "predictions.csv")
        runs.append((summary, all_metrics(y, prob), prob, out / "predictions.csv"))
    return runs


def test_every_seed_beats_chance_and_the_median_clears_half(demo_runs):
    ba = np.array([m["balanced_accuracy"] for _, m, _, _ in demo_runs])
    for (_, m, prob, _), seed in zip(demo_runs, SEEDS):
        predicted = np.unique(prob.argmax(1))
        assert len(predicted) >= 3, f"seed {seed} predicts only {predicted.tolist()}"
        assert m["balanced_accuracy"] >= 0.35, f"seed {seed}: {m}"  # chance 0.2; every measured run >= 0.5
    assert np.median(ba) >= 0.5, ba.tolist()


def test_the_cells_interval_excludes_chance_for_the_median_seed(demo_runs):
    ba = [m["balanced_accuracy"] for _, m, _, _ in demo_runs]
    median_run = demo_runs[int(np.argsort(ba)[len(ba) // 2])]
    m = evaluate_predictions(median_run[3], n_boot=200)
    assert m["balanced_accuracy_ci"][0] > 0.2, m["balanced_accuracy_ci"]


def test_the_demo_takes_the_steps_its_settings_say(demo_shards, demo_runs):
    study, shards = demo_shards
    train = study.classify.train
    n_train = len(ShardReader(shards / "train.h5").labels)
    for summary, _, _, _ in demo_runs:
        assert summary["steps"] == train.epochs * math.ceil(n_train / train.batch_size)
