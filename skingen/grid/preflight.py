"""A study checked whole before anything is submitted (``skingen run --check``; always before SLURM).

Checked, for the cells still to run: the data sources exist and their layout is detected; every asset
(classifier weights, metrics extractor, DDPM init) is in the cache with the sha256 recorded at fetch;
for the slurm executor the profile's partitions and account exist and, when it names a container,
``apptainer`` and the image; the results folder is writable and its file system has room for what the
cells will write (``disk.py``); no done cell holds a damaged file (``damage.py``). Each problem is one
line naming what to do.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from . import damage, disk
from .plan import STAGES, Cell
from .profile import Profile
from .spec import StudySpec
from .store import cell_state


@dataclass
class Preflight:
    """The disk table and one line per problem (none: the study may be submitted)."""

    table: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def source_problems(spec: StudySpec) -> tuple[list[str], disk.DataSize]:
    """Each data source exists and has a known layout; the images they hold (for the disk estimate)."""
    share = disk.SHARES.get(spec.classify.target_class, 0.2)
    if spec.data.phantom is not None:
        return [], disk.DataSize(spec.data.phantom.n, share)
    from ..data.ingest import READERS, detect_layout
    from ..data.records import IngestReport

    problems, images, target = [], 0, 0
    for source in map(Path, spec.data.sources):
        if not source.is_dir():
            problems.append(f"data.sources: {source}: no such folder; extract the dataset there or fix the path "
                            f"in {spec.path}")
            continue
        try:
            layout = detect_layout(source) if spec.data.source == "auto" else \
                ("isic" if spec.data.source.startswith("isic") else spec.data.source)
            records = READERS[layout](source, IngestReport(), modality=spec.data.milk10k_modality)
        except UserError as exc:
            problems.append(f"data.sources: {exc}")
            continue
        images += len(records)
        target += sum(1 for r in records if getattr(r, "label", None) == spec.classify.target_class)
    return problems, disk.DataSize(images, target / images if images else share)


def needed_assets(spec: StudySpec, todo: list[Cell]) -> dict[str | None, list[str]]:
    """Asset names per cache folder (None: $SKINGEN_ASSETS) that the cells still to run load."""
    from ..assets import ASSETS, base_assets, imported_assets

    stages = {c.stage for c in todo}
    needs: dict[str | None, list[str]] = {}
    if spec.classify.train.pretrained:
        models = sorted({c.config["train"]["model"] for c in todo if c.stage == "train_clf"})
        needs.setdefault(spec.classify.train.weights_dir, []).extend(models)
    g = spec.generate
    if stages & {"features", "gen_metrics"}:
        needs.setdefault(None, []).extend(e for e in g.metrics.spaces() if e in ASSETS)
    if any(c.stage == "train_gen" and c.config["generator"] == "ddpm" for c in todo) and g.ddpm.init_from:
        needs.setdefault(None, []).extend(n for n, files in ASSETS.items() if n.startswith("ddpm_")
                                          and any(Path(f.path).parent.name in g.ddpm.init_from for f in files))
    gan = any(c.stage == "train_gen" and c.config["generator"] == "stylegan2_ada" for c in todo)
    if gan and g.stylegan2_ada.init_from:
        needs.setdefault(None, []).extend(imported_assets(g.stylegan2_ada.init_from))
    if any(c.stage in ("train_gen", "sample") and c.config["generator"] == "sd_lora" for c in todo):
        needs.setdefault(None, []).extend(base_assets(g.sd_lora.base))
    return {cache: names for cache, names in needs.items() if names}


def asset_problems(spec: StudySpec, todo: list[Cell]) -> list[str]:
    """Missing assets and sha256 mismatches, each with the exact fetch command."""
    from ..assets import check

    return [p for cache, names in needed_assets(spec, todo).items() for p in check(names, cache)]


def _run(cmd: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return 127, ""
    except subprocess.TimeoutExpired:
        return 124, "timed out"
    return proc.returncode, proc.stdout + proc.stderr


def slurm_problems(profile: Profile, stages: list[str], where: str) -> list[str]:
    """The profile's partitions (of the stages to run) and accounts exist on this cluster."""
    code, out = _run(["sinfo", "-h", "-o", "%R"])
    if code == 127:
        return ["executor slurm: 'sinfo' not found; run on a SLURM login node, or use --executor local"]
    if code:
        return [f"executor slurm: 'sinfo' failed ({out.strip().splitlines()[-1] if out.strip() else code}); "
                "is the cluster reachable?"]
    known = set(out.split())
    problems = []
    wanted: dict[str, list[str]] = {}
    for stage in stages:
        res = profile.for_stage(stage)
        if res.partition:
            wanted.setdefault(res.partition, []).append(stage)
    for part, used in wanted.items():
        if part not in known:
            problems.append(f"{where}: partition {part!r} (stages {', '.join(used)}) is not on this cluster; "
                            f"its partitions: {', '.join(sorted(known))}")
    for account in sorted({profile.for_stage(s).account for s in stages} - {""}):
        code, out = _run(["sacctmgr", "-n", "-P", "show", "account", account, "format=account"])
        if code or account not in out.split():
            why = "sacctmgr not found" if code == 127 else out.strip().splitlines()[-1] if code and out.strip() else ""
            problems.append(f"{where}: account {account!r} unknown to sacctmgr{' (' + why + ')' if why else ''}; "
                            "'sacctmgr show associations user=$USER' lists yours")
    return problems


def container_problems(profile: Profile, stages: list[str], where: str) -> list[str]:
    """``apptainer`` and the image, when the profile runs cells in a container."""
    images = sorted({profile.for_stage(s).container for s in stages} - {""})
    problems = []
    if images and shutil.which("apptainer") is None:
        problems.append(f"{where}: container set but 'apptainer' is not on PATH; load its module or install it")
    for image in images:
        if not Path(image).is_file():
            problems.append(f"{where}: container {image}: not found; build it (containers/README.md) or fix the path")
    return problems


def results_problems(root: Path) -> list[str]:
    """The results folder (or the folder it will be made in) accepts a file."""
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise OSError(f"{probe} is not a folder")
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".skingen-check-"):
            pass
    except OSError as exc:
        return [f"results folder {root}: not writable ({exc.strerror or exc}); pass --out DIR on a writable "
                "file system"]
    return []


def _parallel(spec: StudySpec, kind: str, profile: Profile) -> int:
    if kind == "slurm":
        return profile.for_stage("train_clf").array_parallelism
    return 1 if kind == "debug" else spec.executor.max_parallel


def preflight(spec: StudySpec, cells: list[Cell], root: Path, kind: str, profile: Profile,
              stages: tuple[str, ...] = STAGES, marking: bool = False) -> Preflight:
    """Every check of the module docstring for the cells of ``stages`` not yet done; nothing is written but,
    with ``marking`` (a run about to submit), damage markers (see ``damage.py``)."""
    todo = [c for c in cells if c.stage in stages and cell_state(c, root) != "done"]
    used = [s for s in STAGES if any(c.stage == s for c in todo)]
    report = Preflight()
    if any(c.stage == "ingest" for c in todo):
        problems, data = source_problems(spec)
    else:  # ingested already: the sources may have moved; the split counts the images
        problems = []
        data = disk.DataSize(spec.data.phantom.n if spec.data.phantom else 0,
                             disk.SHARES.get(spec.classify.target_class, 0.2))
    data = _counted(root, cells, spec, data)
    report.problems += problems + asset_problems(spec, todo)
    where = f"profile {spec.executor.profile}"
    if kind == "slurm":  # the container wraps SLURM cells only
        report.problems += slurm_problems(profile, used, where) + container_problems(profile, used, where)
    report.problems += results_problems(root) + damage.scan(cells, root, marking)
    rows = disk.estimate(spec, [c for c in cells if c.stage in stages], {c.key for c in todo}, data,
                         _parallel(spec, kind, profile))
    free = disk.free_bytes(root)
    report.table = disk.table(rows, free, root)
    need = sum(r.bytes for r in rows)
    if need > free:
        report.problems.append(
            f"results folder {root}: the cells to run need about {disk.human(need)} but its file system has "
            f"{disk.human(free)} free; free space, pass --out on a larger file system"
            + ("" if spec.classify.train.keep_weights == "none" else
               ", or set [classify.train] keep_weights = \"none\""))
    return report


def _counted(root: Path, cells: list[Cell], spec: StudySpec, data: disk.DataSize) -> disk.DataSize:
    """Once the split is done, count the study's images and target class from split.csv."""
    import csv

    split = next((c for c in cells if c.stage == "split"), None)
    path = split.folder(root) / "split.csv" if split else None
    if path is None or not path.is_file():
        return data
    try:
        with open(path, newline="") as fh:
            labels = [row.get("label") for row in csv.DictReader(fh)]
    except (OSError, csv.Error, UnicodeDecodeError):
        return data
    share = labels.count(spec.classify.target_class) / len(labels) if labels else data.target_share
    return disk.DataSize(len(labels), share)


def check_or_raise(spec: StudySpec, cells: list[Cell], root: Path, kind: str, profile: Profile,
                   stages: tuple[str, ...] = STAGES, marking: bool = False) -> None:
    """Print the disk table; raise one UserError line per problem (nothing may be submitted then)."""
    report = preflight(spec, cells, root, kind, profile, stages, marking)
    print("\n".join(report.table))
    if report.problems:
        raise UserError("\n".join(report.problems))
    print(f"checks passed for the {kind} executor: data, assets, "
             + ("cluster, " if kind == "slurm" else "") + "results folder, disk")
