"""Import NVIDIA's stylegan2-ada-pytorch network pickles without executing them.

Such a pickle stores each network through ``torch_utils.persistence``: unpickled the stock way, it
executes the Python source stored in the file (``module_src``). Ours is a restricted unpickler: it
resolves only the tensor-rebuild functions (a storage's nested ``torch.save`` blob is read with
``torch.load(weights_only=True)``), numpy scalars and dtypes, ``OrderedDict``, ``set``, torch dtypes
and storage classes, ``EasyDict`` (as a plain dict) and the persistent-object hook, which returns an
inert :class:`PersistentRecord` (class name and ``__dict__``; its source is dropped unread). Anything
else is refused, naming the class. The networks are then built from the recorded constructor
arguments (only G architecture ``skip`` and D ``resnet``, which we implement), every parameter and
buffer is mapped by name (``nvidia_names``, nothing left over or missing), and the result is written
as our safetensors snapshot: ``network.safetensors`` (G_ema), ``generator.safetensors`` (G, for
transfer as the reference resumes), ``discriminator.safetensors`` and ``network.json``.
"""
from __future__ import annotations

import collections
import hashlib
import io
import math
import pickle
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from .networks import Discriminator, Generator, NetworkConfig
from .nvidia_names import import_state_dict

class PersistentRecord:
    """What ``torch_utils.persistence`` stored for one module: its class name and state; never code."""

    def __init__(self, class_name: str, state: dict):
        self.class_name, self.state = class_name, state

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name})"


def _reconstruct_persistent_obj(meta) -> PersistentRecord:
    """Stands in for the reference's hook: records ``meta``'s class name and state, ignores its source."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise UserError("a persistent object in the pickle is not a recorded class instance")
    return PersistentRecord(str(meta.get("class_name")), meta["state"])


def _load_from_bytes(blob: bytes):
    """A storage's nested ``torch.save`` blob, read by torch's weights-only unpickler (never the stock one), once
    the sizes it declares are known to fit in it (torch allocates what a storage declares before reading it)."""
    if not blob.startswith(b"PK"):  # the legacy format NVIDIA's storages use; a zip blob's records carry their sizes
        declared = _declared_storage_bytes(blob)
        if declared > len(blob):
            raise UserError(f"a tensor storage declares {declared} bytes in a blob of {len(blob)}: a damaged or "
                            "hostile pickle")
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several kinds; all mean "not a plain storage"
        raise UserError(f"a tensor storage is not a plain torch storage ({str(exc).strip().splitlines()[0]})") from None


def _declared_storage_bytes(blob: bytes) -> int:
    """Bytes the storages of a legacy ``torch.save`` blob declare (numel x element size), read without loading
    them: the blob is three plain pickles (magic, protocol, system info) and one whose persistent ids name them."""
    declared = 0

    class Declared(RestrictedUnpickler):
        def persistent_load(self, pid):
            nonlocal declared
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int)):
                raise UserError("a tensor storage's record is not a legacy torch storage id")
            with warnings.catch_warnings():  # legacy storage classes warn when asked their dtype
                warnings.simplefilter("ignore")
                dtype = getattr(pid[1], "dtype", torch.uint8)
            declared += max(0, pid[4]) * torch.empty(0, dtype=dtype).element_size()

    fh = io.BytesIO(blob)
    try:
        for _ in range(4):
            Declared(fh).load()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed blobs raise many kinds
        raise UserError(f"a tensor storage is not a plain torch storage ({type(exc).__name__})") from None
    return declared


def _numpy_scalar():
    core = getattr(np, "_core", None) or np.core
    return core.multiarray.scalar


def _allowed() -> dict[tuple[str, str], object]:
    scalar = _numpy_scalar()
    return {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("numpy.core.multiarray", "scalar"): scalar,
        ("numpy._core.multiarray", "scalar"): scalar,
        ("numpy", "dtype"): np.dtype,
        ("dnnlib.util", "EasyDict"): dict,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    }


def _torch_attr(name: str):
    """torch dtypes and storage classes, nothing else from ``torch``."""
    obj = getattr(torch, name, None)
    if isinstance(obj, torch.dtype) or (isinstance(obj, type) and issubclass(obj, torch.storage.TypedStorage)):
        return obj
    return None


class RestrictedUnpickler(pickle._Unpickler):
    """Resolves only tensors, numbers, plain containers and network records; refuses everything else.

    The pure-Python unpickler on purpose: the C one allocates a counted field's claimed length before
    reading it (16 GiB for a 14-byte file), the Python one asks the (bounded) file for it."""

    _ALLOWED = None

    def find_class(self, module: str, name: str):
        allowed = RestrictedUnpickler._ALLOWED = RestrictedUnpickler._ALLOWED or _allowed()
        found = allowed.get((module, name)) or (_torch_attr(name) if module == "torch" else None)
        if found is None:
            raise UserError(f"refused {module}.{name}: an NVIDIA network pickle holds only tensors, numbers and "
                            "network records, and nothing in it is executed")
        return found


MAX_PICKLE_BYTES = 2 << 30  # NVIDIA's largest network pickles (1024 px, G + D + G_ema) are ~0.4 GB


class _Bounded:
    """A file whose reads never ask for more than what is left in it: a length field in the pickle that
    claims more (16 GiB in a 14-byte file) ends as a truncation error instead of a buffer of that size."""

    def __init__(self, fh, size: int):
        self.fh, self.left = fh, size

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(self.left if n is None or n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self.fh.readline(self.left)
        self.left -= len(data)
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)[:self.left]
        n = self.fh.readinto(view)
        self.left -= n
        return n


def read_pickle(path: str | Path) -> dict:
    """The pickle's top-level dict (networks as :class:`PersistentRecord`), read without executing it and
    without allocating more than the file holds."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if size > MAX_PICKLE_BYTES:
        raise UserError(f"{path}: {size} bytes, more than any NVIDIA network pickle (at most {MAX_PICKLE_BYTES}); "
                        "not imported")
    try:
        with open(path, "rb") as fh:
            data = RestrictedUnpickler(_Bounded(fh, size)).load()
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - malformed pickles raise many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: not a readable network pickle ({first})") from None
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), PersistentRecord):
        raise UserError(f"{path}: no G_ema network (a stylegan2-ada-pytorch network-snapshot pickle holds a dict "
                        "with G, D, G_ema)")
    for key, expected in (("G_ema", "Generator"), ("G", "Generator"), ("D", "Discriminator")):
        rec = data.get(key)
        if rec is not None and (not isinstance(rec, PersistentRecord) or rec.class_name != expected):
            raise UserError(f"{path}: {key} is {getattr(rec, 'class_name', type(rec).__name__)}, not a {expected}")
    return data


def state_dict(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """The recorded module's ``state_dict()``: parameters, persistent buffers, sub-modules by dotted name."""
    state = record.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise UserError(f"{prefix}{name}: a {type(tensor).__name__}, not a tensor")
            out[prefix + name] = tensor.detach().to(torch.float32).contiguous()
    for name, sub in (state.get("_modules") or {}).items():
        if sub is None:
            continue
        if not isinstance(sub, PersistentRecord):
            raise UserError(f"{prefix}{name}: a {type(sub).__name__}, not a recorded network module")
        out.update(state_dict(sub, f"{prefix}{name}."))
    return out


def plain(value):
    """Constructor arguments as plain Python (numpy scalars -> numbers, tuples -> lists, dicts -> dict)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# Constructor arguments that change nothing our networks compute (precision, memory layout, training only),
# and those whose only value we implement.
_INERT = {"num_fp16_res", "fp16_channels_last", "channels_last", "w_avg_beta", "freeze_layers"}
_FIXED = {"img_channels": 3, "activation": "lrelu", "resample_filter": [1, 3, 3, 1], "use_noise": True,
          "mbstd_num_channels": 1}
_G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
_D_ARGS = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
           "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs")
_MAPPING = {"num_layers": 8, "embed_features": None, "layer_features": None, "lr_multiplier": 0.01}


def init_kwargs(record: PersistentRecord, names: tuple[str, ...], what: str) -> dict:
    """The recorded constructor arguments (``_init_args`` by position, ``_init_kwargs``) as plain values."""
    args, kwargs = plain(record.state.get("_init_args") or []), plain(record.state.get("_init_kwargs") or {})
    if len(args) > len(names) or not isinstance(kwargs, dict):
        raise UserError(f"{what}: constructor arguments not recorded as the reference records them")
    return {**dict(zip(names, args)), **kwargs}


def _take(kwargs: dict, where: str, defaults: dict) -> dict:
    """``defaults`` updated by ``kwargs``; inert arguments dropped, fixed ones checked, unknown ones refused."""
    out = dict(defaults)
    for key, value in (kwargs or {}).items():
        if key in _INERT:
            continue
        if key in _FIXED:
            if value != _FIXED[key]:
                raise UserError(f"{where}.{key} = {value!r}: we implement only {_FIXED[key]!r}")
        elif key in defaults:
            out[key] = value
        else:
            raise UserError(f"{where}: constructor argument {key!r} is not one we implement")
    return out


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _float(value, what: str) -> float | None:
    """A recorded number as float (None stays None); anything else refused by name."""
    if value is None:
        return None
    _require(isinstance(value, (int, float)) and not isinstance(value, bool), f"{what} = {value!r}: not a number")
    return float(value)


def generator_args(kwargs: dict) -> dict:
    """G's constructor arguments checked against what we implement; the NetworkConfig fields they set."""
    g = _take(kwargs, "G", {"z_dim": None, "c_dim": None, "w_dim": None, "img_resolution": None,
                            "mapping_kwargs": {}, "synthesis_kwargs": {}})
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution"):
        _require(isinstance(g[key], int), f"G: constructor argument {key} not recorded")
    m = _take(g["mapping_kwargs"], "G.mapping_kwargs", _MAPPING)
    s = _take(g["synthesis_kwargs"], "G.synthesis_kwargs",
              {"channel_base": 32768, "channel_max": 512, "conv_clamp": None, "architecture": "skip"})
    _require(s["architecture"] == "skip", f"G architecture {s['architecture']!r}: we implement only 'skip'")
    for key in ("embed_features", "layer_features"):
        _require(m[key] in (None, g["w_dim"]), f"G.mapping_kwargs.{key} = {m[key]}: we implement only w_dim")
    return dict(resolution=g["img_resolution"], z_dim=g["z_dim"], w_dim=g["w_dim"], c_dim=g["c_dim"],
                channel_base=s["channel_base"], channel_max=s["channel_max"], mapping_layers=m["num_layers"],
                mapping_lr_mul=_float(m["lr_multiplier"], "G.mapping_kwargs.lr_multiplier"),
                conv_clamp=_float(s["conv_clamp"], "G.synthesis_kwargs.conv_clamp"))


def discriminator_args(kwargs: dict, g: dict) -> dict:
    """D's constructor arguments checked against ours and G's (one snapshot config holds both)."""
    d = _take(kwargs, "D", {"c_dim": None, "img_resolution": None, "architecture": "resnet", "channel_base": 32768,
                            "channel_max": 512, "conv_clamp": None, "cmap_dim": None, "block_kwargs": {},
                            "mapping_kwargs": {}, "epilogue_kwargs": {}})
    _require(d["architecture"] == "resnet", f"D architecture {d['architecture']!r}: we implement only 'resnet'")
    _take(d["block_kwargs"], "D.block_kwargs", {})
    m = _take(d["mapping_kwargs"], "D.mapping_kwargs", _MAPPING)
    e = _take(d["epilogue_kwargs"], "D.epilogue_kwargs", {"mbstd_group_size": 4})
    clamp = _float(d["conv_clamp"], "D.conv_clamp")
    for key, ours, theirs in (("c_dim", "c_dim", d["c_dim"]), ("img_resolution", "resolution", d["img_resolution"]),
                              ("channel_base", "channel_base", d["channel_base"]),
                              ("channel_max", "channel_max", d["channel_max"]), ("conv_clamp", "conv_clamp", clamp)):
        _require(theirs == g[ours], f"D {key} {theirs} differs from G's {g[ours]}: one snapshot holds one config")
    cmap = min(g["channel_base"] // 4, g["channel_max"])
    _require(d["cmap_dim"] in (None, cmap), f"D cmap_dim {d['cmap_dim']}: we implement only {cmap}")
    group = e["mbstd_group_size"]
    _require(isinstance(group, int) and group > 0, f"D mbstd_group_size {group!r}: we implement only a fixed size")
    if g["c_dim"]:
        _require(_float(m["lr_multiplier"], "D.mapping_kwargs.lr_multiplier") == g["mapping_lr_mul"],
                 "D's label mapping lr_multiplier differs from G's")
        for key in ("embed_features", "layer_features"):
            _require(m[key] in (None, cmap), f"D.mapping_kwargs.{key} = {m[key]}: we implement only cmap_dim")
    return dict(mbstd_group=group, d_mapping_layers=m["num_layers"])


# What NVIDIA's networks can have (and our networks build), checked before anything is allocated.
_INT_RANGES = {"resolution": (16, 1024), "z_dim": (1, 4096), "w_dim": (1, 4096), "c_dim": (0, 4096),
               "channel_base": (1, 1 << 17), "channel_max": (1, 1024), "mapping_layers": (1, 32),
               "mbstd_group": (1, 256), "d_mapping_layers": (1, 32)}


def check_ranges(fields: dict) -> None:
    """One-line refusal of a recorded constructor argument outside what NVIDIA's networks can have."""
    for key, (lo, hi) in _INT_RANGES.items():
        value = fields.get(key, lo)
        _require(type(value) is int and lo <= value <= hi, f"{key} = {value!r}: NVIDIA's networks have an integer "
                                                            f"in [{lo}, {hi}] here; a damaged or hostile pickle")
    res = fields["resolution"]
    _require(res & (res - 1) == 0, f"resolution = {res}: not a power of two")
    for key in ("mapping_lr_mul", "conv_clamp"):
        value = fields.get(key)
        _require(value is None or (isinstance(value, float) and math.isfinite(value) and 0 < value <= 1e6),
                 f"{key} = {value!r}: must be a positive finite number")


def _build(kind: str, cls, cfg: NetworkConfig, record: PersistentRecord) -> torch.nn.Module:
    net = cls(cfg).eval().requires_grad_(False)
    try:
        net.load_state_dict(import_state_dict(state_dict(record), net, kind[0]))
    except ValueError as exc:
        raise UserError(f"{kind}: {exc}") from None
    return net


def networks_from_pickle(path: str | Path) -> tuple[dict[str, torch.nn.Module], NetworkConfig, dict]:
    """Our G_ema (and G, D when the pickle holds them), their config and the recorded constructor arguments."""
    data = read_pickle(path)
    recorded = {"G_ema": init_kwargs(data["G_ema"], _G_ARGS, "G_ema")}
    fields = generator_args(recorded["G_ema"])
    check_ranges(fields)  # before D's checks do arithmetic on them, and before anything is allocated
    if data.get("D") is not None:
        recorded["D"] = init_kwargs(data["D"], _D_ARGS, "D")
        fields.update(discriminator_args(recorded["D"], fields))
        check_ranges(fields)
    if data.get("G") is not None:
        recorded["G"] = init_kwargs(data["G"], _G_ARGS, "G")
        _require(generator_args(recorded["G"]) == generator_args(recorded["G_ema"]),
                 f"{path}: G and G_ema were built with different constructor arguments")
    check_ranges(fields)
    cfg = NetworkConfig(**fields)
    nets = {key: _build(key, Discriminator if key == "D" else Generator, cfg, data[key])
            for key in ("G_ema", "G", "D") if data.get(key) is not None}
    return nets, cfg, recorded


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_nvidia_pickle(pkl: str | Path, out: str | Path) -> dict:
    """Write ``pkl``'s networks as our snapshot in ``out`` (loadable by ``load_generator``); return its record."""
    from .snapshot import GENERATOR_FILE, _save_weights, save_snapshot

    pkl, out = Path(pkl), Path(out)
    nets, cfg, recorded = networks_from_pickle(pkl)
    source = {"format": "stylegan2-ada-pytorch network pickle (read without executing it)", "file": pkl.name,
              "sha256": _sha256(pkl), "networks": sorted(nets), "init_kwargs": recorded}
    for name, key in ((GENERATOR_FILE, "G"), ("discriminator.safetensors", "D")):
        if key not in nets:
            (out / name).unlink(missing_ok=True)  # not from an earlier import into the same folder
    save_snapshot(nets["G_ema"], out, {"step": 0, "kimg": 0.0, "ada_p": None, "imported_from": source},
                  D=nets.get("D"))
    if "G" in nets:
        _save_weights(nets["G"], out / GENERATOR_FILE)
    return {"snapshot": str(out), "network": asdict(cfg), **source}
