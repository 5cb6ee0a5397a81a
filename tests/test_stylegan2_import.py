"""NVIDIA network pickles imported without executing them; transfer copied by name as the reference resumes.

The pickles are built here, as stylegan2-ada-pytorch lays them out (``torch_utils.persistence`` records
with ``module_src``, ``_init_kwargs`` with EasyDicts and numpy numbers, tensors through the stock
tensor reduce): stand-in modules are registered under the reference's module names while pickling,
and the weights are our own networks' exported through ``nvidia_names``. Each record's ``module_src``
raises SystemExit: a stock unpickle runs it, ours never does.
"""
from __future__ import annotations

import json
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch

from skingen.errors import UserError
from skingen.generators.stylegan2 import load_discriminator, load_generator
from skingen.generators.stylegan2.networks import Discriminator, Generator, network_config
from skingen.generators.stylegan2.nvidia_names import export_state_dict
from skingen.generators.stylegan2.nvidia_pickle import import_nvidia_pickle
from skingen.generators.stylegan2.snapshot import load_for_transfer, save_snapshot

SOURCE = 'raise SystemExit("executed!")'
BUFFERS = ("resample_filter", "noise_const", "w_avg")


@pytest.fixture
def reference_modules(monkeypatch):
    """``torch_utils.persistence`` and ``dnnlib.util`` stand-ins, as the reference's code would provide them."""
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # the reference's hook runs the stored source, as this one does
        exec(compile(meta["module_src"], "<module_src>", "exec"), {})

    class EasyDict(dict):
        pass

    for obj, module in ((_reconstruct_persistent_obj, persistence), (EasyDict, util)):
        obj.__module__, obj.__qualname__ = module.__name__, obj.__name__
        setattr(module, obj.__name__, obj)
    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(easy=EasyDict, hook=_reconstruct_persistent_obj)


class Persistent:
    """Pickles as a ``torch_utils.persistence`` object: the hook called with ``meta`` (class, source, state)."""

    def __init__(self, class_name: str, state: dict):
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=SOURCE, class_name=self.class_name, state=self.state)
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)


def _record(flat: dict[str, torch.Tensor], class_name: str, init_kwargs: dict) -> Persistent:
    """A module tree of records from a flat reference ``state_dict`` (parameters, buffers, sub-modules)."""
    tree: dict = {}
    for name, tensor in flat.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = tensor

    def build(node: dict, cls: str) -> Persistent:
        groups = {"_parameters": OrderedDict(), "_buffers": OrderedDict(), "_modules": OrderedDict()}
        for key, value in node.items():
            group = "_modules" if isinstance(value, dict) else "_buffers" if key in BUFFERS else "_parameters"
            groups[group][key] = (build(value, "Layer") if isinstance(value, dict) else value.clone()
                                  if key in BUFFERS else torch.nn.Parameter(value.clone(), requires_grad=False))
        return Persistent(cls, {"training": False, **groups, "_non_persistent_buffers_set": set(),
                                "_init_args": (), "_init_kwargs": {}})

    record = build(tree, class_name)
    record.state.update(_init_kwargs=init_kwargs, _orig_module_src=SOURCE, img_resolution=init_kwargs["img_resolution"])
    return record


def _kwargs(cfg, easy) -> tuple[dict, dict]:
    """G's and D's constructor arguments as the reference records them (EasyDicts, numpy numbers)."""
    clamp = None if cfg.conv_clamp is None else np.int64(cfg.conv_clamp)
    g = easy(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=np.int64(cfg.resolution), img_channels=3,
             mapping_kwargs=easy(num_layers=np.int64(cfg.mapping_layers), lr_multiplier=np.float64(0.01),
                                 w_avg_beta=0.995),
             synthesis_kwargs=easy(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=4,
                                   conv_clamp=clamp, architecture="skip"))
    d = easy(c_dim=cfg.c_dim, img_resolution=cfg.resolution, img_channels=3, architecture="resnet",
             channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=4, conv_clamp=clamp,
             block_kwargs=easy(), mapping_kwargs=easy(), epilogue_kwargs=easy(mbstd_group_size=cfg.mbstd_group))
    return g, d


def _perturbed(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights away from the init, so biases, noise strengths and w_avg all matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in net.state_dict().values():
            t.add_(torch.randn(t.shape, generator=gen) * 0.2)
    return net.eval()


def _networks(cfg):
    torch.manual_seed(0)
    return _perturbed(Generator(cfg), 1), _perturbed(Generator(cfg), 2), _perturbed(Discriminator(cfg), 3)


def _write_pickle(path, ref, cfg, G_ema, G=None, D=None, protocol=4, **extra):
    g_kwargs, d_kwargs = _kwargs(cfg, ref.easy)
    data = {"G_ema": _record(export_state_dict(G_ema, "G"), "Generator", g_kwargs), **extra}
    if G is not None:
        data["G"] = _record(export_state_dict(G, "G"), "Generator", g_kwargs)
    if D is not None:
        data["D"] = _record(export_state_dict(D, "D"), "Discriminator", d_kwargs)
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


@pytest.mark.parametrize("c_dim, clamp, protocol", [(0, None, 3), (5, 256.0, 4)])
@torch.no_grad()
def test_pickle_to_snapshot_gives_the_same_images(reference_modules, tmp_path, cli, c_dim, clamp, protocol):
    cfg = network_config("tiny", 16, c_dim, conv_clamp=clamp, mapping_layers=3)
    G_ema, G, D = _networks(cfg)
    aug = Persistent("AugmentPipe", {"_parameters": OrderedDict(), "_buffers": OrderedDict(p=torch.tensor(0.3)),
                                     "_modules": OrderedDict(), "_init_kwargs": reference_modules.easy(xflip=1)})
    pkl = _write_pickle(tmp_path / "network-snapshot-000240.pkl", reference_modules, cfg, G_ema, G, D, protocol,
                        augment_pipe=aug, training_set_kwargs=reference_modules.easy(path="ffhq.zip",
                                                                                     resolution=np.int64(16)))
    with pytest.raises(SystemExit, match="executed!"):  # the stock unpickler runs the stored source ...
        pickle.loads(pkl.read_bytes())
    r = cli("gen", "import-nvidia", pkl, "--out", tmp_path / "snap")  # ... ours never does
    assert r.code == 0, r.err
    assert "D, G, G_ema read without executing" in r.out
    loaded, D2 = load_generator(tmp_path / "snap"), load_discriminator(tmp_path / "snap")
    assert loaded.cfg == cfg and D2.cfg == cfg
    z = torch.randn(4, cfg.z_dim, generator=torch.Generator().manual_seed(7))
    c = torch.nn.functional.one_hot(torch.tensor([0, 3, 3, 4]), c_dim).float() if c_dim else None
    for psi in (1.0, 0.7):
        want = G_ema(z, c, truncation_psi=psi, noise_mode="const")
        got = loaded(z, c, truncation_psi=psi, noise_mode="const")
        assert torch.allclose(got, want, atol=1e-6 * float(want.abs().max()))
    assert torch.allclose(D2(want, c), D(want, c), atol=1e-6)
    import safetensors.torch

    trained = safetensors.torch.load_file(str(tmp_path / "snap" / "generator.safetensors"))
    assert all(torch.equal(trained[k], v) for k, v in G.state_dict().items())  # the training G, kept for transfer
    meta = json.loads((tmp_path / "snap" / "network.json").read_text())
    assert meta["imported_from"]["init_kwargs"]["G_ema"]["synthesis_kwargs"]["num_fp16_res"] == 4
    assert len(meta["imported_from"]["sha256"]) == 64


def test_a_pickle_that_would_run_code_is_refused(reference_modules, tmp_path, cli):
    import os

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    cfg = network_config("tiny", 16)
    pkl = _write_pickle(tmp_path / "evil.pkl", reference_modules, cfg, _networks(cfg)[0], payload=Payload())
    r = cli("gen", "import-nvidia", pkl, "--out", tmp_path / "snap")
    assert r.code == 2 and f"refused {os.system.__module__}.system" in r.err and r.err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "snap").exists()

    class Eval:
        def __reduce__(self):
            return eval, (f"open({str(marker)!r}, 'w')",)

    (tmp_path / "eval.pkl").write_bytes(pickle.dumps({"G_ema": Eval()}))
    with pytest.raises(UserError, match=r"refused builtins\.eval"):
        import_nvidia_pickle(tmp_path / "eval.pkl", tmp_path / "snap")
    assert not marker.exists() and not (tmp_path / "snap").exists()


def test_what_we_do_not_implement_is_refused_by_name(reference_modules, tmp_path):
    cfg = network_config("tiny", 16)
    G_ema, _, D = _networks(cfg)

    def rewrite(change_g=None, change_d=None, extra=None):
        g_kwargs, d_kwargs = _kwargs(cfg, reference_modules.easy)
        (change_g or (lambda k: None))(g_kwargs)
        (change_d or (lambda k: None))(d_kwargs)
        flat = export_state_dict(G_ema, "G") | (extra or {})
        out = {"G_ema": _record(flat, "Generator", g_kwargs), "D": _record(export_state_dict(D, "D"), "Discriminator",
                                                                           d_kwargs)}
        (tmp_path / "b.pkl").write_bytes(pickle.dumps(out))
        return tmp_path / "b.pkl"

    cases = [
        (dict(change_g=lambda k: k["synthesis_kwargs"].update(architecture="resnet")), "G architecture 'resnet'"),
        (dict(change_d=lambda k: k.update(architecture="orig")), "D architecture 'orig'"),
        (dict(change_g=lambda k: k["mapping_kwargs"].update(activation="relu")), "activation = 'relu'"),
        (dict(change_g=lambda k: k.update(fancy=1)), "argument 'fancy' is not one we implement"),
        (dict(change_d=lambda k: k.update(channel_max=64)), "D channel_max 64 differs from G's 32"),
        (dict(extra={"synthesis.b8.extra": torch.zeros(3)}), "synthesis.b8.extra: left over"),
    ]
    for change, message in cases:
        with pytest.raises(UserError, match=message):
            import_nvidia_pickle(rewrite(**change), tmp_path / "snap")
    assert not (tmp_path / "snap").exists()
    missing = export_state_dict(G_ema, "G")
    missing.pop("mapping.fc1.bias")
    g_kwargs, _ = _kwargs(cfg, reference_modules.easy)
    (tmp_path / "c.pkl").write_bytes(pickle.dumps({"G_ema": _record(missing, "Generator", g_kwargs)}))
    with pytest.raises(UserError, match="mapping.layers.1.bias: missing"):
        import_nvidia_pickle(tmp_path / "c.pkl", tmp_path / "snap")
    (tmp_path / "d.pkl").write_bytes(pickle.dumps({"G": 1}))
    with pytest.raises(UserError, match="no G_ema network"):
        import_nvidia_pickle(tmp_path / "d.pkl", tmp_path / "snap")


@torch.no_grad()
def test_transfer_copies_by_name_across_mapping_depths(reference_modules, tmp_path):
    """A paper256-style pickle (8 mapping layers, group 8) into an `auto`-style network (2 layers, group 4)."""
    source_cfg = network_config("paper256", 32, channel_base=1024, channel_max=32, z_dim=32, w_dim=32)
    G_ema, G, D = _networks(source_cfg)
    pkl = _write_pickle(tmp_path / "ffhq.pkl", reference_modules, source_cfg, G_ema, G, D)
    import_nvidia_pickle(pkl, tmp_path / "snap")
    cfg = network_config("paper256", 32, channel_base=1024, channel_max=32, z_dim=32, w_dim=32, mapping_layers=2,
                         mbstd_group=4)
    torch.manual_seed(1)
    nets = {"G": Generator(cfg), "G_ema": Generator(cfg), "D": Discriminator(cfg)}
    record = load_for_transfer(tmp_path / "snap", nets["G"], nets["D"], nets["G_ema"])
    for key, source in (("G", G), ("G_ema", G_ema), ("D", D)):  # each from its own source, as the reference
        rec, state, src = record[key], nets[key].state_dict(), source.state_dict()
        assert rec["kept_init"] == [] and rec["shape_differs"] == {}
        assert sorted(rec["copied"]) == sorted(state) and all(torch.equal(state[n], src[n]) for n in state)
    assert sorted(record["G"]["skipped"]) == sorted(n for n in G.state_dict() if n.startswith("mapping.layers.")
                                                    and int(n.split(".")[2]) >= 2)
    assert record["D"]["skipped"] == [] and record["G"]["file"] == "generator.safetensors"

    small = network_config("tiny", 16, mapping_layers=8)  # ours: 8 layers into 2, by name; the rest listed
    save_snapshot(_perturbed(Generator(small), 4), tmp_path / "own", {"step": 1})
    two = Generator(network_config("tiny", 16))
    before = {n: t.clone() for n, t in two.state_dict().items()}
    record = load_for_transfer(tmp_path / "own", two, Discriminator(two.cfg))
    rec = record["G"]
    assert set(rec["skipped"]) == {f"mapping.layers.{i}.{p}" for i in range(2, 8) for p in ("weight", "bias")}
    assert not any(torch.equal(before[n], two.state_dict()[n]) for n in rec["copied"] if before[n].numel() > 1)
    assert "D" not in record  # no discriminator saved: D keeps its init


def test_transfer_refuses_a_network_it_does_not_fit(tmp_path):
    save_snapshot(Generator(network_config("tiny", 16)), tmp_path / "s", {"step": 1})
    other = network_config("small", 16)
    with pytest.raises(UserError, match="does not fit this network"):
        load_for_transfer(tmp_path / "s", Generator(other), Discriminator(other))
    cond = network_config("tiny", 16, c_dim=5)  # conditional from unconditional: all but the label input copied
    rec = load_for_transfer(tmp_path / "s", Generator(cond), Discriminator(cond))["G"]
    assert rec["shape_differs"] == {"mapping.layers.0.weight": [[32, 32], [32, 64]]}
    assert set(rec["kept_init"]) == {"mapping.layers.0.weight", "mapping.embed.weight", "mapping.embed.bias"}


def _fetch_ffhq(tmp_path, cli, ref, cfg, cache):
    """`skingen assets fetch` of the FFHQ asset from a local mirror serving a pickle of ``cfg``'s networks."""
    import functools
    import http.server
    import threading

    from skingen import assets

    asset = assets.ASSETS["stylegan2_ffhq256"][0]
    served = tmp_path / "mirror" / asset.url.split("://", 1)[1]
    served.parent.mkdir(parents=True)
    G_ema, G, D = _networks(cfg)
    _write_pickle(served, ref, cfg, G_ema, G, D)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = cli("assets", "fetch", "--only", "stylegan2_ffhq256", "--cache", cache,
                "--mirror", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert r.code == 0, r.err
    return asset, G_ema, G, D


def test_assets_fetch_imports_the_ffhq_pickle(reference_modules, tmp_path, cli):
    """The FFHQ asset is fetched (here from a local mirror), imported after the fetch and checked."""
    from skingen import assets

    cache, cfg = tmp_path / "cache", network_config("tiny", 16)
    asset, G_ema, _, _ = _fetch_ffhq(tmp_path, cli, reference_modules, cfg, cache)
    snap = cache / "stylegan2" / "ffhq-res256-mirror-paper256-noaug"
    z = torch.randn(2, cfg.z_dim)
    assert torch.equal(load_generator(snap)(z, noise_mode="const"), G_ema(z, noise_mode="const"))
    manifest = json.loads((cache / "assets.json").read_text())[asset.path]
    assert manifest["imported_to"] == "stylegan2/ffhq-res256-mirror-paper256-noaug" and len(manifest["sha256"]) == 64
    assert cli("assets", "check", "--only", "stylegan2_ffhq256", "--cache", cache).code == 0
    (snap / "network.json").unlink()
    r = cli("assets", "check", "--only", "stylegan2_ffhq256", "--cache", cache)
    assert r.code == 2 and "not imported; run 'skingen assets fetch --only stylegan2_ffhq256'" in r.err
    assert cli("assets", "fetch", "--only", "stylegan2_ffhq256", "--cache", cache).code == 0  # re-imported, no download
    assert (snap / "network.json").is_file()
    assert assets.imported_assets("/assets/stylegan2/ffhq-res256-mirror-paper256-noaug") == ["stylegan2_ffhq256"]


def test_a_study_resuming_from_ffhq_needs_the_asset_and_records_the_transfer(reference_modules, tmp_path, cli,
                                                                             monkeypatch):
    """As jobs/paper.toml: refused before the fetch; after it, the GAN cell starts from the imported networks."""
    from builders import study_variant
    from skingen import assets
    from skingen.grid.plan import plan_study
    from skingen.grid.spec import load_study

    cache = tmp_path / "cache"
    monkeypatch.setenv("SKINGEN_ASSETS", str(cache))
    study = study_variant(tmp_path)
    study.write_text(study.read_text() + '\n[generate]\ngenerators = ["stylegan2_ada"]\n[generate.metrics]\n'
                     'extractor = "tiny"\n[generate.stylegan2_ada]\npreset = "tiny"\nkimg = 0.016\nbatch_size = 8\n'
                     'grid_images = 0\ninit_from = "/assets/stylegan2/ffhq-res256-mirror-paper256-noaug"\n')
    assert assets.study_assets(study) == ["stylegan2_ffhq256"]
    r = cli("run", study, "--check", "--executor", "debug", "--out", tmp_path / "r")
    assert r.code == 2 and "'skingen assets fetch --only stylegan2_ffhq256'" in r.err, r.err

    source = network_config("tiny", 32, mapping_layers=8)  # as FFHQ's paper256 network into auto's 2 layers
    _fetch_ffhq(tmp_path, cli, reference_modules, source, cache)
    r = cli("run", study, "--executor", "debug", "--until", "train_gen", "--out", tmp_path / "r")
    assert r.code == 0, r.err
    cell = next(c for c in plan_study(load_study(study)) if c.stage == "train_gen")
    transfer = json.loads((cell.folder(tmp_path / "r") / "train_summary.json").read_text())["transfer"]
    assert set(transfer) >= {"G", "G_ema", "D"}
    assert "mapping.layers.1.weight" in transfer["G"]["copied"] and transfer["G"]["kept_init"] == []
    assert set(transfer["G"]["skipped"]) == {f"mapping.layers.{i}.{p}" for i in range(2, 8) for p in ("weight", "bias")}
    assert transfer["D"]["skipped"] == [] and len(transfer["D"]["copied"]) > 20


class _StorageBlob:
    """Pickles as the reference's tensor storages do: ``torch.storage._load_from_bytes(blob)``."""

    def __init__(self, blob: bytes):
        self.blob = blob

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.blob,)


def _storage_blob_declaring(numel: int) -> bytes:
    """A legacy torch.save blob of a 123,456-float storage whose recorded numel is rewritten to ``numel``."""
    import io
    import struct

    buf = io.BytesIO()
    torch.save(torch.zeros(123456).storage(), buf, _use_new_zipfile_serialization=False)
    blob = buf.getvalue()
    old = b"J" + struct.pack("<i", 123456)  # BININT: how pickle writes the numel
    assert blob.count(old) == 1
    return blob.replace(old, b"J" + struct.pack("<i", numel))


@torch.no_grad()
def test_hostile_sizes_are_refused_before_anything_is_allocated(reference_modules, tmp_path, cli):
    """Issue 25 item 3: sizes in a pickle are checked against what NVIDIA's networks can have and against the
    file before anything is built or read; one line, exit 2, memory bounded."""
    import struct
    import tracemalloc

    cfg = network_config("tiny", 16)
    G_ema, _, D = _networks(cfg)
    for key, value in (("z_dim", -1), ("z_dim", 10 ** 12), ("w_dim", 2 * 10 ** 5), ("img_resolution", 48)):
        g_kwargs, _ = _kwargs(cfg, reference_modules.easy)
        g_kwargs[key] = value
        (tmp_path / "g.pkl").write_bytes(pickle.dumps({"G_ema": _record(export_state_dict(G_ema, "G"), "Generator",
                                                                        g_kwargs)}))
        r = cli("gen", "import-nvidia", tmp_path / "g.pkl", "--out", tmp_path / "snap")
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert ("resolution = 48: not a power of two" if value == 48 else f"{key.replace('img_', '')} = {value}") in r.err
    claim = tmp_path / "claim.pkl"  # 14 bytes: BINBYTES8 claiming a 16 GiB field
    claim.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 16 << 30) + b"abc")
    tracemalloc.start()
    r = cli("gen", "import-nvidia", claim, "--out", tmp_path / "snap")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r.code == 2 and "not a readable network pickle" in r.err and peak < 64 << 20, (r.err, peak)
    big = tmp_path / "sparse.pkl"
    with open(big, "wb") as fh:
        fh.truncate((2 << 30) + 1)  # sparse: no disk used
    r = cli("gen", "import-nvidia", big, "--out", tmp_path / "snap")
    assert r.code == 2 and "more than any NVIDIA network pickle" in r.err
    (tmp_path / "storage.pkl").write_bytes(pickle.dumps({"G_ema": _StorageBlob(_storage_blob_declaring(2 ** 31 - 1))}))
    r = cli("gen", "import-nvidia", tmp_path / "storage.pkl", "--out", tmp_path / "snap")
    assert r.code == 2 and "declares 8589934588 bytes in a blob of" in r.err
    assert not (tmp_path / "snap").exists()
