"""Several generators in the report's inference (issue 26 item 2): every generator minus the reference generator,
Bonferroni-simultaneous contrasts and comparisons, the verdict per contrast, fallbacks, single instances."""
from __future__ import annotations

import pytest

from skingen.report.effects import factor_effects
from skingen.report.joint import run_joint_bootstrap
from skingen.report.simulate import THREE_GENERATORS, SimulatedStudy, simulate
from skingen.report.stats import interval
from skingen.report.verdict import verdicts


THREE = SimulatedStudy(n_images=300, models=("resnet50",), seeds=2, instances=2, arms=THREE_GENERATORS,
                       planted={"arm:synthetic_sd_lora": 1.0})
LISTED = ("ddpm", "stylegan2_ada", "sd_lora")


@pytest.fixture(scope="module")
def three_generators():
    """A simulated study with three generators (sd_lora planted far better than the others) through the joint
    bootstrap."""
    return run_joint_bootstrap(simulate(THREE, 1), 300, 0, progress=False)


def test_three_generators_give_simultaneous_contrasts_against_the_reference(three_generators, tmp_path):
    """Issue 26 item 2: every generator minus the reference generator, Bonferroni over the k - 1 = 2 contrasts (97.5 %
    intervals, the level passed through to the replicates), one comparison with preprocessing per contrast."""
    from builders import read_rows
    from skingen.report.effects import contrast
    from skingen.report.export import write_effects

    jb = three_generators
    effects = factor_effects(jb, "resnet50", LISTED)
    rows = read_rows(write_effects(tmp_path / "effects.csv", effects))
    mine = [r for r in rows if r["metric"] == "macro_f1"]
    gens = [r for r in mine if r["factor"] == "generator"]
    assert [r["contrast"] for r in gens] == ["synthetic_ddpm - synthetic_stylegan2_ada",
                                             "synthetic_sd_lora - synthetic_stylegan2_ada"]  # stylegan2_ada: default
    cmps = [r for r in mine if r["factor"] == "generator_vs_preprocessing"]
    assert [r["contrast"] for r in cmps] == [f"|{r['contrast']}| - |preprocessing|" for r in gens]
    for r in gens + cmps:
        assert r["simultaneous"] == "Bonferroni over 2 contrasts" and "97.5 % percentile" in r["interval"]
    pre = next(r for r in mine if r["factor"] == "preprocessing")
    assert pre["simultaneous"] == "" and "95 % percentile" in pre["interval"]
    ddpm, sd = (float(r["ci_lo"]) <= 0 <= float(r["ci_hi"]) for r in cmps)
    assert ddpm and not sd and float(cmps[1]["ci_lo"]) > 0  # the planted generator is resolved, the other not
    # the simultaneous interval is the 97.5 % interval of replicates made at 97.5 %: wider than the 95 % one
    wide = next(e for e in effects if e["factor"] == "generator" and e["metric"] == "macro_f1")
    pairs = [(u, (u[0], "synthetic_ddpm", u[2])) for u in jb.units if u[1] == "synthetic_stylegan2_ada"]
    est, plain = interval(contrast(jb, "macro_f1", pairs))
    assert wide["effect"] == pytest.approx(est) and wide["ci"][1] - wide["ci"][0] > plain[1] - plain[0]
    texts = verdicts(effects, jb)
    for text in texts:
        assert "97.5 %, simultaneous (Bonferroni over 2 contrasts)" in text
        assert "generator effect (synthetic_ddpm - synthetic_stylegan2_ada)" in text
        assert "generator effect (synthetic_sd_lora - synthetic_stylegan2_ada)" in text
        assert ("Resolved: the generator contrast synthetic_sd_lora - synthetic_stylegan2_ada matters more than "
                "preprocessing") in text
        assert "Not resolved for synthetic_ddpm - synthetic_stylegan2_ada" in text
        assert "Resolved: the generator contrast synthetic_ddpm" not in text and "differ in pretraining" not in text


def test_the_reference_generator_chooses_the_contrasts(three_generators):
    jb = three_generators
    effects = factor_effects(jb, "resnet50", LISTED, "ddpm")
    assert [e["contrast"] for e in effects if e["factor"] == "generator" and e["metric"] == "macro_f1"] == [
        "synthetic_stylegan2_ada - synthetic_ddpm", "synthetic_sd_lora - synthetic_ddpm"]
    starting = {"ddpm": "none", "stylegan2_ada": "none", "sd_lora": "stable-diffusion-v1-5"}
    text = verdicts(effects, jb, starting)[0]
    assert "generator contrast synthetic_sd_lora - synthetic_ddpm matters more than preprocessing" in text
    assert text.count("The generators differ in pretraining: the generator effect mixes architecture and "
                      "pretraining.") == 1
    assert "differ in pretraining" not in verdicts(effects, jb, dict.fromkeys(LISTED, "none"))[0]


def test_a_reference_generator_without_results_falls_back_to_the_first_present():
    sim = SimulatedStudy(**{**THREE.__dict__, "arms": ("real", "synthetic_sd_lora", "synthetic_stylegan2_ada"),
                            "planted": {}})
    jb = run_joint_bootstrap(simulate(sim, 2), 200, 0, progress=False)
    effects = factor_effects(jb, "resnet50", LISTED, "ddpm")
    gens = [e for e in effects if e["factor"] == "generator" and e["metric"] == "macro_f1"]
    assert [(e["contrast"], e["status"]) for e in gens] == [
        ("synthetic_ddpm - synthetic_stylegan2_ada", "missing"), ("synthetic_sd_lora - synthetic_stylegan2_ada", "ok")]
    assert gens[1]["simultaneous"] == "" and gens[1]["level"] == 0.95  # two generators present: one contrast
    assert ("Note: the reference generator ddpm has no results; the generator contrasts are taken against "
            "stylegan2_ada, the first generator present.") in verdicts(effects, jb)[0]


def test_two_generators_keep_their_one_contrast_at_95_percent():
    jb = run_joint_bootstrap(simulate(SimulatedStudy(n_images=200, models=("resnet50",), seeds=2, instances=2), 3),
                             200, 0, progress=False)
    for listed in ((), ("ddpm", "stylegan2_ada"), ("stylegan2_ada", "ddpm")):  # the order listed does not flip it
        effects = factor_effects(jb, "resnet50", listed)
        gen = [e for e in effects if e["factor"] == "generator" and e["metric"] == "macro_f1"]
        cmp = next(e for e in effects if e["factor"] == "generator_vs_preprocessing" and e["metric"] == "macro_f1")
        assert [e["contrast"] for e in gen] == ["synthetic_ddpm - synthetic_stylegan2_ada"]
        assert cmp["contrast"] == "|generator| - |preprocessing|" and gen[0]["level"] == cmp["level"] == 0.95
        assert gen[0]["simultaneous"] == "" and "Bonferroni" not in verdicts(effects, jb)[0]


def test_single_instances_of_three_generators_are_never_resolved():
    sim = SimulatedStudy(**{**THREE.__dict__, "instances": 1, "planted": {"arm:synthetic_sd_lora": 2.0}})
    jb = run_joint_bootstrap(simulate(sim, 0), 200, 0, progress=False)
    effects = factor_effects(jb, "resnet50", LISTED)
    family = [e for e in effects if e["factor"] in ("generator", "generator_vs_preprocessing")]
    assert len(family) == 2 * 2 * 4 and all(e["status"] == "single instance" for e in family)
    for text in verdicts(effects, jb):
        assert "Resolved" not in text and "generator comparison is insufficient" in text

