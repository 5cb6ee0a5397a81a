"""Do the feature spaces agree? For each pipeline and each generator minus the reference generator (the generative
table's difference rows, :func:`.generative.reference_pairs`), the FD difference in every space the study scored,
which generator each space ranks first (only where the interval excludes 0), and a sentence wherever two spaces
rank the pair in opposite orders or one decides and another does not."""
from __future__ import annotations

from collections import defaultdict

from .tables import Table


def _sig(value: float) -> str:
    """4 significant digits: FD differences span 1e-4 (stand-in spaces) to 1e2 (Inception)."""
    return f"{value:.4g}"


def _order(d: dict) -> str | None:
    """The generator this difference ranks first (lower FD), or None when its interval includes 0."""
    lo, hi = d["ci"]
    return d["a"] if hi < 0 else d["b"] if lo > 0 else None


def agreement(differences: list[dict]) -> tuple[Table | None, list[str]]:
    """The agreement table (None with fewer than two spaces) and the sentences on disagreements."""
    pairs: dict = defaultdict(dict)
    for d in differences:
        pairs[(d["pipeline"], d["a"], d["b"])][d["space"]] = d
    spaces = list(dict.fromkeys(d["space"] for d in differences))
    if len(spaces) < 2:
        return None, []
    body, sentences = [], []
    for (pipe, a, b), by_space in pairs.items():
        row = [pipe, f"{a} − {b}"]
        for space in spaces:
            d = by_space.get(space)
            row.append("—" if d is None else f"{_sig(d['estimate'])} [{_sig(d['ci'][0])}, {_sig(d['ci'][1])}] → "
                                             f"{_order(d) or 'no order'}")
        body.append(row)
        sentences += _sentence(pipe, a, b, by_space)
    note = ("FD(a) − FD(b), a a generator and b the reference generator, against the same test reals at matched N in "
            "each space, with its shifted joint-bootstrap interval; '→ X' names the generator the space ranks first "
            "(lower FD) when the interval excludes 0.")
    return Table("feature_space_agreement", "Do the feature spaces agree on the generator ranking?",
                 ["Pipeline", "Difference"] + [f"{s}: FD difference [95 % CI]" for s in spaces], body, note), sentences


def _sentence(pipe: str, a: str, b: str, by_space: dict) -> list[str]:
    ranks: dict = defaultdict(list)
    for space, d in by_space.items():
        ranks[_order(d)].append(space)
    decided = [g for g in ranks if g is not None]
    if len(decided) == 2:
        first, second = decided
        return [f"{pipe}: the spaces disagree — {' and '.join(ranks[first])} rank{'s' * (len(ranks[first]) == 1)} "
                f"{first} first, {' and '.join(ranks[second])} rank{'s' * (len(ranks[second]) == 1)} {second} first, "
                "every one of these intervals excluding 0."]
    if len(decided) == 1 and ranks[None]:
        g = decided[0]
        return [f"{pipe}: {' and '.join(ranks[g])} rank{'s' * (len(ranks[g]) == 1)} {g} first (interval excluding 0); "
                f"{' and '.join(ranks[None])} cannot order {a} and {b}."]
    return []
