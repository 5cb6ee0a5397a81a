"""Contrasts read off the joint bootstrap: deltas vs the real-only arm and the factor effects (PROTOCOL rule 9).

Every contrast is a mean of paired unit differences, recomputed inside each replicate, so its interval
carries test-set, seed and generator-instance variability together. The generator factor is every generator
minus the reference generator; with k > 2 generators its k - 1 contrasts, and their comparisons with
preprocessing, are read at the Bonferroni level 1 - 0.05/(k - 1) (simultaneous intervals; the level is passed
through to the replicates' small-sample factor, see :func:`.components.combine`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .components import Parts, combine, label_shares
from .joint import JointBootstrap, interval_words
from .stats import KEY_METRICS, bootstrap_p, holm, interval, undefined_share

DELTA_METRICS = ("mel_f1", "macro_f1", "mel_roc_auc")
MIN_PAIRS = 5
PIPELINES = ("basic", "advanced")
# the reference generator when [report] reference_generator is unset: stylegan2_ada when the study has it (the
# original study's generator; so a ddpm + stylegan2_ada study's contrast is synthetic_ddpm - synthetic_stylegan2_ada,
# as before several generators), else the first generator listed; the two named when none is
DEFAULT_REFERENCE = "stylegan2_ada"
DEFAULT_PAIR = ("stylegan2_ada", "ddpm")
FAMILY_ALPHA = 0.05
ACROSS = ("preprocessing", "architecture")  # factors whose pairs span pipelines or models (see contrast)


def _n_cells(jb: JointBootstrap, unit: tuple) -> int:
    return jb.n_seeds[unit] * jb.n_instances[unit]


def pair_parts(jb: JointBootstrap, metric: str, pairs: list[tuple[tuple, tuple]]) -> Parts:
    """The parts of (second - first) for each pair, one row per pair: a seed or instance label shared by
    both sides cancels in every replicate."""
    idx = jb.unit_index()
    a = np.array([idx[p[0]] for p in pairs])
    b = np.array([idx[p[1]] for p in pairs])
    return jb.parts[metric].take(b) - jb.parts[metric].take(a)


def contrast_shares(diffs: Parts) -> tuple[float, float]:
    """The seed and instance shares of the mean over ``diffs``' rows (pairs): the larger of the share pooled
    over the pairs and the mean's own. A seed (or instance) effect that the pairs share -- "seed 0" helped every
    advanced-pipeline cell -- does not average out in their mean while the pairs' image-level noise does, so
    the mean carries a larger share of label variance than any one pair (the pooled share alone under-stated
    it: preprocessing intervals excluded 0 in 8 % of null studies with a shared seed effect)."""
    pooled, own = label_shares(diffs), label_shares(diffs.mean())
    return max(pooled[0], own[0]), max(pooled[1], own[1])


def contrast(jb: JointBootstrap, metric: str, pairs: list[tuple[tuple, tuple]],
             shares: tuple[float, float] | None = None, level: float = 0.95, across: bool = False) -> np.ndarray:
    """Mean over ``pairs`` of (second - first) unit values, per replicate (column 0: the estimate); the label
    shares are pooled over the pairs unless the caller pools them over a larger family (``shares``); ``across``:
    the pairs compare pipelines or models, so a seed's effect on a pipeline (its data order) or on a model (its
    initial weights) is common to all of them and the mean's own share counts too (:func:`contrast_shares`);
    within a pipeline and model (deltas, generator contrasts) such effects cancel. ``level``: the interval level
    the replicates are for (see :func:`.components.combine`)."""
    diffs = pair_parts(jb, metric, pairs)
    if shares is None:
        shares = contrast_shares(diffs) if across else label_shares(diffs)
    return combine(diffs.mean(), jb.levels([u for pair in pairs for u in pair]), shares,
                   image_inflation=jb.image_inflation, level=level, image_df=jb.df_of(metric))


def resampled(jb: JointBootstrap, units: list[tuple]) -> str:
    """What an interval over ``units`` resampled, in words (effects.csv and summary.json say it per row)."""
    seeds = min((jb.n_seeds[u] for u in units), default=0)
    text = f"test clusters within class; {seeds} classifier-seed labels"
    synthetic = [jb.n_instances[u] for u in units if u[1].startswith("synthetic")]
    if synthetic and min(synthetic) > 1:
        text += f"; {min(synthetic)} generator-instance labels"
    elif synthetic:
        text += "; 1 generator instance (its variability not estimable, not in the interval)"
    return text


SINGLE = "single instance"
SINGLE_WHY = ("1 trained instance per generator: the generator's own variability cannot be estimated; "
              "set [generate] seeds")


def effect_record(factor: str, metric: str, name: str, values: np.ndarray | None, n_pairs: int,
                  why: str = "", over: str = "", family: tuple[float, str] = (0.95, "")) -> dict:
    """One effect: estimate, percentile interval, pairs, what was resampled and whether the data can support it.
    ``family``: the interval level and, for a member of a family of contrasts, how it is made simultaneous."""
    level, simultaneous = family
    rec = {"factor": factor, "metric": metric, "contrast": name, "n_pairs": n_pairs, "effect": None,
           "ci": [None, None], "interval": interval_words(level), "level": level, "simultaneous": simultaneous,
           "resampled": over}
    if values is None or n_pairs == 0:
        return {**rec, "n_pairs": 0, "status": "missing", "why": why or "no matched cells"}
    rec["effect"], rec["ci"] = interval(values, level)
    rec["undefined_share"] = undefined_share(values)
    rec["_replicates"] = values
    lo, hi = rec["ci"]
    if rec["effect"] is None or lo is None:
        rec["status"] = "missing"
        rec["why"] = "undefined on this test set"
    elif n_pairs < MIN_PAIRS or hi - lo <= 1e-12:
        rec["status"] = "insufficient"
        rec["why"] = f"{n_pairs} pairs" if n_pairs < MIN_PAIRS else "degenerate (zero-width) interval"
    else:
        rec["status"] = "ok"
    return rec


def _paired(jb: JointBootstrap, metric: str, factor: str, name: str, pairs: list, why: str,
            family: tuple[float, str] = (0.95, "")) -> dict:
    if not pairs:
        return effect_record(factor, metric, name, None, 0, why, family=family)
    n_pairs = sum(min(_n_cells(jb, a), _n_cells(jb, b)) for a, b in pairs)
    over = resampled(jb, [u for pair in pairs for u in pair])
    values = contrast(jb, metric, pairs, level=family[0], across=factor in ACROSS)
    return effect_record(factor, metric, name, values, n_pairs, over=over, family=family)


def single_instance(jb: JointBootstrap) -> bool:
    """True when some (pipeline, generator) of the study was trained only once."""
    return any(n < 2 for u, n in jb.n_instances.items() if u[1].startswith("synthetic"))


def _single(rec: dict) -> dict:
    if rec["status"] == "missing":
        return rec
    return {**rec, "status": SINGLE, "why": SINGLE_WHY}


def preprocessing_effect(jb: JointBootstrap, metric: str, family: tuple[float, str] = (0.95, "")) -> dict:
    """advanced - basic over matched (arm, model); over the arms without generated images when a generator
    was trained once (its single instance's luck would otherwise enter the preprocessing effect unmeasured).
    ``family``: the level (and its words) when the effect enters a family's comparisons."""
    a, b = PIPELINES
    units = set(jb.units)
    pairs = [(u, (b, *u[1:])) for u in jb.units if u[0] == a and (b, *u[1:]) in units]
    name = f"{b} - {a}"
    if single_instance(jb):
        pairs = [p for p in pairs if not p[0][1].startswith("synthetic")]
        name += " (arms without generated images)"
    return _paired(jb, metric, "preprocessing", name, pairs, "needs both basic and advanced pipelines", family)


def _generator_of(arm: str) -> str | None:
    """'synthetic_ddpm x0.5' -> 'ddpm'; None for an arm without generated images."""
    name = arm.split(" ")[0]
    return name.removeprefix("synthetic_") if name.startswith("synthetic_") else None


def present_generators(jb: JointBootstrap, listed: Sequence[str] = ()) -> list[str]:
    """The generators whose synthetic arms have classifier results, in the study's [generate] order (then by name)."""
    found = {g for u in jb.units if (g := _generator_of(u[1]))}
    return [g for g in listed if g in found] + sorted(found - set(listed))


def pick_reference(declared: str, names: Sequence[str], present: Sequence[str]) -> tuple[str, str]:
    """(reference generator, note). ``declared`` ([report] reference_generator), else DEFAULT_REFERENCE when it is
    among ``names``, else the first of ``names``; when that one has no results but two or more generators do, the
    first generator present, and a note saying so."""
    ref = declared or (DEFAULT_REFERENCE if DEFAULT_REFERENCE in names else names[0])
    if ref in present or len(present) < 2:
        return ref, ""
    return present[0], (f"the reference generator {ref} has no results; the generator contrasts are taken against "
                        f"{present[0]}, the first generator present")


def family_level(n_contrasts: int) -> tuple[float, str]:
    """(level, words) of a family of ``n_contrasts`` intervals read together: Bonferroni, 1 - 0.05/n."""
    if n_contrasts < 2:
        return 1 - FAMILY_ALPHA, ""
    return 1 - FAMILY_ALPHA / n_contrasts, f"Bonferroni over {n_contrasts} contrasts"


@dataclass(frozen=True)
class GeneratorFamily:
    """The generator factor of a study: every other generator minus the reference, read at one level."""

    reference: str
    others: tuple[str, ...]
    family: tuple[float, str]  # (level, how it is simultaneous)
    note: str = ""  # why the reference is not the declared one


def generator_family(jb: JointBootstrap, listed: Sequence[str] = (), declared: str = "") -> GeneratorFamily:
    """The reference and the contrasts: the study's generators (``listed``, then any other with results; the
    default pair when fewer than two are known); Bonferroni over the k - 1 contrasts of the k generators present."""
    present = present_generators(jb, listed)
    names = list(dict.fromkeys([*listed, *present]))
    for g in DEFAULT_PAIR:
        if len(names) < 2 and g not in names:
            names.append(g)
    ref, note = pick_reference(declared, names, present)
    return GeneratorFamily(ref, tuple(g for g in names if g != ref), family_level(len(present) - 1), note)


def generator_effects(jb: JointBootstrap, metric: str, fam: GeneratorFamily) -> list[dict]:
    """synthetic_<g> - synthetic_<reference> over matched (pipeline, model, dose), one record per other generator."""
    a = f"synthetic_{fam.reference}"
    units = set(jb.units)
    out = []
    for g in fam.others:
        b = f"synthetic_{g}"
        pairs = [(u, partner) for u in jb.units
                 if u[1].split(" ")[0] == a and (partner := (u[0], u[1].replace(a, b, 1), u[2])) in units]
        rec = _paired(jb, metric, "generator", f"{b} - {a}", pairs, f"needs both {a} and {b} arms", fam.family)
        rec.update({"generator": g, "reference": fam.reference}, **({"note": fam.note} if fam.note else {}))
        out.append(_single(rec) if single_instance(jb) else rec)
    return out


def architecture_effects(jb: JointBootstrap, metric: str, reference: str) -> list[dict]:
    """model - reference over matched (pipeline, arm), for every other model (no selection on test results)."""
    units = set(jb.units)
    models = sorted({u[2] for u in jb.units} - {reference})
    out = []
    for model in models:
        pairs = [((u[0], u[1], reference), u) for u in jb.units if u[2] == model and (u[0], u[1], reference) in units]
        out.append(_paired(jb, metric, "architecture", f"{model} - {reference}", pairs,
                           f"needs the reference model {reference}"))
    return out


def comparison(gen: dict, pre: dict, named: bool = False) -> dict:
    """|generator contrast| - |preprocessing| per replicate: does the generator matter more than preprocessing?
    ``pre`` is computed at the contrast's level; ``named``: the contrast is named (one of several)."""
    name = f"|{gen['contrast']}| - |preprocessing|" if named else "|generator| - |preprocessing|"
    family = (gen["level"], gen["simultaneous"])
    ids = {k: gen[k] for k in ("generator", "reference") if k in gen}
    if gen["status"] == "missing" or pre["status"] == "missing":
        return {**effect_record("generator_vs_preprocessing", gen["metric"], name, None, 0,
                                "needs both the generator and the preprocessing effect", family=family), **ids}
    values = np.abs(gen["_replicates"]) - np.abs(pre["_replicates"])
    rec = effect_record("generator_vs_preprocessing", gen["metric"], name, values, min(gen["n_pairs"], pre["n_pairs"]),
                        over=gen["resampled"], family=family)
    rec.update(ids)
    return _single(rec) if gen["status"] == SINGLE else rec


def factor_effects(jb: JointBootstrap, reference: str, generators: Sequence[str] = (),
                   reference_generator: str = "") -> list[dict]:
    """Per key metric: every generator contrast (vs the reference generator), preprocessing, each contrast's
    comparison with preprocessing, and every architecture contrast (vs the ``reference`` model). ``generators``:
    the study's [generate] generators (their order); ``reference_generator``: [report] reference_generator ("":
    DEFAULT_REFERENCE's rule). With several contrasts, they and their comparisons are simultaneous intervals."""
    fam = generator_family(jb, generators, reference_generator)
    effects = []
    for metric in KEY_METRICS:
        gens, pre = generator_effects(jb, metric, fam), preprocessing_effect(jb, metric)
        pre_at = pre if fam.family[0] == pre["level"] else preprocessing_effect(jb, metric, fam.family)
        cmps = [comparison(g, pre_at, len(gens) > 1) for g in gens]
        effects += [*gens, pre, *cmps, *architecture_effects(jb, metric, reference)]
    return effects


def delta_records(jb: JointBootstrap) -> list[dict]:
    """Each arm minus the real-only arm (same pipeline and model, pooled over seeds), with raw and Holm p."""
    units = set(jb.units)
    pairs = [((u[0], "real", u[2]), u) for u in jb.units if u[1] != "real" and (u[0], "real", u[2]) in units]
    arms = {u[1] for _, u in pairs}  # the label share pooled over the rows of one arm (pipelines x models)
    shares = {(arm, m): label_shares(pair_parts(jb, m, [p for p in pairs if p[1][1] == arm]))
              for arm in arms for m in DELTA_METRICS}
    rows = []
    for base, u in pairs:
        row = {"pipeline": u[0], "arm": u[1], "model": u[2], "n_seeds": jb.n_seeds[u], "n_instances": jb.n_instances[u],
               "resampled": resampled(jb, [base, u]),
               "status": SINGLE if u[1].startswith("synthetic") and jb.n_instances[u] < 2 else "ok"}
        for metric in DELTA_METRICS:
            values = contrast(jb, metric, [(base, u)], shares[(u[1], metric)])
            est, ci = interval(values)
            row[metric] = {"delta": est, "ci": ci, "p": bootstrap_p(values), "undefined_share": undefined_share(values)}
        rows.append(row)
    flat = [(r, m) for r in rows for m in DELTA_METRICS]
    for (r, m), adj in zip(flat, holm([r[m]["p"] for r, m in flat])):
        r[m]["p_holm"] = adj
    return rows


def public(effects: list[dict]) -> list[dict]:
    """Effects without their replicate arrays (for summary.json)."""
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in effects]
