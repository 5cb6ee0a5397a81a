"""The answer to the study's question, per headline metric: generator effect, preprocessing effect,
and |generator| - |preprocessing| with its interval ("not resolved" unless that interval excludes 0)."""
from __future__ import annotations

from .effects import SINGLE, SINGLE_WHY
from .joint import JointBootstrap
from .stats import HEADLINE_METRICS
from .tables import target_word


def metric_name(metric: str, jb: JointBootstrap) -> str:
    """A headline metric as a reader names it (the one-vs-rest class spelled out)."""
    return {"macro_f1": "macro-F1", "mel_f1": f"{target_word(jb.target_name)} F1"}.get(metric, metric)


def _describe(e: dict) -> str:
    if e["status"] == "missing":
        return f"not estimable ({e.get('why', 'no cells')})"
    lo, hi = e["ci"]
    text = f"{e['effect']:+.3f} [{lo:+.3f}, {hi:+.3f}]" if lo is not None else f"{e['effect']:+.3f}"
    if e["status"] in ("insufficient", SINGLE):
        text += f" — {e['status']}: {e['why']}"
    return text


def what_would_resolve(jb: JointBootstrap) -> str:
    """The study's sizes and the three ways to narrow its intervals."""
    seeds = max(jb.n_seeds.values(), default=0)
    synthetic = [n for u, n in jb.n_instances.items() if u[1].startswith("synthetic")]
    return (f"more classifier seeds (now {seeds}), more generator instances (now {max(synthetic, default=0)}) "
            f"or a larger test set (now {jb.n_images} images in {jb.n_clusters} clusters) would narrow it")


def verdict(effects: list[dict], metric: str, jb: JointBootstrap) -> str:
    """One paragraph answering "generator or preprocessing?" on ``metric``."""
    pick = {e["factor"]: e for e in effects if e["metric"] == metric}
    gen, pre, cmp = pick.get("generator"), pick.get("preprocessing"), pick.get("generator_vs_preprocessing")
    if gen is None or pre is None or cmp is None:
        return f"On {metric_name(metric, jb)}: no factor effects were computed."
    text = (f"On {metric_name(metric, jb)} (95 % {jb.n_boot}-replicate joint bootstrap): generator effect ({gen['contrast']}) "
            f"{_describe(gen)}; preprocessing effect ({pre['contrast']}) {_describe(pre)}; "
            f"|generator| − |preprocessing| {_describe(cmp)}. ")
    if cmp["status"] == "missing":
        text += "The comparison cannot be made with these cells."
    elif cmp["status"] == SINGLE:
        text += (f"The generator comparison is insufficient: {SINGLE_WHY} = [0, 1, 2] to train each generator "
                 "three times (the preprocessing effect here uses the arms without generated images).")
    elif cmp["status"] == "insufficient":
        text += f"Insufficient data for the comparison ({cmp['why']}); {what_would_resolve(jb)}."
    elif cmp["ci"][0] > 0:
        text += "Resolved: the generator matters more than preprocessing (the interval excludes 0)."
    elif cmp["ci"][1] < 0:
        text += "Resolved: preprocessing matters more than the generator (the interval excludes 0)."
    else:
        text += f"Not resolved: the interval includes 0; {what_would_resolve(jb)}."
    return text + small_test_set_note(jb)


def small_test_set_note(jb: JointBootstrap) -> str:
    """A warning when some class has fewer than 5 test clusters."""
    if not jb.small_strata:
        return ""
    listed = ", ".join(f"{c} {n}" for c, n in jb.small_strata.items())
    return (f" Caution: few test clusters in {listed} — intervals of class-averaged metrics cannot show the "
            "variability of so few lesions and run narrow (in simulation 0.09 of null preprocessing intervals "
            "excluded 0 at 55 test images); a larger test set is the remedy.")


def verdicts(effects: list[dict], jb: JointBootstrap) -> list[str]:
    """The verdict for each headline metric (macro-F1, melanoma F1)."""
    return [verdict(effects, m, jb) for m in HEADLINE_METRICS]
