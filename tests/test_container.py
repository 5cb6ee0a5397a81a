"""Containers: the Dockerfile lints clean, the Apptainer definition is complete, profiles build the
container command, and (marker ``container``, ``make test-container``) the image builds and runs here."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skingen import __version__
from skingen.grid.profile import load_profile, slurm_parameters

from builders import REPO

HADOLINT = Path(sys.executable).with_name("hadolint")
RUN_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
TAG = "localhost/skingen:test"


def test_dockerfile_is_hadolint_clean():
    r = subprocess.run([str(HADOLINT), "--no-color", str(REPO / "containers/Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (REPO / "containers/Dockerfile").read_text()
    assert "USER 1000:1000" in text and 'ENTRYPOINT ["skingen"]' in text and "HF_HUB_OFFLINE=1" in text
    assert re.search(r"^ARG BASE_IMAGE=.*cuda.*runtime", text, re.M)  # clusters get a CUDA runtime base by default


def test_build_context_excludes_the_venv_and_results():
    lines = (REPO / ".containerignore").read_text().splitlines()
    ignore = [line for line in lines if line and not line.startswith("#")]
    assert ignore[0] == "*" and "!.venv" not in ignore and "!skingen" in ignore
    assert (REPO / ".dockerignore").read_text() == (REPO / ".containerignore").read_text()
    copied = re.findall(r"^COPY (?!--from)(\S+)", (REPO / "containers/Dockerfile").read_text(), re.M)
    assert all(f"!{path.rstrip('/')}" in ignore for path in copied), copied  # everything copied is in the context


def test_apptainer_definition_is_complete():
    text = (REPO / "containers/skingen.def").read_text()
    sections = set(re.findall(r"^%(\w+)", text, re.M))
    assert {"arguments", "environment", "runscript", "test", "labels", "help"} <= sections
    assert re.search(r"^Bootstrap: \{\{ SOURCE \}\}", text, re.M) and "SOURCE=docker-archive" in text
    assert f"VERSION={__version__}" in text and 'exec skingen "$@"' in text
    assert "HF_HUB_OFFLINE=1" in text and "PYTHONNOUSERSITE=1" in text


def test_build_script_command(tmp_path):
    fake = tmp_path / "bin" / "podman"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho podman \"$@\"\n")
    fake.chmod(0o755)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "PIP_CERT": "/etc/ssl/certs/ca.crt",
           "PIP_FIND_LINKS": str(wheels)}
    r = subprocess.run(["bash", str(REPO / "containers/build.sh"), "--base", "localhost/b:1", "--dry-run"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "--build-arg BASE_IMAGE=localhost/b:1" in r.stdout and f"-t localhost/skingen:{__version__}" in r.stdout
    assert "--isolation chroot" in r.stdout and "-v /etc/ssl/certs/ca.crt:/host-ca.crt:ro" in r.stdout
    assert f"-v {wheels}:{wheels}:ro" in r.stdout and f"PIP_FIND_LINKS={wheels}" in r.stdout
    r = subprocess.run(["bash", str(REPO / "containers/build.sh"), "--bogus"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr


def test_profile_with_a_container_runs_cells_through_apptainer(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('[defaults]\ncontainer = "/img/skingen.sif"\ncontainer_binds = ["/data/derm", "/c:/assets"]\n'
                       '[stages.train_clf]\ngpus_per_node = 2\n')
    prof = load_profile(profile)
    gpu = slurm_parameters(prof.for_stage("train_clf"), tmp_path / "results")
    cpu = slurm_parameters(prof.for_stage("pack"), tmp_path / "results")
    root = (tmp_path / "results").resolve()
    assert gpu["slurm_python"] == (f"apptainer exec --nv --bind {root} --bind /data/derm --bind /c:/assets "
                                   "--env HF_HUB_OFFLINE=1 /img/skingen.sif python")
    assert cpu["slurm_python"].startswith(f"apptainer exec --bind {root} ") and "--nv" not in cpu["slurm_python"]
    assert gpu["tasks_per_node"] == 2 and gpu["gpus_per_node"] == 2


def _podman(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.container
def test_image_builds_and_runs_the_smoke_data_stages(tmp_path, cli):
    assert shutil.which("podman"), "podman missing: run tests/container-deps.sh (make test-container does)"
    r = subprocess.run(["bash", str(REPO / "containers/make-base.sh")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PIP_CERT": os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")}
    r = subprocess.run(["bash", str(REPO / "containers/build.sh"), "--base", "localhost/skingen-base:bookworm",
                        "--tag", TAG], capture_output=True, text=True, env=env, timeout=2400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = _podman("run", "--rm", *RUN_FLAGS, TAG, "--help")
    assert r.returncode == 0 and "SkinGenBench" in r.stdout, r.stderr
    r = _podman("run", "--rm", *RUN_FLAGS, "--entrypoint", "id", TAG, "-u")
    assert r.stdout.strip() == "1000"  # non-root
    data, results = tmp_path / "data", tmp_path / "results"
    assert cli("data", "phantom", "--out", data, "--n", "24", "--size", "48").code == 0
    results.mkdir()
    os.chown(results, 1000, 1000)
    mounts = ["-v", f"{data}:/data:ro", "-v", f"{results}:/results"]
    r = _podman("run", "--rm", *RUN_FLAGS, *mounts, TAG, "data", "ingest", "/data", "--out", "/results/manifest.csv")
    assert r.returncode == 0, r.stderr
    assert len((results / "manifest.csv").read_text().splitlines()) == 25
    r = _podman("run", "--rm", *RUN_FLAGS, *mounts, TAG, "run", "/opt/skingen/jobs/smoke.toml", "--executor", "debug",
                "--until", "pack", "--out", "/results/smoke")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    shards = list((results / "smoke" / "pack").glob("*/train.h5"))
    assert len(shards) == 1 and (shards[0].parent / "DONE").is_file()
    assert shards[0].stat().st_uid == 1000  # written by the image's user, visible on the host
    assert not list((results / "smoke").glob("train_clf/*/DONE"))  # --until pack stopped there
