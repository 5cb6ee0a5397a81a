"""Network snapshots: G_ema weights as safetensors + ``network.json``; loading never unpickles.

``discriminator.safetensors`` (D) sits beside them for transfer, and ``generator.safetensors`` (the training
G) in snapshots imported from NVIDIA's pickles; ``init_from`` copies them by name (:func:`load_for_transfer`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...atomic import atomic_path, write_json
from ...errors import UserError
from ...metrics.extractors import asset_path
from ..common import save_grid
from .networks import Generator, NetworkConfig

GENERATOR_FILE = "generator.safetensors"  # the training G, when a snapshot holds it (imported pickles)


def _save_weights(module: torch.nn.Module, path: Path) -> None:
    import safetensors.torch

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(state, str(tmp))


def save_snapshot(G: Generator, folder: Path, meta: dict, grid_png: Path | None = None, grid_images: int = 0,
                  psi: float = 0.8, seed: int = 0, D: torch.nn.Module | None = None,
                  class_index: int | None = None) -> None:
    """Write ``folder/network.safetensors`` (G_ema), ``discriminator.safetensors`` (for transfer) and
    ``network.json`` (architecture, step, ...), and a sample grid."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_weights(G, folder / "network.safetensors")
    if D is not None:
        _save_weights(D, folder / "discriminator.safetensors")
    write_json(folder / "network.json", {"network": G.config_dict(), **meta})
    if grid_png is not None and grid_images:
        images = generate(G, np.arange(grid_images) + seed * 100_000, psi=psi, class_index=class_index)
        save_grid(images, grid_png)


def load_generator(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """The snapshot's generator (eval mode) and its metadata."""
    import safetensors.torch

    folder = Path(folder)
    meta_path, weights = folder / "network.json", folder / "network.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{folder}: no StyleGAN2 snapshot (network.json + network.safetensors); train the cell first")
    meta = json.loads(meta_path.read_text())
    G = Generator(NetworkConfig(**meta["network"]))
    G.load_state_dict(safetensors.torch.load_file(str(weights)))
    return G.to(device).eval().requires_grad_(False), meta


def copy_by_name(source: dict[str, torch.Tensor], source_resolution: int, module: torch.nn.Module, kind: str) -> dict:
    """Copy into ``module`` every tensor of ``source`` (our names at ``source_resolution``) whose reference
    name is also ``module``'s, with the same shape, as the reference's resume does; the rest keep their init.
    Returns the names ``copied`` and ``kept_init`` (ours), ``skipped`` (the source's) and ``shape_differs``."""
    from .nvidia_names import to_reference

    src = {to_reference(n, kind, source_resolution): (n, t) for n, t in source.items()}
    res = module.cfg.resolution
    record: dict = {"copied": [], "kept_init": [], "skipped": [], "shape_differs": {}}
    used = set()
    with torch.no_grad():
        for name, tensor in module.state_dict().items():  # detached views of the module's own tensors
            ref = to_reference(name, kind, res)
            src_name, src_tensor = src.get(ref, (None, None))
            if src_tensor is not None and tuple(src_tensor.shape) == tuple(tensor.shape):
                tensor.copy_(src_tensor)
                record["copied"].append(name)
                used.add(ref)
                continue
            record["kept_init"].append(name)
            if src_tensor is not None:
                record["shape_differs"][name] = [list(src_tensor.shape), list(tensor.shape)]
    record["skipped"] = [n for ref, (n, _) in src.items() if ref not in used]
    return record


def load_for_transfer(folder: str | Path, G: torch.nn.Module, D: torch.nn.Module,
                      G_ema: torch.nn.Module | None = None) -> dict:
    """Start a run from a snapshot (ours or an imported NVIDIA pickle) by name, as the reference resumes:
    G_ema from ``network.safetensors``, G from ``generator.safetensors`` when saved (else G_ema's), D from
    ``discriminator.safetensors`` when saved. Returns what was copied, kept and skipped per network."""
    import safetensors.torch

    folder = asset_path(folder)
    weights = folder / "network.safetensors"
    if not weights.is_file() or not (folder / "network.json").is_file():
        raise UserError(f"init_from {folder}: no network.safetensors + network.json; give a StyleGAN2 cell's snapshot/ "
                        "folder or one made by 'skingen gen import-nvidia'")
    meta = json.loads((folder / "network.json").read_text())
    trained = folder / GENERATOR_FILE
    plan = [("G", G, trained if trained.is_file() else weights), ("G_ema", G_ema, weights),
            ("D", D, folder / "discriminator.safetensors")]
    record = {"init_from": str(folder), "source_network": meta["network"]}
    for name, module, path in plan:
        if module is not None and path.is_file():
            state = safetensors.torch.load_file(str(path))
            record[name] = {"file": path.name, **copy_by_name(state, meta["network"]["resolution"], module, name[0])}
    _check_fit(record["G"], G, folder, meta)
    return record


def _check_fit(copied: dict, G: torch.nn.Module, folder: Path, meta: dict) -> None:
    """Refuse a transfer that would leave most of G at its init (another preset, width or latent size)."""
    sizes = {n: t.numel() for n, t in G.state_dict().items()}
    if 2 * sum(sizes[n] for n in copied["copied"]) >= sum(sizes.values()):
        return
    differs = "; ".join(f"{n} {a} vs {b}" for n, (a, b) in list(copied["shape_differs"].items())[:3])
    raise UserError(f"init_from {folder}: the snapshot does not fit this network (less than half of G would be "
                    f"copied{'; ' + differs if differs else ''}); use the same preset, resolution and conditioning "
                    f"({meta['network']})")


@torch.no_grad()
def generate(G: Generator, seeds, psi: float = 0.8, class_index: int | None = None, batch: int = 32,
             device: str | torch.device | None = None) -> np.ndarray:
    """uint8 images (N, R, R, 3), one per seed (z from that seed), with truncation ``psi``; constant noise."""
    dev = torch.device(device) if device else next(G.parameters()).device
    out = []
    seeds = list(seeds)
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        z = torch.stack([torch.randn(G.cfg.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in chunk]).to(dev)
        c = None
        if G.cfg.c_dim:
            if class_index is None:
                raise UserError("this generator is class-conditional: give the class to sample")
            c = torch.nn.functional.one_hot(torch.full((len(chunk),), class_index), G.cfg.c_dim).float().to(dev)
        img = G(z, c, psi=psi, noise_mode="const")
        out.append((img.clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)
