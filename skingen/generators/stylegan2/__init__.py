"""StyleGAN2-ADA, our own licence-clean implementation from the papers (no NVIDIA code), proven to compute
what NVIDIA's stylegan2-ada-pytorch computes for the same weights (``tests/test_stylegan2_parity.py``).

Public API: ``load_generator(snapshot_dir)`` and ``load_discriminator(snapshot_dir)`` (see ``api``)."""
from __future__ import annotations

__all__ = ["load_generator", "load_discriminator"]


def __getattr__(name: str):  # torch is imported only when the API is used
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
