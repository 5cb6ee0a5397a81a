"""Shared fixtures: offline hub, a small phantom dataset, and an in-process CLI runner."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from skingen.cli import main  # noqa: E402
from skingen.data.phantom import make_phantom  # noqa: E402


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    """120 phantom images (64 px short side), seed 7; shared read-only by the whole session."""
    return make_phantom(tmp_path_factory.mktemp("phantom"), 120, size=64, seed=7)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run ``skingen ARGS`` in process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def phantom_shards(phantom_dir, tmp_path_factory):
    """The session phantom packed at 32 px: a folder with train/val/test shards."""
    from skingen.data.ingest import ingest
    from skingen.data.pack import pack
    from skingen.data.split import SplitConfig, make_split

    root = tmp_path_factory.mktemp("shards")
    ingest([phantom_dir], root / "manifest.csv")
    make_split(root / "manifest.csv", root / "split.csv", SplitConfig(seed=0))
    pack(root / "split.csv", root / "basic", 32)
    return root / "basic"


@pytest.fixture(scope="session")
def slurm_cluster():
    """The single-node SLURM cluster of slurm/local-cluster (make test starts it; started here if not)."""
    import shutil
    import subprocess
    from pathlib import Path

    def up() -> bool:
        return shutil.which("sinfo") is not None and subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip() in ("idle", "mix", "alloc")

    if not up():
        script = Path(__file__).resolve().parent.parent / "slurm" / "local-cluster" / "cluster.sh"
        proc = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True)
        if proc.returncode != 0 or not up():
            pytest.fail(f"no SLURM cluster: {script} start failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return True


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """jobs/smoke.toml run to the end with the debug executor (report included)."""
    from builders import study_variant
    from skingen.grid.run import run_study

    tmp = tmp_path_factory.mktemp("smoke")
    run_study(study_variant(tmp), executor="debug", out=tmp / "results")
    return tmp / "results"
