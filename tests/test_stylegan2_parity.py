"""Our StyleGAN2-ADA networks compute what NVIDIA's stylegan2-ada-pytorch computes, given its weights.

Reference outputs (mapping at psi 1 and 0.7, synthesis with constant noise, D logits; unconditional
and conditional) and its ``state_dict`` key lists come from ``shared/reference/stylegan2-parity/``
beside the repository (data, not code). The weights go through the same name mapping an importer
uses (``nvidia_names``); every output must agree within 1e-4 x max|reference|.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from skingen.generators.stylegan2.networks import Discriminator, Generator, NetworkConfig, network_config
from skingen.generators.stylegan2.nvidia_names import export_state_dict, import_state_dict, to_ours, to_reference

REF = Path(__file__).parents[2] / "shared" / "reference" / "stylegan2-parity"
PARITY = REF / "stylegan2_ada_parity_32px.safetensors"
TOL = 1e-4  # relative to max|reference|


@pytest.fixture(scope="module")
def reference():
    from safetensors import safe_open
    from safetensors.torch import load_file

    assert PARITY.is_file(), f"{PARITY} missing: the shared/ reference data must sit beside the repository"
    with safe_open(str(PARITY), "pt") as f:
        config = json.loads(f.metadata()["config"])
    return load_file(str(PARITY)), config


def _networks(tensors: dict, meta: dict, tag: str):
    cfg = NetworkConfig(resolution=meta["img_resolution"], z_dim=meta["z_dim"], w_dim=meta["w_dim"], c_dim=meta["c_dim"],
                        channel_base=meta["channel_base"], channel_max=meta["channel_max"],
                        mapping_layers=meta["mapping_layers"], mbstd_group=meta["mbstd_group_size"],
                        conv_clamp=meta["conv_clamp"])
    nets = {"G": Generator(cfg).eval(), "D": Discriminator(cfg).eval()}
    for kind, net in nets.items():
        prefix = f"{tag}.{kind}."
        ref = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        assert sum(p.numel() for p in net.parameters()) == meta[f"n_params_{kind}"]
        net.load_state_dict(import_state_dict(ref, net, kind))  # strict: every one of ours is covered
        assert set(export_state_dict(net, kind)) == set(ref)  # ... and the way back names every reference key
    return nets["G"], nets["D"]


def _assert_close(ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert ours.shape == ref.shape, what
    err = float((ours - ref).abs().max())
    assert err <= TOL * float(ref.abs().max()), f"{what}: max |diff| {err:.3g} vs max |ref| {float(ref.abs().max()):.3g}"


@pytest.mark.parametrize("tag", ["uncond", "cond"])
@torch.no_grad()
def test_networks_reproduce_the_reference_outputs(reference, tag):
    tensors, config = reference
    G, D = _networks(tensors, config[tag], tag)
    z, c = tensors[f"{tag}.in.z"], tensors.get(f"{tag}.in.c")
    assert G.z_dim == 64 and G.c_dim == config[tag]["c_dim"]
    for psi, key in ((1.0, "psi1"), (0.7, "psi0.7")):
        _assert_close(G.mapping(z, c, truncation_psi=psi), tensors[f"{tag}.out.ws_{key}"], f"{tag} ws {key}")
        ws = tensors[f"{tag}.out.ws_{key}"]
        _assert_close(G.synthesis(ws, noise_mode="const"), tensors[f"{tag}.out.img_{key}"], f"{tag} img {key}")
    _assert_close(G(z, c, truncation_psi=0.7, noise_mode="const"), tensors[f"{tag}.out.img_psi0.7"], f"{tag} G(z, c)")
    _assert_close(D(tensors[f"{tag}.in.d_img"], c), tensors[f"{tag}.out.d_logits"], f"{tag} D logits")
    _assert_close(D(tensors[f"{tag}.out.img_psi1"], c), tensors[f"{tag}.out.d_logits_of_img_psi1"], f"{tag} D(G)")


def _reference_keys(c_dim: int) -> tuple[dict, dict]:
    """{net: {key: (shape, param|buffer)}} and {net: parameter total} of the reference's paper256 at 256 px."""
    keys, totals, section = {"G": {}, "D": {}}, {}, False
    for line in (REF / "paper256_256_state_dict_keys.tsv").read_text().splitlines():
        if line.startswith("#"):  # '# paper256 @ 256 px, c_dim=0: G 24,767,458 parameters, D 24,001,089'
            section = f"c_dim={c_dim}:" in line
            if section:
                totals = {net: int(n.replace(",", "")) for net, n in re.findall(r"\b([GD]) ([\d,]*\d)", line)}
        elif section and line.strip():
            name, shape, kind = line.split("\t")
            net, key = name.split(".", 1)
            keys[net][key] = (tuple(json.loads(shape)), kind)
    return keys, totals


@pytest.mark.parametrize("c_dim", [0, 5])
def test_paper256_names_and_shapes_are_the_reference_state_dict(c_dim):
    keys, totals = _reference_keys(c_dim)
    cfg = network_config("paper256", 256, c_dim)
    with torch.device("meta"):
        nets = {"G": Generator(cfg), "D": Discriminator(cfg)}
    for kind, net in nets.items():
        assert sum(p.numel() for p in net.parameters()) == totals[kind], kind
        exported = {k: tuple(v.shape) for k, v in export_state_dict(net, kind).items()}
        assert exported == {k: shape for k, (shape, _) in keys[kind].items()}, kind
        params = {to_reference(n, kind, 256) for n, _ in net.named_parameters()}
        assert params == {k for k, (_, what) in keys[kind].items() if what == "param"}, kind


def test_names_round_trip_and_a_mismatch_is_named():
    cfg = NetworkConfig(resolution=32, z_dim=16, w_dim=16, c_dim=3, channel_base=256, channel_max=16, mapping_layers=2)
    G, D = Generator(cfg), Discriminator(cfg)
    for kind, net in (("G", G), ("D", D)):
        for name in net.state_dict():
            assert to_ours(to_reference(name, kind, 32), kind, 32) == name
    ref = export_state_dict(D, "D")
    ref["b8.extra.weight"] = torch.zeros(1)
    del ref["b4.out.bias"]
    ref["b16.resample_filter"] = torch.ones(4, 4)
    with pytest.raises(ValueError) as err:
        import_state_dict(ref, D, "D")
    msg = str(err.value)
    assert "b8.extra.weight: left over" in msg and "out.bias: missing" in msg and "b16.resample_filter: not the" in msg


@torch.no_grad()
def test_public_api_serves_a_snapshot_of_the_reference_weights(reference, tmp_path):
    from skingen.generators.stylegan2 import load_discriminator, load_generator
    from skingen.generators.stylegan2.snapshot import save_snapshot

    tensors, config = reference
    G, D = _networks(tensors, config["cond"], "cond")
    save_snapshot(G, tmp_path, {"step": 0}, D=D)
    G2, D2 = load_generator(tmp_path), load_discriminator(tmp_path)
    assert (G2.z_dim, G2.c_dim, G2.training, D2.training) == (64, 5, False, False)
    z, c = tensors["cond.in.z"], tensors["cond.in.c"]
    img = G2(z, c, truncation_psi=0.7, noise_mode="const")
    _assert_close(img, tensors["cond.out.img_psi0.7"], "api G")
    _assert_close(G2.synthesis(G2.mapping(z, c, truncation_psi=1.0), noise_mode="const"), tensors["cond.out.img_psi1"],
                  "api mapping + synthesis")
    _assert_close(D2(tensors["cond.in.d_img"], c), tensors["cond.out.d_logits"], "api D")
    quiet = G2(z, c, noise_mode="none")
    assert not torch.allclose(quiet, G2(z, c, noise_mode="random"))  # noise strengths are non-zero here
    assert torch.allclose(quiet, G2(z, c, noise_mode="none"))
    with pytest.raises(ValueError, match="noise_mode"):
        G2(z, c, noise_mode="fixed")
