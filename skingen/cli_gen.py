"""``skingen gen ...`` and ``skingen assets ...``: generator, generative-metric and asset-cache commands."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .assets import ASSETS
from .generators.registry import GENERATORS, Generator, SampleRequest, get_generator


MIN_N_BOOT = 100  # one minimum for every --n-boot: fewer replicates make 95 % intervals too coarse to read


def n_boot(value: str) -> int:
    """argparse type of every --n-boot flag: an integer of at least MIN_N_BOOT."""
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < MIN_N_BOOT:
        raise argparse.ArgumentTypeError(f"{value}: use at least {MIN_N_BOOT} replicates (2000 for a paper)")
    return number

def overrides(a: argparse.Namespace, names: tuple[str, ...], rename: dict | None = None) -> dict:
    """Config fields given on the command line (not None), renamed where the flag differs from the field."""
    rename = rename or {}
    return {rename.get(n, n): getattr(a, n) for n in names if getattr(a, n, None) is not None}


def _cmd_gen_summary(a: argparse.Namespace) -> None:
    print(json.dumps(get_generator(a.generator).summary(a.resolution, a.preset, a.conditional), indent=2))


def _train_config(a: argparse.Namespace, gen: Generator):
    """The generator's config: its TOML table ([ddpm] or [stylegan2_ada]) updated by command-line options."""
    from .config import from_dict, load_toml

    data = load_toml(a.config).get(a.generator, {}) if a.config else {}
    return from_dict(gen.config_class(), {**data, **overrides(a, gen.cli_keys)}, f"{a.config or 'options'} [{a.generator}]")


def _cmd_gen_train(a: argparse.Namespace) -> int:
    from .classify.loop import Preempted

    gen = get_generator(a.generator)
    cfg = _train_config(a, gen)
    try:
        print(gen.trained(gen.train(Path(a.shards) / "train.h5", Path(a.out), cfg), a.out))
    except Preempted as exc:
        print(f"skingen: preempted: {exc}; run the same command again to resume", file=sys.stderr)
        return 3
    return 0


def _cmd_gen_sample(a: argparse.Namespace) -> None:
    sd = a.generator == "sd_lora"
    sampler, steps = a.sampler or ("dpmsolver++" if sd else "ddim"), a.steps or (25 if sd else 50)
    out = get_generator(a.generator).sample(SampleRequest(
        Path(a.cell), Path(a.out), a.n, a.label, a.image_size, a.seed, a.batch, sampler=sampler, steps=steps,
        conditional=a.conditional, psi=a.psi,
        options={"sd_sampler": sampler, "sd_steps": steps, "guidance_scale": a.guidance, "negative_prompt": a.negative}))
    print(f"{a.n} synthetic {a.label} images -> {out}")


def _cmd_gen_import_nvidia(a: argparse.Namespace) -> None:
    from .generators.stylegan2.nvidia_pickle import import_nvidia_pickle

    r = import_nvidia_pickle(a.pickle, a.out)
    net = r["network"]
    print(f"{a.pickle}: {', '.join(r['networks'])} read without executing the pickle ({net['resolution']} px, "
          f"c_dim {net['c_dim']}, mapping {net['mapping_layers']} layers) -> {a.out} (init_from or load_generator)")


def add_gen_parser(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("gen", help="generators: summaries, training, sampling, generative metrics").add_subparsers(
        dest="gen_cmd", required=True)
    which = dict(choices=tuple(GENERATORS), default="ddpm", help=f"{' or '.join(GENERATORS)} (default ddpm)")
    p = gen.add_parser("summary", help="JSON parameter counts of a generator preset")
    p.add_argument("--generator", required=True, choices=tuple(GENERATORS))
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--preset", help="stylegan2_ada: auto (default), paper256, paper512, paper1024, stylegan2, "
                                    "small, tiny (with its training settings); DDPM presets follow the resolution")
    p.add_argument("--conditional", action="store_true")
    p.set_defaults(fn=_cmd_gen_summary)
    p = gen.add_parser("train", help="train a generator on the train shard's target class")
    p.add_argument("shards", help="folder with train.h5")
    p.add_argument("--generator", **which)
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="TOML with a [ddpm], [stylegan2_ada] or [sd_lora] table (any config field)")
    p.add_argument("--max-steps", dest="max_steps", type=int, help="ddpm, sd_lora")
    p.add_argument("--base", help="sd_lora: the Stable Diffusion folder (or standin:tiny)")
    p.add_argument("--rank", type=int, help="sd_lora: LoRA rank")
    p.add_argument("--kimg", type=float, help="stylegan2_ada: thousands of real images to show")
    p.add_argument("--preset", help="stylegan2_ada preset (network and training settings)")
    p.add_argument("--resolution", type=int)
    p.add_argument("--seed", type=int)
    p.set_defaults(fn=_cmd_gen_train)
    p = gen.add_parser("sample", help="sample a trained generator cell into a synthetic shard")
    p.add_argument("cell", help="the generator cell folder (DDPM: pipeline/; StyleGAN2, sd_lora: snapshot/)")
    p.add_argument("--generator", **which)
    p.add_argument("--out", required=True, help="synthetic shard .h5")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--label", default="MEL")
    p.add_argument("--image-size", dest="image_size", type=int, required=True)
    p.add_argument("--sampler", help="ddpm: ddim (default) | ddpm; sd_lora: dpmsolver++ (default) | ddim")
    p.add_argument("--steps", type=int, help="sampling steps (ddpm default 50, sd_lora 25)")
    p.add_argument("--guidance", type=float, default=7.5, help="sd_lora: classifier-free guidance scale (default 7.5)")
    p.add_argument("--negative", default="", help="sd_lora: negative prompt")
    p.add_argument("--psi", type=float, default=0.8, help="stylegan2_ada: truncation (default 0.8, as the original)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--conditional", action="store_true", help="ddpm: class-conditional model")
    p.set_defaults(fn=_cmd_gen_sample)
    p = gen.add_parser("import-nvidia", help="NVIDIA stylegan2-ada-pytorch network pickle -> our StyleGAN2 snapshot "
                                             "(read without executing it)")
    p.add_argument("pickle", help="network-snapshot .pkl (G_ema, and D and G when present)")
    p.add_argument("--out", required=True, help="snapshot folder to write (network.json + safetensors)")
    p.set_defaults(fn=_cmd_gen_import_nvidia)
    _add_gen_metrics(gen)


def _cmd_gen_metrics(a: argparse.Namespace) -> None:
    from .config import from_dict, load_toml
    from .metrics.gen_eval import GenMetricsConfig, evaluate_synthetic

    data = load_toml(a.config).get("gen_metrics", {}) if a.config else {}
    cfg = from_dict(GenMetricsConfig, {**data, **overrides(a, ("extractor", "n_boot", "seed"))},
                    f"{a.config or 'options'} [gen_metrics]")
    r = evaluate_synthetic(a.synthetic, a.real, a.out, cfg, a.features, a.assets)
    base = r["memorised_baseline"]
    print(f"{r['label']} vs test reals at matched N={r['n_matched']} ({r['matched_repeats']} rounds): FID "
          f"{r['fid']:.3f} ± {r['fid_sd']:.3f} [{r['fid_ci'][0]:.3f}, {r['fid_ci'][1]:.3f}] (real floor "
          f"{r['fid_floor']:.3f} ± {r['fid_floor_sd']:.3f}), KID {r['kid']:.5f} ± {r['kid_std']:.5f}, "
          f"P {r['precision']:.3f} R {r['recall']:.3f}, memorised {r['memorised_fraction']:.3f} "
          f"[{r['memorised_ci'][0]:.3f}, {r['memorised_ci'][1]:.3f}]"
          + (f" (held-out reals at n={base['n']}: {base['real']['mean']:.3f})" if base else "")
          + f"; n_real {r['n_real']} n_test {r['n_test']} n_fake {r['n_fake']} -> {a.out}/metrics.json")


def _cmd_gen_tsne(a: argparse.Namespace) -> None:
    from .metrics.extractors import load_extractor
    from .metrics.feature_space import tsne_figure
    from .metrics.features import ImageSet, extract_features

    extractor = load_extractor(a.extractor, a.assets)
    groups = {"real": extract_features(ImageSet(Path(a.real) / "train.h5", a.label), extractor).features}
    for spec in a.synthetic:
        name, _, path = spec.rpartition("=")
        groups[name or Path(path).stem] = extract_features(ImageSet(Path(path)), extractor).features
    result = tsne_figure(groups, a.out, f"{a.label}: real vs synthetic [{extractor.name}]", "real", a.perplexity, a.seed)
    print(f"t-SNE of {', '.join(f'{k} ({v})' for k, v in result['settings']['sources'].items())} -> {a.out}/tsne.png")


def _add_gen_metrics(gen: argparse._SubParsersAction) -> None:
    p = gen.add_parser("metrics", help="FID/KID/IS/precision/recall/memorisation of a synthetic shard")
    p.add_argument("synthetic", help="synthetic shard .h5 (from 'skingen gen sample')")
    p.add_argument("--real", required=True, help="real shard folder with train.h5 and test.h5")
    p.add_argument("--out", required=True, help="folder for metrics.json, closest_pairs.png, features/")
    p.add_argument("--features", help="shared cache folder for the real features (default OUT/features)")
    p.add_argument("--config", help="TOML with a [gen_metrics] table (any GenMetricsConfig field)")
    p.add_argument("--extractor", help="inception|dinov2_vits14|tiny (default inception)")
    p.add_argument("--n-boot", dest="n_boot", type=n_boot, help=f"bootstrap replicates (at least {MIN_N_BOOT})")
    p.add_argument("--seed", type=int)
    p.add_argument("--assets", help="asset cache (default $SKINGEN_ASSETS or ~/.cache/skingen)")
    p.set_defaults(fn=_cmd_gen_metrics)
    p = gen.add_parser("tsne", help="t-SNE of real vs synthetic features, with a centroid/spread table")
    p.add_argument("synthetic", nargs="+", help="NAME=SHARD.h5 per generator")
    p.add_argument("--real", required=True, help="real shard folder with train.h5")
    p.add_argument("--label", default="MEL")
    p.add_argument("--out", required=True)
    p.add_argument("--extractor", default="inception")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--assets")
    p.set_defaults(fn=_cmd_gen_tsne)


def _cmd_assets(a: argparse.Namespace) -> int:
    from .assets import check, fetch, study_assets

    if a.study:
        a.only = list(dict.fromkeys((a.only or []) + study_assets(a.study)))
        if not a.only:
            print(f"{a.study}: needs no pretrained weights (no pretrained classifiers, extractor or generator init)")
            return 0
    if a.assets_cmd == "fetch":
        manifest = fetch(a.only, a.cache, a.mirror, a.force)
        print(f"{len(manifest)} asset file(s) recorded with sha256 in the cache")
        return 0
    problems = check(a.only, a.cache)
    for line in problems:
        print(f"skingen: {line}", file=sys.stderr)
    if not problems:
        print("assets: all present, checksums match")
    return 2 if problems else 0


def add_assets_parser(sub: argparse._SubParsersAction) -> None:
    assets = sub.add_parser("assets", help="prefetch / verify pretrained weights in the local cache").add_subparsers(
        dest="assets_cmd", required=True)
    for name, text in (("fetch", "download weights into the cache (needs internet or --mirror)"),
                       ("check", "verify the cached files against their recorded sha256")):
        p = assets.add_parser(name, help=text)
        p.add_argument("--only", nargs="+", metavar="NAME",
                       help=f"asset names (default: all): {', '.join(sorted(ASSETS))}")
        p.add_argument("--study", metavar="STUDY.toml", help="the assets this study needs (with --only: both)")
        p.add_argument("--cache", help="cache dir (default $SKINGEN_ASSETS or ~/.cache/skingen)")
        if name == "fetch":
            p.add_argument("--mirror", help="base URL serving <host>/<path> (default $SKINGEN_ASSET_MIRROR)")
            p.add_argument("--force", action="store_true", help="download again even if present")
        p.set_defaults(fn=_cmd_assets)
