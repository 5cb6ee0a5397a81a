"""Parameter and buffer names: ours <-> NVIDIA's stylegan2-ada-pytorch ``state_dict()`` keys.

The two differ only in naming: the reference calls blocks by resolution (``synthesis.b32``,
``b16``), mapping layers ``fc0``..``fcN`` and keeps the discriminator's epilogue in ``b4``; ours
index blocks and layers in lists. The reference also stores the [1, 3, 3, 1] FIR filter as a
``resample_filter`` buffer in each block and resampling-capable layer; ours computes it, so on
import those buffers are checked (they must hold that filter) and dropped, and on export written.
Names are given without the ``G.`` / ``D.`` prefix, as in each network's own ``state_dict()``.
"""
from __future__ import annotations

import math
import re

import torch

from .layers import fir_kernel

FILTER = "resample_filter"


def _res_g(k: int) -> int:
    return 4 * 2 ** k


def _to_ref_g(name: str) -> str:
    if m := re.fullmatch(r"mapping\.layers\.(\d+)\.(.+)", name):
        return f"mapping.fc{m[1]}.{m[2]}"
    if m := re.fullmatch(r"synthesis\.blocks\.(\d+)(\..+)?", name):
        return f"synthesis.b{_res_g(int(m[1]))}{m[2] or ''}"
    return name  # mapping.embed.*, mapping.w_avg


def _to_ours_g(name: str) -> str:
    if m := re.fullmatch(r"mapping\.fc(\d+)\.(.+)", name):
        return f"mapping.layers.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"synthesis\.b(\d+)(\..+)?", name):
        return f"synthesis.blocks.{int(math.log2(int(m[1]))) - 2}{m[2] or ''}"
    return name


def _to_ref_d(name: str, resolution: int) -> str:
    if m := re.fullmatch(r"blocks\.(\d+)(\..+)?", name):
        return f"b{resolution >> int(m[1])}{m[2] or ''}"
    if m := re.fullmatch(r"mapping\.layers\.(\d+)\.(.+)", name):
        return f"mapping.fc{m[1]}.{m[2]}"
    if re.fullmatch(r"(conv|fc|out)(\..+)?", name):
        return f"b4.{name}"
    return name  # mapping.embed.*


def _to_ours_d(name: str, resolution: int) -> str:
    if m := re.fullmatch(r"b4\.(.+)", name):
        return m[1]
    if m := re.fullmatch(r"b(\d+)(\..+)?", name):
        return f"blocks.{int(math.log2(resolution // int(m[1])))}{m[2] or ''}"
    if m := re.fullmatch(r"mapping\.fc(\d+)\.(.+)", name):
        return f"mapping.layers.{m[1]}.{m[2]}"
    return name


def to_reference(name: str, kind: str, resolution: int) -> str:
    """Our name (in G or D, ``kind``) -> the reference's ``state_dict`` key."""
    return _to_ref_g(name) if kind == "G" else _to_ref_d(name, resolution)


def to_ours(name: str, kind: str, resolution: int) -> str | None:
    """The reference's key -> our name; None for its ``resample_filter`` buffers (we have none)."""
    if name == FILTER or name.endswith("." + FILTER):
        return None
    return _to_ours_g(name) if kind == "G" else _to_ours_d(name, resolution)


def _filter_owners(module: torch.nn.Module, kind: str) -> list[str]:
    """Our module names whose reference counterparts hold a ``resample_filter`` buffer."""
    pattern = (r"synthesis\.blocks\.\d+(\.conv[01])?" if kind == "G"
               else r"blocks\.\d+(\.(fromrgb|conv0|conv1|skip))?|conv")
    return [n for n, _ in module.named_modules() if re.fullmatch(pattern, n)]


def reference_filter() -> torch.Tensor:
    """The reference's stored filter: the normalised 4x4 [1, 3, 3, 1] outer product."""
    return fir_kernel()


def export_state_dict(module: torch.nn.Module, kind: str) -> dict[str, torch.Tensor]:
    """Our network's state as the reference's ``state_dict`` (its names, its filter buffers)."""
    res = module.cfg.resolution
    out = {to_reference(n, kind, res): t for n, t in module.state_dict().items()}
    for owner in _filter_owners(module, kind):
        out[f"{to_reference(owner, kind, res)}.{FILTER}"] = reference_filter()
    return out


def import_state_dict(reference: dict[str, torch.Tensor], module: torch.nn.Module, kind: str) -> dict[str, torch.Tensor]:
    """The reference's ``state_dict`` renamed to ours, for ``module.load_state_dict``.

    Raises ValueError naming every reference key left over, every one of ours missing, every shape
    that differs and every ``resample_filter`` that is not the [1, 3, 3, 1] filter."""
    res = module.cfg.resolution
    ours = module.state_dict()
    out, problems = {}, []
    for name, tensor in reference.items():
        target = to_ours(name, kind, res)
        if target is None:
            if tensor.shape != (4, 4) or not torch.allclose(tensor.double(), reference_filter().double(), atol=1e-6):
                problems.append(f"{name}: not the [1, 3, 3, 1] filter")
        elif target not in ours:
            problems.append(f"{name}: left over (no {target} in our {kind})")
        elif tuple(tensor.shape) != tuple(ours[target].shape):
            problems.append(f"{name}: shape {tuple(tensor.shape)}, ours {tuple(ours[target].shape)}")
        else:
            out[target] = tensor
    problems += [f"{n}: missing (no {to_reference(n, kind, res)} in the reference)" for n in ours if n not in out
                 and to_reference(n, kind, res) not in reference]
    if problems:
        raise ValueError(f"{kind} state does not map onto ours: " + "; ".join(problems))
    return out
