"""Builders of small on-disk datasets in the real download layouts (HAM10000, MILK10k, ISIC, folders)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg(path: Path, seed: int, size: tuple[int, int] = (48, 36)) -> Path:
    """A small random-but-smooth RGB JPEG at ``path``."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=92)
    return path


def table(path: Path, header: list[str], rows: list[list], delimiter: str = ",", quote_all: bool = False) -> Path:
    """Write a CSV/TSV table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerows(rows)
    return path


HAM7 = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


def ham_rows(spec: list[tuple[str, str, str]]) -> list[list]:
    """HAM10000 rows (7 columns) from (lesion_id, image_id, dx)."""
    return [[lesion, image, dx, "histo", "50.0", "male", "back"] for lesion, image, dx in spec]


def ham_dataset(root: Path, spec: list[tuple[str, str, str]], layout: str = "csv") -> Path:
    """A HAM10000 download: layout csv (Dataverse original), tab (Dataverse .tab), bare, kaggle."""
    rows = ham_rows(spec)
    if layout == "kaggle":
        table(root / "HAM10000_metadata.csv", HAM7, rows)
        for i, (_, image, _) in enumerate(spec):
            part = "part_1" if i % 2 == 0 else "part_2"
            for folder in (f"HAM10000_images_{part}", f"ham10000_images_{part}"):
                jpeg(root / folder / f"{image}.jpg", seed=i)
        return root
    header = HAM7 + ["dataset"]
    rows = [r + ["vidir_modern"] for r in rows]
    name = {"csv": "HAM10000_metadata.csv", "tab": "HAM10000_metadata.tab", "bare": "HAM10000_metadata"}[layout]
    table(root / name, header, rows, delimiter="\t" if layout in ("tab", "bare") else ",",
          quote_all=layout in ("tab", "bare"))
    for i, (_, image, _) in enumerate(spec):
        jpeg(root / "HAM10000_images_part_1" / f"{image}.jpg", seed=i)
    return root


MILK_CODES = ["AKIEC", "BCC", "BEN_OTH", "BKL", "DF", "INF", "MAL_OTH", "MEL", "NV", "SCCKA", "VASC"]


def onehot(code: str | None, codes: list[str], extra: str | None = None) -> list[str]:
    """One-hot floats for ``code`` (None: all zero; ``extra``: a second one)."""
    return ["1.0" if c in (code, extra) else "0.0" for c in codes]


def milk_dataset(root: Path, lesions: list[tuple[str, str | None]], layout: str = "challenge",
                 second_one: dict | None = None) -> Path:
    """MILK10k: each lesion (id, code) gets a dermoscopic and a clinical image."""
    second_one = second_one or {}
    gt_rows = [[lid] + onehot(code, MILK_CODES, second_one.get(lid)) for lid, code in lesions]
    meta = []
    for i, (lid, _) in enumerate(lesions):
        for j, kind in enumerate(("dermoscopic", "clinical: close-up")):
            iid = f"ISIC_{9000000 + 2 * i + j:07d}"
            meta.append([lid, kind, iid, "MILK study team", "CC-BY-NC", "instrument only", "55", "female"])
            if layout == "challenge":
                jpeg(root / "MILK10k_Training_Input" / "MILK10k_Training_Input" / lid / f"{iid}.jpg", 100 + 2 * i + j)
            else:
                jpeg(root / "images" / f"{iid}.jpg", 100 + 2 * i + j)
    meta_header = ["lesion_id", "image_type", "isic_id", "attribution", "copyright_license",
                   "image_manipulation", "age_approx", "sex"]
    if layout == "challenge":
        table(root / "MILK10k_Training_GroundTruth.csv", ["lesion_id"] + MILK_CODES, gt_rows)
        table(root / "MILK10k_Training_Metadata.csv", meta_header, meta)
    else:
        table(root / "supplements" / "training_gt.csv", ["lesion_id"] + MILK_CODES, gt_rows)
        bundle = [[r[2], r[0], r[1], r[3], r[4], r[5], r[6], r[7]] for r in meta]
        table(root / "metadata.csv", ["isic_id", "lesion_id", "image_type", "attribution", "copyright_license",
                                      "image_manipulation", "age_approx", "sex"], bundle)
    return root


def read_rows(path: Path) -> list[dict]:
    """All rows of a CSV as dicts."""
    with open(path) as fh:
        return list(csv.DictReader(fh))


def split_with_bad_path(cli, phantom_dir: Path, tmp_path: Path, bad_file: Path) -> tuple[Path, list[dict], dict]:
    """Ingest + split the phantom, then point the first train row at ``bad_file``; returns (split.csv, rows, victim)."""
    assert cli("data", "ingest", phantom_dir, "--out", tmp_path / "m.csv").code == 0
    assert cli("data", "split", tmp_path / "m.csv", "--out", tmp_path / "s.csv").code == 0
    rows = read_rows(tmp_path / "s.csv")
    victim = next(r for r in rows if r["split"] == "train")
    victim["path"] = str(bad_file)
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return tmp_path / "s.csv", rows, victim


REPO = Path(__file__).resolve().parent.parent


def study_variant(tmp: Path, name: str = "study.toml", replace: dict[str, str] | None = None,
                  profile: Path | None = None) -> Path:
    """jobs/smoke.toml with whole lines replaced (``{"epochs = 1": "epochs = 20"}``) and an absolute profile."""
    text = (REPO / "jobs" / "smoke.toml").read_text()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    text = text.replace('profile = "slurm/profiles/local.toml"', f'profile = "{profile or REPO / "slurm/profiles/local.toml"}"')
    path = tmp / name
    path.write_text(text)
    return path


# A [generate] section small enough to train both generators in seconds (grid and validation tests).
GENERATE = """
[generate]
generators = ["ddpm", "stylegan2_ada"]
sampling_steps = 3
sample_batch = 16

[generate.ddpm]
channels = [32, 64]
layers_per_block = 1
max_steps = 4
batch_size = 8
warmup_steps = 1
checkpoint_every = 0
grid_images = 4
grid_steps = 2

[generate.stylegan2_ada]
preset = "tiny"
kimg = 0.032
batch_size = 8
grid_images = 4

[generate.metrics]
extractor = "tiny"
n_boot = 10
kid_subsets = 10
"""


def projections(name: str, values, k: int = 8):
    """``k`` seeded random unit directions (seeded by the tensor's name) applied to ``values`` flattened, in float64:
    a compact fingerprint of a parameter update for replay fixtures (tests/data/ddpm_replay.npz)."""
    import zlib

    flat = np.asarray(values, np.float64).ravel()
    directions = np.random.default_rng(zlib.crc32(name.encode())).standard_normal((k, flat.size))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions @ flat
