"""Cluster profiles (``slurm/profiles/*.toml``): default resources and per-stage overrides."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import from_dict, load_toml
from ..errors import UserError


@dataclass(frozen=True)
class Resources:
    """What one cell of a stage asks SLURM for."""

    partition: str = ""
    account: str = ""
    cpus_per_task: int = 1
    mem_gb: float = 2.0
    timeout_min: int = 60
    gpus_per_node: int = 0
    tasks_per_node: int = 0  # 0: one task per GPU (at least one)
    array_parallelism: int = 8
    container: str = ""
    container_binds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """Default resources and per-stage overrides."""

    defaults: Resources = field(default_factory=Resources)
    stages: dict = field(default_factory=dict)

    def for_stage(self, stage: str) -> Resources:
        """The resources of ``stage``: defaults updated by its table."""
        return replace(self.defaults, **self.stages.get(stage, {}))


def load_profile(path: str | os.PathLike) -> Profile:
    """Read a profile TOML ([defaults] + [stages.<stage>] tables), validated."""
    raw = load_toml(path)
    unknown = sorted(set(raw) - {"defaults", "stages"})
    if unknown:
        raise UserError(f"{path}: unknown table(s) {', '.join(unknown)}; a profile has [defaults] and [stages.*]")
    defaults = from_dict(Resources, raw.get("defaults", {}), f"{path} [defaults]")
    stages = {}
    for stage, table in raw.get("stages", {}).items():
        from_dict(Resources, table, f"{path} [stages.{stage}]")  # validates keys and types
        stages[stage] = table
    return Profile(defaults, stages)


def slurm_parameters(res: Resources, root: Path) -> dict:
    """submitit AutoExecutor parameters for a stage: one task per GPU, the container around python."""
    params = {"timeout_min": res.timeout_min, "slurm_partition": res.partition or None, "cpus_per_task": res.cpus_per_task,
              "mem_gb": res.mem_gb, "gpus_per_node": res.gpus_per_node or None,
              "tasks_per_node": tasks_per_node(res), "slurm_array_parallelism": res.array_parallelism}
    if res.account:
        params["slurm_account"] = res.account
    if res.container:
        params["slurm_python"] = container_python(res, root)
    return {k: v for k, v in params.items() if v is not None}


def tasks_per_node(res: Resources) -> int:
    """Processes per cell: as configured, else one per GPU (Accelerate runs one process per device)."""
    return res.tasks_per_node or max(1, res.gpus_per_node)


def container_python(res: Resources, root: Path) -> str:
    """``apptainer exec --nv --bind … IMAGE python``: cells run inside the study's image."""
    binds = [str(Path(root).resolve()), *res.container_binds]
    bind_args = " ".join(f"--bind {shlex.quote(b)}" for b in binds)
    nv = "--nv " if res.gpus_per_node else ""
    return f"apptainer exec {nv}{bind_args} --env HF_HUB_OFFLINE=1 {shlex.quote(res.container)} python"
