"""The answer to the study's question, per headline metric: the generator contrasts (each generator minus the
reference generator), the preprocessing effect, and |generator contrast| - |preprocessing| with its interval
("not resolved" unless that interval excludes 0). With several generator contrasts their intervals, and those of
their comparisons, are simultaneous (Bonferroni over the contrasts) and the verdict says which, if any, is resolved."""
from __future__ import annotations

from .effects import SINGLE, SINGLE_WHY
from .joint import JointBootstrap, level_words
from .stats import HEADLINE_METRICS
from .tables import target_word

PRETRAINING = "The generators differ in pretraining: the generator effect mixes architecture and pretraining."


def metric_name(metric: str, jb: JointBootstrap) -> str:
    """A headline metric as a reader names it (the one-vs-rest class spelled out)."""
    return {"macro_f1": "macro-F1", "mel_f1": f"{target_word(jb.target_name)} F1"}.get(metric, metric)


def _describe(e: dict) -> str:
    if e["status"] == "missing":
        return f"not estimable ({e.get('why', 'no cells')})"
    lo, hi = e["ci"]
    text = f"{e['effect']:+.3f} [{lo:+.3f}, {hi:+.3f}]" if lo is not None else f"{e['effect']:+.3f}"
    if e["status"] == "insufficient":
        text += f" — {e['status']}: {e['why']}"
    elif e["status"] == SINGLE:  # the conclusion says why, once
        text += f" — {SINGLE}"
    return text


def what_would_resolve(jb: JointBootstrap) -> str:
    """The study's sizes and the three ways to narrow its intervals."""
    seeds = max(jb.n_seeds.values(), default=0)
    synthetic = [n for u, n in jb.n_instances.items() if u[1].startswith("synthetic")]
    return (f"more classifier seeds (now {seeds}), more generator instances (now {max(synthetic, default=0)}) "
            f"or a larger test set (now {jb.n_images} images in {jb.n_clusters} clusters) would narrow it")


SINGLE_TEXT = (f"The generator comparison is insufficient: {SINGLE_WHY} = [0, 1, 2] to train each generator "
               "three times (the preprocessing effect here uses the arms without generated images).")


def _one_conclusion(cmp: dict, jb: JointBootstrap) -> str:
    """The conclusion of a study with one generator contrast."""
    if cmp["status"] == "missing":
        return "The comparison cannot be made with these cells."
    if cmp["status"] == SINGLE:
        return SINGLE_TEXT
    if cmp["status"] == "insufficient":
        return f"Insufficient data for the comparison ({cmp['why']}); {what_would_resolve(jb)}."
    if cmp["ci"][0] > 0:
        return "Resolved: the generator matters more than preprocessing (the interval excludes 0)."
    if cmp["ci"][1] < 0:
        return "Resolved: preprocessing matters more than the generator (the interval excludes 0)."
    return f"Not resolved: the interval includes 0; {what_would_resolve(jb)}."


def _excludes_zero(e: dict) -> bool:
    return e["status"] == "ok" and (e["ci"][0] > 0 or e["ci"][1] < 0)


def _family_conclusion(gens: list[dict], cmps: list[dict], jb: JointBootstrap) -> str:
    """The conclusion of a study with several generator contrasts: which comparison, if any, is resolved."""
    if any(g["status"] == SINGLE for g in gens):
        none = all(c["status"] == "missing" for c in cmps)
        return ("The comparisons cannot be made with these cells. " if none else "") + SINGLE_TEXT
    word = "simultaneous interval" if gens[0]["simultaneous"] else "interval"
    decided = [g["contrast"] for g in gens if _excludes_zero(g)]
    text = (f"Generator contrasts whose {word} excludes 0: {', '.join(decided)}. " if decided
            else f"No generator contrast's {word} excludes 0. " if any(g["status"] == "ok" for g in gens) else "")
    for c, g in zip(cmps, gens):
        if c["status"] == "insufficient":
            text += f"Insufficient data for the comparison of {g['contrast']} ({c['why']}). "
        elif _excludes_zero(c):
            text += (f"Resolved: the generator contrast {g['contrast']} matters more than preprocessing (its {word} "
                     "excludes 0). " if c["ci"][0] > 0 else
                     f"Resolved: preprocessing matters more than the generator contrast {g['contrast']} (its {word} "
                     "excludes 0). ")
    open_ = [g["contrast"] for c, g in zip(cmps, gens) if c["status"] == "ok" and not _excludes_zero(c)]
    if open_:
        text += f"Not resolved for {', '.join(open_)}: the interval includes 0; {what_would_resolve(jb)}."
    elif all(c["status"] == "missing" for c in cmps):
        text += "The comparisons cannot be made with these cells."
    return text.rstrip()


def _opening(gens: list[dict], pre: dict, cmps: list[dict], name: str, jb: JointBootstrap) -> str:
    if len(gens) == 1:
        return (f"On {name} (95 % {jb.n_boot}-replicate joint bootstrap): generator effect ({gens[0]['contrast']}) "
                f"{_describe(gens[0])}; preprocessing effect ({pre['contrast']}) {_describe(pre)}; "
                f"|generator| − |preprocessing| {_describe(cmps[0])}. ")
    level, how = gens[0]["level"], gens[0]["simultaneous"]
    family = (f"; the {len(gens)} generator contrasts and their comparisons with preprocessing at "
              f"{level_words(level)}, simultaneous ({how})" if how else "")
    each = "; ".join(f"generator effect ({g['contrast']}) {_describe(g)}, |{g['contrast']}| − |preprocessing| "
                     f"{_describe(c)}" for g, c in zip(gens, cmps))
    return (f"On {name} (95 % {jb.n_boot}-replicate joint bootstrap{family}): preprocessing effect "
            f"({pre['contrast']}) {_describe(pre)}; {each}. ")


def pretraining_note(gens: list[dict], starting: dict[str, str] | None) -> str:
    """PRETRAINING when the generators of the estimated contrasts start from different weights."""
    names = {n for g in gens if g["status"] != "missing" for n in (g.get("generator"), g.get("reference")) if n}
    weights = {starting[n] for n in names if starting and n in starting}
    return f" {PRETRAINING}" if len(weights) > 1 else ""


def verdict(effects: list[dict], metric: str, jb: JointBootstrap, starting: dict[str, str] | None = None) -> str:
    """One paragraph answering "generator or preprocessing?" on ``metric``; ``starting``: each generator's
    starting weights (the pretraining sentence when they differ)."""
    mine = [e for e in effects if e["metric"] == metric]
    gens = [e for e in mine if e["factor"] == "generator"]
    cmps = [e for e in mine if e["factor"] == "generator_vs_preprocessing"]
    pre = next((e for e in mine if e["factor"] == "preprocessing"), None)
    if not gens or pre is None or len(cmps) != len(gens):
        return f"On {metric_name(metric, jb)}: no factor effects were computed."
    text = _opening(gens, pre, cmps, metric_name(metric, jb), jb)
    text += _one_conclusion(cmps[0], jb) if len(gens) == 1 else _family_conclusion(gens, cmps, jb)
    note = gens[0].get("note")
    text += f" Note: {note}." if note else ""
    return text + pretraining_note(gens, starting) + small_test_set_note(jb)


def small_test_set_note(jb: JointBootstrap) -> str:
    """A warning when some class has fewer than 5 test clusters."""
    if not jb.small_strata:
        return ""
    listed = ", ".join(f"{c} {n}" for c, n in jb.small_strata.items())
    return (f" Caution: few test clusters in {listed} — intervals of class-averaged metrics cannot show the "
            "variability of so few lesions and can run narrow (in simulation 0.075 of null preprocessing "
            "intervals excluded 0 at 55 test images, against 0.05 nominal); a larger test set is the remedy.")


def verdicts(effects: list[dict], jb: JointBootstrap, starting: dict[str, str] | None = None) -> list[str]:
    """The verdict for each headline metric (macro-F1, melanoma F1)."""
    return [verdict(effects, m, jb, starting) for m in HEADLINE_METRICS]
