"""Asset cache: fetch from a mirror served by the test itself, check checksums, load the Inception path."""
from __future__ import annotations

import functools
import http.server
import json
import threading

import numpy as np
import pytest
import torch

from skingen import assets
from skingen.errors import UserError
from skingen.metrics.extractors import load_extractor

from builders import REPO, study_variant

INCEPTION_PATH = "nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


class StandInInception(torch.nn.Module):
    """Same TorchScript interface as inception-2015-12-05.pt: ``layers`` -> (N, 2048, 1, 1), ``output`` head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, 2048, 1), torch.nn.AdaptiveAvgPool2d(1))
        self.output = torch.nn.Linear(2048, 1008)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.output(self.layers(x).flatten(1)), dim=1)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the server's access log out of the CLI's stderr
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server serving ``<host>/<path>`` files, as a site mirror would."""
    root = tmp_path / "mirror"
    (root / INCEPTION_PATH).parent.mkdir(parents=True)
    torch.jit.script(StandInInception()).save(str(root / INCEPTION_PATH))
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_check_and_use_the_inception_weights(mirror, tmp_path, cli):
    root, url = mirror
    cache = tmp_path / "cache"
    r = cli("assets", "fetch", "--only", "inception", "--cache", cache, "--mirror", url)
    assert r.code == 0, r.err
    target = cache / "inception" / "inception-2015-12-05.pt"
    assert target.read_bytes() == (root / INCEPTION_PATH).read_bytes()
    manifest = json.loads((cache / "assets.json").read_text())
    assert manifest["inception/inception-2015-12-05.pt"]["url"].startswith("https://nvlabs-fi-cdn")
    assert cli("assets", "check", "--cache", cache).code == 0

    extractor = load_extractor("inception", cache, device="cpu")
    feats, logits = extractor(torch.full((2, 3, 299, 299), 128.0))
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert extractor.weights_sha256 == manifest["inception/inception-2015-12-05.pt"]["sha256"]
    assert extractor.resize(np.zeros((32, 32, 3), np.uint8)).shape == (299, 299, 3)

    with open(target, "r+b") as fh:  # a corrupted cache is reported, with the command that repairs it
        fh.seek(100)
        fh.write(b"\0" * 16)
    r = cli("assets", "check", "--cache", cache)
    assert r.code == 2 and "sha256 differs" in r.err and "--force --only inception" in r.err


def test_missing_file_on_the_mirror_is_one_line_and_leaves_nothing(mirror, tmp_path, cli):
    _, url = mirror
    cache = tmp_path / "cache"
    r = cli("assets", "fetch", "--only", "resnet18", "--cache", cache, "--mirror", url)
    assert r.code == 2 and "download failed" in r.err and r.err.count("\n") == 1
    assert not (cache / "timm").exists() or not any((cache / "timm").iterdir())
    r = cli("assets", "check", "--only", "resnet18", "--cache", cache)
    assert r.code == 2 and "missing; run 'skingen assets fetch --only resnet18'" in r.err
    assert cli("assets", "fetch", "--only", "nosuch", "--cache", cache).code == 2


def test_pinned_checksum_mismatch_rejects_the_download(mirror, tmp_path, monkeypatch):
    _, url = mirror
    pinned = assets.Asset("inception/inception-2015-12-05.pt", assets.ASSETS["inception"][0].url, "0" * 64)
    monkeypatch.setitem(assets.ASSETS, "inception", [pinned])
    with pytest.raises(UserError, match="differs from the pinned"):
        assets.fetch(["inception"], tmp_path / "cache", url)
    assert not list((tmp_path / "cache").rglob("*.pt")) and not list((tmp_path / "cache").rglob(".*tmp"))


def test_a_study_names_the_assets_it_needs(mirror, tmp_path, cli):
    root, url = mirror
    (root / "huggingface.co/timm/resnet18.a1_in1k/resolve/main").mkdir(parents=True)
    (root / "huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors").write_bytes(b"weights")
    study = study_variant(tmp_path, replace={"epochs = 1": "epochs = 1\npretrained = true"})
    study.write_text(study.read_text() + '\n[generate]\ngenerators = ["ddpm"]\n[generate.metrics]\n'
                     'extractor = "inception"\n[generate.ddpm]\ninit_from = "/assets/diffusers/ddpm-celebahq-256"\n')
    assert assets.study_assets(study) == ["resnet18", "inception", "ddpm_celebahq_256"]
    smoke = REPO / "jobs" / "smoke.toml"
    assert assets.study_assets(smoke) == []  # no pretrained classifiers, no generators
    r = cli("assets", "fetch", "--study", study, "--only", "inception", "resnet18", "--cache", tmp_path / "c",
            "--mirror", url)
    assert r.code == 2 and "ddpm-celebahq-256" in r.err  # not on this mirror: named, one line
    assert (tmp_path / "c" / "timm" / "resnet18.safetensors").read_bytes() == b"weights"
    assert (tmp_path / "c" / "inception" / "inception-2015-12-05.pt").is_file()


def test_classifier_weights_message_names_the_fetch_command(tmp_path):
    from skingen.classify.models import weights_file

    with pytest.raises(UserError, match="skingen assets fetch --only vit_b16"):
        weights_file("vit_b16", tmp_path)
    assert assets.ASSETS["vit_b16"][0].path == "timm/vit_base_patch16_224.safetensors"  # where models.py looks


def test_dinov2_extractor_loads_cached_weights(tmp_path):
    import safetensors.torch
    import timm

    with pytest.raises(UserError, match="skingen assets fetch --only dinov2_vits14"):
        load_extractor("dinov2_vits14", tmp_path, device="cpu")
    model = timm.create_model("vit_small_patch14_dinov2", num_classes=0, img_size=518).eval()  # random stand-in,
    # saved at the published 518 px shape: the loader must resample its position embedding to 224
    path = tmp_path / assets.ASSETS["dinov2_vits14"][0].path
    path.parent.mkdir(parents=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    extractor = load_extractor("dinov2_vits14", tmp_path, device="cpu")
    feats, logits = extractor(torch.full((2, 3, 224, 224), 100.0))
    assert feats.shape == (2, 384) and logits is None and extractor.input_size == 224
    assert np.isfinite(feats).all() and not np.allclose(feats[0], 0)
    assert torch.equal(extractor.model.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)  # the file's
    assert extractor.model.pos_embed.shape[1] == 1 + 16 * 16  # resampled from 37 x 37 patches to 16 x 16
