"""The ``skingen`` command: argument parsing only; every subcommand calls one library function."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .cli_gen import MIN_N_BOOT, add_assets_parser, add_gen_parser, n_boot, overrides
from .errors import UserError
from .grid.plan import STAGES


def _cmd_phantom(a: argparse.Namespace) -> None:
    from .data.phantom import make_phantom

    out = make_phantom(a.out, a.n, size=a.size, seed=a.seed, workers=a.workers, classes=a.classes)
    print(f"phantom: {a.n} images in HAM10000 layout -> {out} (ground truth in {out / 'ground_truth'})")


def _cmd_ingest(a: argparse.Namespace) -> None:
    from .data.ingest import ingest, summary_lines

    out, report, records = ingest(a.roots, a.out, source=a.source, modality=a.milk10k_modality,
                                  verify=not a.no_verify, workers=a.workers, classes=a.classes)
    print("\n".join(summary_lines(records, report, out)))


def _cmd_split(a: argparse.Namespace) -> None:
    from .data.split import SplitConfig, lesion_overlap, make_split, split_table

    cfg = SplitConfig(val=a.val, test=a.test, seed=a.seed, dedup=a.dedup, dedup_distance=a.dedup_distance,
                      max_group_size=a.max_group_size)
    out, rows = make_split(a.manifest, a.out, cfg, classes=a.classes)
    info = json.loads(out.with_suffix(".json").read_text())
    print("\n".join(split_table(rows, tuple(info["classes"]))))
    for note in info["dropped_classes"].values():
        print(f"warning: class dropped: {note}")
    if a.dedup:
        from .data.groups import group_lines

        print("\n".join(group_lines(json.loads(out.with_suffix(".json").read_text()))))
    print(f"lesions in more than one split: {len(lesion_overlap(rows))}")
    print(f"split (seed {a.seed}) -> {out} (settings in {out.with_suffix('.json')})")


def _cmd_pack(a: argparse.Namespace) -> None:
    from .data.pack import pack

    shards = pack(a.split, a.out, a.size, pipeline=a.pipeline, workers=a.workers, classes=a.classes)
    print("shards: " + ", ".join(f"{k}={v}" for k, v in shards.items()))
    print(f"quarantine list: {Path(a.out) / 'quarantine.csv'}")


def _cmd_preprocess_eval(a: argparse.Namespace) -> None:
    from .preprocess.evaluate import evaluate

    out = Path(a.out or Path(a.phantom) / "preprocess_eval")
    report = evaluate(a.phantom, a.pipeline or ["basic", "advanced"], out, limit=a.limit)
    for name, res in report["pipelines"].items():
        regions = ", ".join(f"{k} PSNR {v['psnr']} SSIM {v['ssim']}" for k, v in res["regions"].items())
        print(f"{name}: hair IoU {res['hair_iou']}, {res['images_per_s']} img/s; {regions}")
    print(f"preprocess eval of {report['n_images']} images -> {out}/preprocess_eval.{{json,csv}}, "
          f"{out}/preprocess_panel.png")


def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    pre = sub.add_parser("preprocess", help="preprocessing pipelines").add_subparsers(dest="pre_cmd", required=True)
    p = pre.add_parser("eval", help="score pipelines against the phantom's ground truth")
    p.add_argument("phantom", metavar="PHANTOM_DIR")
    p.add_argument("--pipeline", action="append", help="basic|advanced|PRESET.toml (repeat; default basic and advanced)")
    p.add_argument("--out", help="output folder (default PHANTOM_DIR/preprocess_eval)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N images")
    p.set_defaults(fn=_cmd_preprocess_eval)


def _cmd_classify_train(a: argparse.Namespace) -> int:
    from .classify.arms import ArmConfig
    from .classify.loop import Preempted
    from .classify.train import TrainConfig, train_classifier
    from .config import from_dict, load_toml

    data = load_toml(a.config) if a.config else {}
    train = from_dict(TrainConfig, {**data.get("train", {}), **overrides(a, ("model", "epochs", "seed", "batch_size"))},
                      f"{a.config or 'options'} [train]")
    arm = from_dict(ArmConfig, {**data.get("arm", {}), **overrides(a, ("arm", "dose", "synthetic_shard"), {"arm": "name"})},
                    f"{a.config or 'options'} [arm]")
    try:
        summary = train_classifier(a.shards, a.out, train, arm)
    except Preempted as exc:
        print(f"skingen: preempted: {exc}; run the same command again to resume", file=sys.stderr)
        return 3
    print(f"trained {train.model} ({arm.name}) best val macro-F1 {summary['best_val_macro_f1']:.3f} at epoch "
          f"{summary['best_epoch']}; predictions, curves, Grad-CAM in {a.out}")
    return 0


def _cmd_classify_metrics(a: argparse.Namespace) -> None:
    from .atomic import write_json
    from .metrics.predictions import evaluate_predictions

    res = evaluate_predictions(a.predictions, a.baseline, n_boot=a.n_boot, seed=a.seed, target_class=a.target_class)
    out = Path(a.out or Path(a.predictions).with_name("metrics.json"))
    write_json(out, res)
    print(", ".join(f"{k} {res[k]:.3f} [{res[k + '_ci'][0]:.3f}, {res[k + '_ci'][1]:.3f}]"
                    for k in ("macro_f1", "balanced_accuracy", "mel_f1", "roc_auc") if res[k + "_ci"][0] is not None))
    print(f"metrics -> {out}")


def _add_classify(sub: argparse._SubParsersAction) -> None:
    cls = sub.add_parser("classify", help="train classifiers, score predictions").add_subparsers(dest="cls_cmd", required=True)
    p = cls.add_parser("train", help="train one classifier cell on packed shards")
    p.add_argument("shards", help="folder with train.h5, val.h5, test.h5")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="TOML with [train] and [arm] tables")
    p.add_argument("--model", help="resnet18|resnet50|vit_b16|efficientnet_b0|vgg16")
    p.add_argument("--arm", help="real|gta|oversample|class_weighted|synthetic|synthetic_only")
    p.add_argument("--dose", type=float)
    p.add_argument("--synthetic-shard", dest="synthetic_shard")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--seed", type=int)
    p.set_defaults(fn=_cmd_classify_train)
    p = cls.add_parser("metrics", help="metrics.json with lesion-bootstrap CIs (and paired deltas)")
    p.add_argument("predictions")
    p.add_argument("--baseline", help="predictions.csv of the real-only arm, for paired deltas")
    p.add_argument("--out", help="default: metrics.json beside the predictions")
    p.add_argument("--n-boot", dest="n_boot", type=n_boot, default=1000,
                   help=f"bootstrap replicates (at least {MIN_N_BOOT}; default: %(default)s)")
    p.add_argument("--target-class", dest="target_class", default="MEL",
                   help="class the mel_* metrics score when the predictions have no MEL column")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_cmd_classify_metrics)


def _cmd_run(a: argparse.Namespace) -> int:
    from .grid.run import run_study, submit_driver

    if a.detach and not a.check:
        job = submit_driver(a.study, a.out)
        print(f"driver job {job} submitted: it runs every stage on SLURM and writes the report; "
              f"follow it with 'skingen status' on the results folder")
        return 0

    summary = run_study(a.study, executor=a.executor, out=a.out, dry_run=a.dry_run, until=a.until, check=a.check,
                        clean_stale=a.clean_stale)
    failed = sum(c["failed"] for c in summary.values())
    blocked = sum(c["blocked"] for c in summary.values())
    if failed or blocked:
        print(f"skingen run: {failed} cell(s) failed, {blocked} blocked by them; 'skingen status' shows logs; "
              "run again to retry them", file=sys.stderr)
        return 1
    return 0


def _cmd_status(a: argparse.Namespace) -> int:
    from .grid.run import status_lines

    lines = status_lines(a.results)
    print("\n".join(lines))
    return 1 if any(line.startswith("damaged: ") for line in lines) else 0  # damage found: exit 1


def _cmd_report(a: argparse.Namespace) -> None:
    from .report.build import build_report

    page = build_report(*a.results, out=a.out, n_boot=a.n_boot, seed=a.seed)
    print(f"report -> {page} (tables and figures beside it)")


def _add_grid(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="plan a study, skip done cells, run the rest",
                       description="Plan a study, skip done cells and run the rest, each cell as soon as the "
                                   "cells it depends on are done (stages overlap); then write the report.")
    p.add_argument("study", metavar="STUDY.toml")
    p.add_argument("--executor", choices=("debug", "local", "slurm"), help="default: the study's executor.kind")
    p.add_argument("--out", help="results folder (default results/<study name>)")
    p.add_argument("--dry-run", action="store_true", help="print cells per stage and their state; run nothing")
    p.add_argument("--check", action="store_true",
                   help="check data, assets, cluster, container, results folder and disk; submit nothing "
                        "(always done before submitting to SLURM)")
    p.add_argument("--detach", action="store_true", help="slurm: submit a driver job and return at once")
    p.add_argument("--clean-stale", dest="clean_stale", action="store_true",
                   help="first delete folders of old configs of this study's cells ('skingen status' lists them)")
    p.add_argument("--until", metavar="STAGE",
                   help=f"run stages up to STAGE only (e.g. pack: prepare the data); stages: {', '.join(STAGES)}")
    p.set_defaults(fn=_cmd_run)
    p = sub.add_parser("report", help="closing analysis of a results folder into DIR/report/",
                       description="Closing analysis: one joint hierarchical bootstrap of the whole study behind "
                                   "every interval. Several folders of one study (e.g. extra seeds run later) "
                                   "are pooled.")
    p.add_argument("results", metavar="DIR", nargs="+")
    p.add_argument("--out", help="report folder (default: the first DIR/report)")
    p.add_argument("--n-boot", type=n_boot, default=2000,
                   help=f"bootstrap replicates (at least {MIN_N_BOOT}; default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed, recorded in summary.json (default: 0)")
    p.set_defaults(fn=_cmd_report)
    p = sub.add_parser("status", help="cells done / running / failed / pending of a results folder")
    p.add_argument("results", metavar="DIR")
    p.set_defaults(fn=_cmd_status)


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="phantom dataset, ingest, split, pack").add_subparsers(dest="data_cmd", required=True)
    workers = dict(type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default: %(default)s)")
    classes = dict(default="paper5", help="class set: paper5 (default: NV BCC BKL MEL SCC), ham7, isic2019, FILE.toml")

    p = data.add_parser("phantom", help="write a procedural phantom dataset in HAM10000 layout")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--size", type=int, default=256, help="short side in px; images are 4:3 like HAM10000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", **workers)
    p.add_argument("--classes", **classes)
    p.set_defaults(fn=_cmd_phantom)

    p = data.add_parser("ingest", help="read HAM10000 / MILK10k / ISIC / folder data into manifest.csv")
    p.add_argument("roots", nargs="+", metavar="ROOT", help="extracted dataset folder(s)")
    p.add_argument("--out", required=True, help="manifest.csv to write (quarantine.csv goes beside it)")
    p.add_argument("--source", default="auto", help="auto|ham10000|milk10k|isic2019|folder (default auto)")
    p.add_argument("--milk10k-modality", default="dermoscopic", help="dermoscopic|clinical|all")
    p.add_argument("--no-verify", action="store_true", help="skip decoding every image")
    p.add_argument("--workers", **workers)
    p.add_argument("--classes", **classes)
    p.set_defaults(fn=_cmd_ingest)

    p = data.add_parser("split", help="lesion-grouped stratified train/val/test split")
    p.add_argument("manifest")
    p.add_argument("--out", required=True, help="split.csv to write")
    p.add_argument("--val", type=float, default=0.15)
    p.add_argument("--test", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dedup", action="store_true", help="merge perceptual-hash near-duplicates first")
    p.add_argument("--dedup-distance", type=int, default=6, help="max pHash Hamming distance")
    p.add_argument("--max-group-size", type=int, default=20,
                   help="stop when merging near-duplicates makes a group of more images than this (default 20)")
    p.add_argument("--classes", **classes)
    p.set_defaults(fn=_cmd_split)

    p = data.add_parser("pack", help="preprocess a split into HDF5 shards")
    p.add_argument("split")
    p.add_argument("--out", required=True, help="shard folder")
    p.add_argument("--size", type=int, required=True, help="square image size in px")
    p.add_argument("--pipeline", default="basic", help="basic|advanced|PRESET.toml (default basic)")
    p.add_argument("--workers", **workers)
    p.add_argument("--classes", **classes)
    p.set_defaults(fn=_cmd_pack)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="skingen", description="SkinGenBench: synthetic data for dermoscopy classifiers")
    parser.add_argument("--version", action="version", version=f"skingen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _add_data(sub)
    _add_preprocess(sub)
    _add_classify(sub)
    _add_grid(sub)
    add_gen_parser(sub)
    add_assets_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 on success, 2 on bad input (one line), 1 on an internal error."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("accelerate", "submitit", "timm", "h5py"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        code = args.fn(args)
    except UserError as exc:  # one line per problem
        print("\n".join(f"skingen: error: {line}" for line in str(exc).splitlines() or [""]), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skingen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``skingen gen summary | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for users; SKINGEN_DEBUG=1 shows the traceback
        if os.environ.get("SKINGEN_DEBUG"):
            raise
        print(f"skingen: internal error: {type(exc).__name__}: {exc} (set SKINGEN_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
