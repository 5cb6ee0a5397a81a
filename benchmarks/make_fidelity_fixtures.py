"""Make tests/data/fidelity_parity.npz: FD (``compute_FD_with_reps``), KD (``compute_mmd`` with one subset of every
image) and precision/recall/density/coverage from dgm-eval's `compute_prdc` and
CMMD from the published PyTorch port of google-research's CMMD, on seeded feature arrays, so the CI tests
check ours against the references without their code.

The references are imported unmodified from checkouts named by environment variables (never copied):
  DGM_EVAL_PATH      a checkout of layer6ai-labs/dgm-eval (its dgm_eval/metrics/prdc.py is loaded)
  CMMD_PYTORCH_PATH  a checkout of sayakpaul/cmmd-pytorch (its distance.py is loaded)

The feature spaces' preprocessing is checked the same way: seeded uint8 images go through dgm-eval's
``DINOv2Encoder.transform`` (its ``clean_resize`` variant, and its default for the record) and through the CMMD
port's ``_resize_bicubic`` followed by CLIP's processor normalisation (the processor config's mean and std:
transformers itself is not needed, so its import in embedding.py is satisfied by an empty stand-in module), then
through one seeded random carrier network (timm ``vit_tiny_patch16_224`` at the space's input size); the carrier's
features are stored. dgm-eval's package ``__init__`` files import every encoder (open_clip and more); the two
modules used are loaded from the checkout without them.

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


CLIP_PROCESSOR = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def preprocessing_images() -> list[np.ndarray]:
    """Seeded square uint8 images of three sizes (shards hold square images)."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, size=(n, n, 3), dtype=np.uint8) for n in (64, 96, 331)]


def carrier(size: int):
    """The seeded random network both preprocessings feed (only the inputs differ)."""
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=size).eval()


def dgm_eval_dinov2():
    """dgm-eval's DINOv2Encoder class, loaded without its package __init__ files."""
    import sys
    import types

    root = Path(os.environ["DGM_EVAL_PATH"]) / "dgm_eval"
    for name, path in (("dgm_eval", root), ("dgm_eval.models", root / "models")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules.setdefault(name, package)
    from dgm_eval.models.dinov2 import DINOv2Encoder

    return DINOv2Encoder


def cmmd_resize():
    """The CMMD port's _resize_bicubic (embedding.py; its transformers import stood in by an empty module)."""
    import sys
    import types

    stand_in = types.ModuleType("transformers")
    stand_in.CLIPImageProcessor = stand_in.CLIPVisionModelWithProjection = None
    sys.modules.setdefault("transformers", stand_in)
    return load("CMMD_PYTORCH_PATH", "embedding.py")._resize_bicubic


def preprocessing(out: dict) -> None:
    """Carrier features of the references' preprocessing for the DINOv2 and CLIP spaces."""
    import torch
    from PIL import Image

    images = preprocessing_images()
    encoder = dgm_eval_dinov2().__new__(dgm_eval_dinov2())
    with torch.no_grad():
        for variant, clean in (("clean", True), ("default", False)):
            encoder.clean_resize = clean
            x = torch.stack([encoder.transform(Image.fromarray(img)) for img in images]).float()
            out[f"dinov2_{variant}_features"] = carrier(224)(x).numpy()
        resize = cmmd_resize()
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in CLIP_PROCESSOR)
        x = torch.cat([torch.from_numpy(resize(img[None].astype(np.float32) / 255, 336)).permute(0, 3, 1, 2)
                       for img in images])
        out["clip_features"] = carrier(336)(((x - mean) / std).float()).numpy()


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
    fd = load("DGM_EVAL_PATH", "dgm_eval/metrics/fd.py")
    mmd = load("DGM_EVAL_PATH", "dgm_eval/metrics/mmd.py")
    out["fd"] = np.float64(fd.compute_FD_with_reps(data["real"].astype(np.float64), data["fake"].astype(np.float64)))
    n = min(len(data["real"]), len(data["fake"]))  # one subset of every image: its draw only permutes them
    with contextlib.redirect_stderr(io.StringIO()):
        out["kd"] = np.float64(mmd.compute_mmd(data["real"][:n].astype(np.float64), data["fake"][:n].astype(np.float64),
                                               n_subsets=1, subset_size=n)[0])
    out["cmmd"] = np.float64(distance.mmd(data["emb_real"].astype(np.float64), data["emb_fake"].astype(np.float64)))
    out["cmmd_same"] = np.float64(distance.mmd(data["emb_real"].astype(np.float64),
                                               data["emb_real"].astype(np.float64)))
    preprocessing(out)
    out["sources"] = np.array([f"dgm-eval {revision('DGM_EVAL_PATH')} dgm_eval/metrics/prdc.py compute_prdc, "
                               "dgm_eval/models/dinov2.py DINOv2Encoder.transform",
                               f"cmmd-pytorch {revision('CMMD_PYTORCH_PATH')} distance.py mmd, "
                               "embedding.py _resize_bicubic"])
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={float(v):.9g}" for k, v in out.items()
                                            if np.ndim(v) == 0))


if __name__ == "__main__":
    main()
