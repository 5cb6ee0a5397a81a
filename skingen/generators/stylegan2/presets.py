"""StyleGAN2-ADA presets with their training settings: the values of the reference's ``train.py``
``cfg_specs`` (stylegan2-ada-pytorch), read as facts, at one GPU.

A preset gives the network's width (``fmaps``: channel_base = fmaps * 32768, channel_max 512), its
mapping depth and minibatch-std group, and the training batch, learning rate (G and D), R1 gamma and
G_ema half-life (kimg) with its ramp-up (0: none). ``auto`` follows the resolution as the reference's
auto config does: batch min(4096 // res, 32) (at most 64), group min(batch, 4), fmaps 1 from 512 px
(else 0.5), lr 0.002 from 1024 px (else 0.0025), gamma 0.0002 * res^2 / batch, EMA batch * 10/32 kimg
with ramp-up 0.05, mapping 2 layers. gamma and EMA follow the preset's batch, not an overridden
``batch_size`` (as the reference's ``--batch``). ``small`` and ``tiny`` are our reduced networks
(tests, demo) with ``auto``'s training settings.
"""
from __future__ import annotations

TRAINING_KEYS = ("batch_size", "g_lr", "d_lr", "r1_gamma", "ema_kimg", "ema_rampup")
NETWORK_KEYS = ("fmaps", "mapping_layers", "mbstd_group")


def _spec(mb: int, mbstd: int, fmaps: float, lrate: float, gamma: float, ema: float, ramp: float,
          mapping: int) -> dict:
    return {"batch_size": mb, "g_lr": float(lrate), "d_lr": float(lrate), "r1_gamma": float(gamma),
            "ema_kimg": float(ema), "ema_rampup": float(ramp),
            "fmaps": float(fmaps), "mapping_layers": mapping, "mbstd_group": mbstd}


def _auto(res: int, gpus: int = 1) -> dict:
    mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
    return _spec(mb, min(mb // gpus, 4), 1 if res >= 512 else 0.5, 0.002 if res >= 1024 else 0.0025,
                 0.0002 * res ** 2 / mb, mb * 10 / 32, 0.05, 2)


# name -> resolution -> settings; the reference's cfg_specs (ramp None written as 0)
_TRAINING = {
    "paper256": lambda res: _spec(64, 8, 0.5, 0.0025, 1, 20, 0, 8),
    "paper512": lambda res: _spec(64, 8, 1, 0.0025, 0.5, 20, 0, 8),
    "paper1024": lambda res: _spec(32, 4, 1, 0.002, 2, 10, 0, 8),
    "stylegan2": lambda res: _spec(32, 4, 1, 0.002, 10, 10, 0, 8),
    "auto": _auto,
    "small": _auto,
    "tiny": _auto,
}

# network fields besides fmaps/mapping/mbstd (z and w 512, channel_max 512 unless listed)
_NETWORK = {
    "small": dict(z_dim=128, w_dim=128, channel_base=4096, channel_max=128, mapping_layers=4, mbstd_group=4),
    "tiny": dict(z_dim=32, w_dim=32, channel_base=512, channel_max=32, mapping_layers=2, mbstd_group=2),
}

PRESETS: tuple[str, ...] = tuple(_TRAINING)


def preset_settings(preset: str, resolution: int) -> dict:
    """The preset's training and network settings at ``resolution`` (``fmaps`` None: a fixed channel_base)."""
    from ...errors import UserError

    if preset not in _TRAINING:
        raise UserError(f"StyleGAN2 preset {preset!r} unknown; available: {', '.join(PRESETS)}")
    settings = _TRAINING[preset](resolution)
    if preset in _NETWORK:
        settings.update(fmaps=None, mapping_layers=_NETWORK[preset]["mapping_layers"],
                        mbstd_group=_NETWORK[preset]["mbstd_group"])
    return settings


def network_fields(preset: str, resolution: int, fmaps: float | None = None, mapping_layers: int | None = None,
                   mbstd_group: int | None = None) -> dict:
    """NetworkConfig fields of ``preset`` (each override, when given, replaces the preset's value)."""
    s = preset_settings(preset, resolution)
    fields = dict(_NETWORK.get(preset, {}))
    fmaps = s["fmaps"] if fmaps is None else fmaps
    if fmaps is not None:
        fields.update(channel_base=int(fmaps * 32768), channel_max=512)
    fields.update(mapping_layers=s["mapping_layers"] if mapping_layers is None else mapping_layers,
                  mbstd_group=s["mbstd_group"] if mbstd_group is None else mbstd_group)
    return fields
