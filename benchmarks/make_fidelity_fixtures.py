"""Make tests/data/fidelity_parity.npz: precision/recall/density/coverage from dgm-eval's `compute_prdc` and
CMMD from the published PyTorch port of google-research's CMMD, on seeded feature arrays, so the CI tests
check ours against the references without their code.

The references are imported unmodified from checkouts named by environment variables (never copied):
  DGM_EVAL_PATH      a checkout of layer6ai-labs/dgm-eval (its dgm_eval/metrics/prdc.py is loaded)
  CMMD_PYTORCH_PATH  a checkout of sayakpaul/cmmd-pytorch (its distance.py is loaded)

Usage: DGM_EVAL_PATH=... CMMD_PYTORCH_PATH=... python benchmarks/make_fidelity_fixtures.py [--out tests/data/fidelity_parity.npz]
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import subprocess
from pathlib import Path

import numpy as np


def load(env: str, relative: str):
    """The module at $env/relative, loaded from its file."""
    root = os.environ.get(env)
    if not root or not (Path(root) / relative).is_file():
        raise SystemExit(f"set {env} to a checkout holding {relative}")
    spec = importlib.util.spec_from_file_location(Path(relative).stem + "_reference", Path(root) / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def revision(env: str) -> str:
    """The checkout's commit, when it is a git work tree (else 'unknown')."""
    try:
        return subprocess.run(["git", "-C", os.environ[env], "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return os.environ.get(env.replace("_PATH", "_COMMIT"), "unknown")


def features(rng: np.random.Generator) -> dict:
    """Seeded real/fake sets: Gaussian features (an offset, wider fake cloud) and L2-normalised embeddings."""
    real = rng.normal(size=(300, 64)).astype(np.float32)
    fake = (0.3 + 1.2 * rng.normal(size=(250, 64))).astype(np.float32)
    emb_real = rng.normal(size=(200, 96))
    emb_fake = rng.normal(size=(180, 96)) + 0.4 * rng.normal(size=(1, 96))
    emb_real /= np.linalg.norm(emb_real, axis=1, keepdims=True)
    emb_fake /= np.linalg.norm(emb_fake, axis=1, keepdims=True)
    return {"real": real, "fake": fake, "emb_real": emb_real.astype(np.float32), "emb_fake": emb_fake.astype(np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="tests/data/fidelity_parity.npz")
    args = parser.parse_args()
    prdc = load("DGM_EVAL_PATH", "dgm_eval/metrics/prdc.py")
    distance = load("CMMD_PYTORCH_PATH", "distance.py")
    data = features(np.random.default_rng(2026))
    out = dict(data)
    for k in (3, 5):
        with contextlib.redirect_stderr(io.StringIO()):
            ref = prdc.compute_prdc(data["real"], data["fake"], nearest_k=k)
        for name in ("precision", "recall", "density", "coverage"):
            out[f"{name}_k{k}"] = np.float64(ref[name])
    out["cmmd"] = np.float64(distance.mmd(data["emb_real"].astype(np.float64), data["emb_fake"].astype(np.float64)))
    out["cmmd_same"] = np.float64(distance.mmd(data["emb_real"].astype(np.float64),
                                               data["emb_real"].astype(np.float64)))
    out["sources"] = np.array([f"dgm-eval {revision('DGM_EVAL_PATH')} dgm_eval/metrics/prdc.py compute_prdc",
                               f"cmmd-pytorch {revision('CMMD_PYTORCH_PATH')} distance.py mmd"])
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={float(v):.9g}" for k, v in out.items()
                                            if np.ndim(v) == 0))


if __name__ == "__main__":
    main()
