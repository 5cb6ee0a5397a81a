"""Generator stages in the study grid: features, train_gen -> sample -> gen_metrics -> feature_space, synthetic arms."""
from __future__ import annotations

import json
import re

import pytest

from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardReader
from skingen.grid.plan import plan_study
from skingen.grid.run import run_study
from skingen.grid.spec import load_study

from builders import GENERATE, read_rows, study_variant


def _study(tmp_path, extra: str = GENERATE, arms: str = 'arms = ["real", "synthetic_ddpm", "synthetic_stylegan2_ada"]'):
    path = study_variant(tmp_path, replace={'arms = ["real", "oversample"]': arms})
    path.write_text(path.read_text() + extra)
    return path


def test_plan_wires_generators_into_the_grid(tmp_path):
    cells = plan_study(load_study(_study(tmp_path)))
    by_stage = {s: [c for c in cells if c.stage == s] for s in {c.stage for c in cells}}
    assert [len(by_stage[s]) for s in ("features", "train_gen", "sample", "gen_metrics", "feature_space")] == [1, 2, 2, 2, 1]
    features = by_stage["features"][0]  # one real-feature pass per pipeline, shared by both generators
    assert all(c.deps["features"] == features.key for c in by_stage["gen_metrics"] + by_stage["feature_space"])
    sample, train_gen = by_stage["sample"][0], by_stage["train_gen"][0]
    assert train_gen.config["generator"] == "ddpm" and by_stage["train_gen"][1].config["config"]["preset"] == "tiny"
    assert sample.deps["train_gen"] == train_gen.key and train_gen.config["config"]["resolution"] == 32
    assert list(train_gen.config["config"]["classes"]) == ["MEL"]
    syn = next(c for c in by_stage["train_clf"] if c.config["arm"].get("generator") == "ddpm")
    real = next(c for c in by_stage["train_clf"] if c.config["arm"]["name"] == "real")
    assert syn.deps["sample"] == sample.key and "sample" not in real.deps
    (tmp_path / "b").mkdir()
    changed = plan_study(load_study(_study(tmp_path / "b", GENERATE.replace("max_steps = 4", "max_steps = 5"))))
    old = {c.key for c in cells}
    rekeyed = [c for c in changed if c.key not in old]
    assert {c.stage for c in rekeyed} == {"train_gen", "sample", "gen_metrics", "feature_space", "train_clf",
                                          "clf_metrics"}
    assert all(c.config.get("generator", "ddpm") == "ddpm" for c in rekeyed if c.stage != "feature_space")
    assert real.key in {c.key for c in changed}  # the real arm does not depend on the generator


def test_every_registered_generator_has_a_study_table_and_entry_points(tmp_path):
    from dataclasses import fields

    from skingen.errors import UserError
    from skingen.generators.registry import GENERATORS, get_generator
    from skingen.grid.spec import GenerateSpec

    tables = {f.name for f in fields(GenerateSpec)}
    spec = load_study(_study(tmp_path))
    for name, gen in GENERATORS.items():
        assert name in tables  # [generate.<name>] exists, so a study can configure it
        cfg = getattr(spec.generate, name)
        assert isinstance(cfg, gen.config_class())
        gen.validate(cfg)
        assert gen.summary(32, "tiny" if name == "stylegan2_ada" else None, False)["resolution"] == 32
    samples = {c.config["generator"]: c.config for c in plan_study(spec) if c.stage == "sample"}
    assert samples["stylegan2_ada"]["psi"] == spec.generate.stylegan2_ada.truncation_psi and "psi" not in samples["ddpm"]
    with pytest.raises(UserError, match="'gan' unknown; implemented: ddpm, stylegan2_ada"):
        get_generator("gan")


@pytest.mark.parametrize("arms, extra, message", [
    ('arms = ["real", "synthetic_ddpm"]', "", "needs its generator in [generate] generators"),
    ('arms = ["real"]', '\n[generate]\ngenerators = ["stylegan2_ada"]\n[generate.stylegan2_ada]\naugment = "maybe"\n',
     "augment 'maybe'"),
    ('arms = ["real"]', '\n[generate]\ngenerators = ["gan"]\n', "'gan' unavailable; implemented: ddpm, stylegan2_ada"),
    ('arms = ["real"]', '\n[generate]\ngenerators = ["ddpm"]\nsampler = "euler"\n', "sampler 'euler' unknown"),
])
def test_bad_generator_specs_are_one_line_errors(tmp_path, cli, arms, extra, message):
    r = cli("run", _study(tmp_path, extra, arms), "--dry-run", "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1


def test_generator_study_runs_end_to_end(tmp_path):
    """Two feature spaces (the tiny CNN and a random-weight DINOv2 stand-in): one features cell and one
    gen_metrics cell per space, one table per space and the agreement block (issue 27 items 1 and 3)."""
    path = _study(tmp_path, GENERATE.replace('extractor = "tiny"', 'extractors = ["tiny", "dinov2_standin"]'))
    spec = load_study(path)
    out = tmp_path / "out"
    summary = run_study(path, "debug", out)
    assert all(counts["failed"] == 0 for counts in summary.values())
    cells = plan_study(spec)
    assert all((c.folder(out) / "DONE").is_file() for c in cells)
    pack = next(c for c in cells if c.stage == "pack").folder(out)
    n_mel = int((ShardReader(pack / "train.h5").labels == CLASS_INDEX["MEL"]).sum())
    space = {c.key: c.config.get("extractor") or c.config.get("metrics", {}).get("extractor") for c in cells}
    assert sorted(space[c.key] for c in cells if c.stage == "features") == ["dinov2_standin", "tiny"]
    assert sorted(space[c.key] for c in cells if c.stage == "gen_metrics") == ["dinov2_standin"] * 2 + ["tiny"] * 2
    standin = next(c for c in cells if c.stage == "gen_metrics" and space[c.key] == "dinov2_standin")
    m_standin = json.loads((standin.folder(out) / "metrics.json").read_text())
    assert m_standin["extractor"] == "dinov2_standin" and "random weights (stand-in)" in m_standin["implementation"]
    assert {"density", "coverage", "cmmd", "cmmd_floor"} <= set(m_standin) and m_standin["dc_k"] >= 1
    assert m_standin["pr_k"] == min(5, m_standin["n_matched"] - 1)  # k = 5 unless the sets are smaller
    of = {(c.stage, c.config.get("generator")): c.folder(out) for c in cells if space[c.key] in (None, "tiny")}
    for gen, step_attr, steps in (("ddpm", "checkpoint_step", 4), ("stylegan2_ada", "kimg", 0.032)):
        syn = ShardReader(of["sample", gen] / "synthetic.h5")
        assert len(syn) == n_mel and (syn.labels == CLASS_INDEX["MEL"]).all() and syn.attrs["generator"] == gen
        assert syn.attrs["generator_cell"] == of["train_gen", gen].name and syn.attrs[step_attr] == pytest.approx(steps)
        assert syn.attrs["trained_on_pipeline"] == "basic"
        metrics = json.loads((of["gen_metrics", gen] / "metrics.json").read_text())
        assert metrics["n_fake"] == n_mel == metrics["n_real"] and metrics["extractor"] == "tiny"
        assert metrics["fid_ci"][0] <= metrics["fid"] <= metrics["fid_ci"][1] and metrics["matched_repeats"] >= 10
        assert not list((of["gen_metrics", gen] / "features").glob("train_*.h5"))  # reals read from the features cell
    real = of["features", None]
    assert sorted(p.name for p in real.glob("*.h5")) == ["test_MEL.h5", "train_MEL.h5"]
    def started(cell):
        return json.loads((cell.folder(out) / "cell.json").read_text())["timings"]["start"]

    real_clf = next(c for c in cells if c.stage == "train_clf" and c.config["arm"]["name"] == "real")
    assert started(real_clf) < min(started(c) for c in cells if c.stage == "sample")  # stages overlap
    fs = next(c for c in cells if c.stage == "feature_space").folder(out)
    assert {r["source"] for r in read_rows(fs / "tsne.csv")} == {"real", "ddpm", "stylegan2_ada"}
    clf = next(c for c in cells if c.stage == "train_clf" and c.config["arm"].get("generator") == "stylegan2_ada")
    composition = json.loads((clf.folder(out) / "train_summary.json").read_text())["arm"]
    assert composition["per_class"]["MEL"]["synthetic"] == n_mel
    assert composition["synthetic_provenance"]["generator"] == "stylegan2_ada"
    report = out / "report"
    gen_rows = read_rows(report / "tables" / "generative_metrics.csv")
    assert [r["Generator"] for r in gen_rows] == ["ddpm", "stylegan2_ada", "ddpm − stylegan2_ada"]
    assert gen_rows[0]["Extractor"].startswith("tiny (")
    other = read_rows(report / "tables" / "generative_metrics_dinov2_standin.csv")
    assert [r["Generator"] for r in other] == ["ddpm", "stylegan2_ada", "ddpm − stylegan2_ada"]
    agree = read_rows(report / "tables" / "feature_space_agreement.csv")
    assert len(agree) == 1 and agree[0]["Difference"] == "ddpm − stylegan2_ada"
    assert {"tiny: FD difference [95 % CI]", "dinov2_standin: FD difference [95 % CI]"} <= set(agree[0])
    n_test = int((ShardReader(pack / "test.h5").labels == CLASS_INDEX["MEL"]).sum())
    assert gen_rows[0]["N train / test / fake"] == f"{n_mel} / {n_test} / {n_mel}"
    assert gen_rows[0]["N (matched)"] == gen_rows[2]["N (matched)"] == str(min(n_mel, n_test))
    diff = re.fullmatch(r"(-?[\d.]+) ± [\d.]+ \[(-?[\d.]+), (-?[\d.]+)\]", gen_rows[2]["FD ± sd [95 % CI]"])
    assert diff and float(diff[2]) <= float(diff[1]) <= float(diff[3])  # the interval contains its estimate
    assert f"(n = {n_test // 2})" in gen_rows[0]["Held-out reals, same n"]  # the matched-size real baseline
    arms = {r["Arm"] for r in read_rows(report / "tables" / "classifier_global.csv")}
    assert arms == {"real", "synthetic_ddpm", "synthetic_stylegan2_ada"}
    effects = {(r["Factor"], r["Metric"]): r for r in read_rows(report / "tables" / "factor_effects.csv")}
    generator = effects[("generator", "macro_f1")]
    assert generator["Pairs"] == "1" and not generator["Effect [95 % CI]"].startswith("missing")
    audit = {r["Check"]: r["Result"] for r in read_rows(report / "tables" / "protocol_audit.csv")}
    assert audit["generators trained on train only"] == "pass"
    assert audit["synthetic shards hold the target class only"] == "pass"
    page = (report / "index.html").read_text()
    assert "t-SNE of real and synthetic features (basic)" in page
    assert "Samples of stylegan2_ada (basic)" in page and "Memorisation check, ddpm (basic)" in page
    assert page.count("<img") >= 5 + 1 + 4  # classifier figures, t-SNE, 2 sample grids + 2 closest-pairs panels


def test_a_failed_generator_blocks_only_its_downstream_cells(tmp_path, cli):
    extra = GENERATE.replace('generators = ["ddpm", "stylegan2_ada"]', 'generators = ["ddpm"]').replace(
        "max_steps = 4", 'max_steps = 4\ninit_from = "/nonexistent/unet"')
    path = _study(tmp_path, extra, 'arms = ["real", "synthetic_ddpm"]')
    r = cli("run", path, "--executor", "debug", "--out", tmp_path / "out")
    assert r.code == 2 and "1 cell(s) failed, 5 blocked" in r.err  # sample, gen_metrics, t-SNE, synthetic arm + metrics
    assert "/nonexistent/unet" in r.err and "an input error; fix the input" in r.err  # exit 2: not "retry"
    out, cells = tmp_path / "out", plan_study(load_study(path))
    state = {(c.stage, c.config.get("arm", {}).get("name", "")): (c.folder(out) / "DONE").is_file() for c in cells}
    assert state[("train_gen", "")] is False and state[("sample", "")] is False
    assert state[("features", "")] and state[("train_clf", "real")]  # the real arm did not wait for the generator


def test_generator_seeds_plan_one_instance_each_and_a_classifier_cell_per_instance(tmp_path):
    one = plan_study(load_study(_study(tmp_path)))
    same = plan_study(load_study(_study(tmp_path, GENERATE.replace("sample_batch = 16", "sample_batch = 16\nseeds = [0]"))))
    assert [c.key for c in one] == [c.key for c in same]  # a single instance keeps the keys it always had
    cells = plan_study(load_study(_study(tmp_path, GENERATE.replace("sample_batch = 16", "sample_batch = 16\nseeds = [0, 1, 2]"))))
    train_gen = [c for c in cells if c.stage == "train_gen"]
    assert sorted((c.config["generator"], c.config["config"]["seed"]) for c in train_gen) == [
        (g, s) for g in ("ddpm", "stylegan2_ada") for s in (0, 1, 2)]
    assert len({c.key for c in train_gen}) == 6 and all(re.search(r"-g[012]$", c.name) for c in train_gen)
    synthetic = [c for c in cells if c.stage == "train_clf" and c.config["arm"]["name"] == "synthetic"]
    assert sorted((c.config["arm"]["generator"], c.config["arm"]["generator_seed"]) for c in synthetic) == [
        (g, s) for g in ("ddpm", "stylegan2_ada") for s in (0, 1, 2)]
    samples = {c.key: c for c in cells if c.stage == "sample"}
    assert all(samples[c.deps["sample"]].config["instance"] == c.config["arm"]["generator_seed"] for c in synthetic)
    space = next(c for c in cells if c.stage == "feature_space")
    assert sorted(space.deps) == ["features", "gen_metrics:ddpm", "gen_metrics:stylegan2_ada"]
