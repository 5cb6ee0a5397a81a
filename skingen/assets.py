"""Offline assets: ``skingen assets fetch`` fills one cache dir on a machine with internet, ``check`` verifies it.

Jobs never download (compute nodes are offline): extractors and classifiers read their weights from
the cache and fail with the fetch command when a file is missing. ``fetch`` records each file's
sha256 in ``assets.json`` in the cache; ``check`` recomputes them. A mirror (``--mirror URL`` or
``$SKINGEN_ASSET_MIRROR``) serves ``URL/<host>/<path>`` in place of ``https://<host>/<path>``,
for sites with an internal mirror (and for the tests, which serve files themselves). An NVIDIA network
pickle (``imported_to``) is imported into our StyleGAN2 snapshot format right after it is fetched, read
without executing it (``generators/stylegan2/nvidia_pickle.py``); ``init_from`` names the snapshot folder.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .atomic import atomic_path, write_json
from .errors import UserError
from .metrics.extractors import assets_dir, sha256_file

log = logging.getLogger(__name__)
HF = "https://huggingface.co"
NV = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
FFHQ256 = "ffhq-res256-mirror-paper256-noaug"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_FILES = ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
              "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
              "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
              "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors")


@dataclass(frozen=True)
class Asset:
    """One file of the cache: where it lives under the cache dir and where it comes from."""

    path: str
    url: str
    sha256: str | None = None  # pinned checksum, verified on fetch when known
    imported_to: str | None = None  # an NVIDIA network pickle: our snapshot folder, written after the fetch


def _timm(timm_name: str, hub_id: str) -> Asset:
    return Asset(f"timm/{timm_name}.safetensors", f"{HF}/timm/{hub_id}/resolve/main/model.safetensors")


ASSETS: dict[str, list[Asset]] = {
    "inception": [Asset("inception/inception-2015-12-05.pt", f"{NV}/metrics/inception-2015-12-05.pt")],
    "dinov2_vits14": [_timm("vit_small_patch14_dinov2.lvd142m", "vit_small_patch14_dinov2.lvd142m")],
    "dinov2_vitl14": [_timm("vit_large_patch14_dinov2.lvd142m", "vit_large_patch14_dinov2.lvd142m")],
    "clip_vitl14_336": [_timm("vit_large_patch14_clip_336.openai", "vit_large_patch14_clip_336.openai")],
    "resnet18": [_timm("resnet18", "resnet18.a1_in1k")],
    "resnet50": [_timm("resnet50", "resnet50.a1_in1k")],
    "vit_b16": [_timm("vit_base_patch16_224", "vit_base_patch16_224.augreg2_in21k_ft_in1k")],
    "efficientnet_b0": [_timm("efficientnet_b0", "efficientnet_b0.ra_in1k")],
    "vgg16": [_timm("vgg16", "vgg16.tv_in1k")],
    "ddpm_celebahq_256": [Asset(f"diffusers/ddpm-celebahq-256/{f}", f"{HF}/google/ddpm-celebahq-256/resolve/main/{f}")
                          for f in ("config.json", "diffusion_pytorch_model.safetensors")],
    # Stable Diffusion 1.5 (CreativeML OpenRAIL-M: no medical advice; research benchmarking only), sd_lora's base.
    "sd15": [Asset(f"diffusers/stable-diffusion-v1-5/{f}", f"{HF}/{SD15}/resolve/main/{f}") for f in SD15_FILES],
    # The network the original study resumed (NVIDIA, non-commercial licence: the user fetches it). No sha256 is
    # pinned (not published): the first fetch records it in assets.json and 'check' verifies it from then on.
    "stylegan2_ffhq256": [Asset(f"stylegan2/{FFHQ256}.pkl", f"{NV}/transfer-learning-source-nets/{FFHQ256}.pkl",
                                imported_to=f"stylegan2/{FFHQ256}")],
}


def _source(url: str, mirror: str | None) -> str:
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _download(url: str, target: Path, expected: str | None) -> str:
    """Stream ``url`` into ``target`` atomically; return its sha256 (checked against ``expected``)."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, atomic_path(target) as tmp, open(tmp, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    fh.write(block)
                    digest.update(block)
                    bar.update(len(block))
            fh.flush()
            if expected and digest.hexdigest() != expected:
                raise UserError(f"{url}: sha256 {digest.hexdigest()} differs from the pinned {expected}; "
                                "the file changed upstream or the mirror is stale")
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"{url}: download failed ({exc}); run 'skingen assets fetch' where there is internet, "
                        "or pass --mirror") from None
    return digest.hexdigest()


def _manifest_path(cache: Path) -> Path:
    return cache / "assets.json"


def _read_manifest(cache: Path) -> dict:
    path = _manifest_path(cache)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path}: not valid JSON; delete it and run 'skingen assets fetch' again") from None


def study_assets(study: str | os.PathLike) -> list[str]:
    """The assets a study needs: its pretrained classifiers, its metrics extractor, its DDPM init weights."""
    from .grid.spec import load_study

    spec = load_study(study)
    names = list(spec.classify.models) if spec.classify.train.pretrained else []
    gen = spec.generate
    if gen.generators and gen.metrics.extractor in ASSETS:
        names.append(gen.metrics.extractor)
    if "ddpm" in gen.generators and gen.ddpm.init_from:
        names += [n for n, files in ASSETS.items() if n.startswith("ddpm_")
                  and any(Path(f.path).parent.name in gen.ddpm.init_from for f in files)]
    if "stylegan2_ada" in gen.generators and gen.stylegan2_ada.init_from:
        names += imported_assets(gen.stylegan2_ada.init_from)
    if "sd_lora" in gen.generators:
        names += base_assets(gen.sd_lora.base)
    return list(dict.fromkeys(names))


def base_assets(base: str) -> list[str]:
    """The assets whose folder an sd_lora ``base`` names (none for the stand-in or a folder of the user's)."""
    return [n for n, files in ASSETS.items() if n.startswith("sd") and base.startswith("/assets/")
            and any(base.rstrip("/") == f"/assets/{Path(f.path).parts[0]}/{Path(f.path).parts[1]}" for f in files)]


def imported_assets(init_from: str) -> list[str]:
    """The assets whose imported snapshot folder a StyleGAN2 ``init_from`` names."""
    return [n for n, files in ASSETS.items()
            if any(f.imported_to and Path(f.imported_to).name in init_from for f in files)]


def _select(names: list[str] | None) -> list[str]:
    names = names or list(ASSETS)
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise UserError(f"asset(s) {', '.join(unknown)} unknown; available: {', '.join(ASSETS)}")
    return names


def fetch(names: list[str] | None = None, cache: str | os.PathLike | None = None, mirror: str | None = None,
          force: bool = False) -> dict:
    """Download the named assets (default: all) into the cache; record sha256s in ``assets.json``."""
    root = assets_dir(cache)
    mirror = mirror or os.environ.get("SKINGEN_ASSET_MIRROR")
    manifest = _read_manifest(root)
    for name in _select(names):
        for asset in ASSETS[name]:
            target = root / asset.path
            fresh = not (target.is_file() and not force and asset.path in manifest)
            if not fresh:
                log.info("%s: already in the cache (%s)", name, target)
            else:
                url = _source(asset.url, mirror)
                log.info("fetching %s <- %s", target, url)
                manifest[asset.path] = {"asset": name, "url": asset.url, "sha256": _download(url, target, asset.sha256),
                                        "fetched": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
                write_json(_manifest_path(root), manifest)
            if asset.imported_to and (fresh or _import_problem(root, asset, manifest)):
                _import(root, asset, manifest)
    return manifest


def _import(root: Path, asset: Asset, manifest: dict) -> None:
    """An NVIDIA network pickle -> our snapshot folder (read without executing it)."""
    from .generators.stylegan2.nvidia_pickle import import_nvidia_pickle

    log.info("importing %s -> %s", asset.path, asset.imported_to)
    import_nvidia_pickle(root / asset.path, root / asset.imported_to)
    manifest[asset.path]["imported_to"] = asset.imported_to
    write_json(_manifest_path(root), manifest)


def _import_problem(root: Path, asset: Asset, manifest: dict) -> str | None:
    """Why the imported snapshot of ``asset`` is unusable (missing, or imported from another file), or None."""
    meta = root / asset.imported_to / "network.json"
    if not meta.is_file():
        return f"{meta.parent}: not imported"
    source = json.loads(meta.read_text()).get("imported_from", {})
    if source.get("sha256") != manifest.get(asset.path, {}).get("sha256"):
        return f"{meta.parent}: imported from another file than {asset.path}"
    return None


def check(names: list[str] | None = None, cache: str | os.PathLike | None = None) -> list[str]:
    """Problems with the named assets (default: every fetched one): missing files or sha256 mismatches."""
    root = assets_dir(cache)
    manifest = _read_manifest(root)
    if names:
        wanted = [a for n in _select(names) for a in ASSETS[n]]
    else:
        wanted = [a for files in ASSETS.values() for a in files if a.path in manifest]
        if not wanted:
            return [f"{root}: no assets fetched yet; run 'skingen assets fetch' (all) or '--only NAME'"]
    problems = []
    for asset in wanted:
        target, entry = root / asset.path, manifest.get(asset.path)
        if not target.is_file():
            problems.append(f"{target}: missing; run 'skingen assets fetch --only {_owner(asset)}'")
        elif entry is None:
            problems.append(f"{target}: not recorded in {_manifest_path(root)}; run 'skingen assets fetch --force "
                            f"--only {_owner(asset)}'")
        elif sha256_file(target) != entry["sha256"]:
            problems.append(f"{target}: sha256 differs from the one recorded at fetch; "
                            f"run 'skingen assets fetch --force --only {_owner(asset)}'")
        elif asset.imported_to and (problem := _import_problem(root, asset, manifest)):
            problems.append(f"{problem}; run 'skingen assets fetch --only {_owner(asset)}'")
    return problems


def _owner(asset: Asset) -> str:
    return next(name for name, files in ASSETS.items() if asset in files)
