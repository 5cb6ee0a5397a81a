"""The StyleGAN2-ADA training cell: the reference's phases (``steps``), EMA, adaptive augmentation.

Settings left unset (None) come from the preset (``presets``: the reference's cfg_specs). With
``mixed_precision = "auto"`` (the default) runs as the reference does by default on a GPU -- the 4
highest-resolution blocks of G and D in float16 with activations clamped to +-256 and the modulated
convolutions' weights and styles pre-normalised, everything else in float32 -- and in float32 on a CPU
(float16 convolutions there are slow and not what anyone trains with); "fp16" and "bf16" force the
reduced blocks to that dtype, "no" keeps float32 everywhere.

Training state (G, D, G_ema, both optimisers, ADA p and controller, path-length mean, step, RNG
states) lives in ``state/rank<k>.pt`` apart from the network snapshot (``snapshot/``: G_ema weights
as safetensors + ``network.json``), as in NVlabs/edm; NVIDIA's own ``--resume`` restores only the
networks. State is saved every ``checkpoint_every`` steps and on SIGUSR2/SIGTERM, and loaded with
``weights_only=True``. Several processes (Accelerate, gloo on CPU) average gradients explicitly,
since R1 and path-length regularisation take double backward passes.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ...atomic import atomic_path, write_csv, write_json
from ...classify.loop import Preempted, StopFlag
from ...errors import UserError
from ...progress import progress
from ..common import write_rank_digest
from ..ddpm_data import TrainImages
from .augment import AdaController, AugmentPipe
from .loss import lazy_adam
from .networks import Discriminator, Generator, network_config, set_reduced_precision
from .presets import NETWORK_KEYS, TRAINING_KEYS, preset_settings
from .sequence import RealSequence
from .snapshot import load_for_transfer, save_snapshot
from .steps import train_step

log = logging.getLogger(__name__)
CURVE_COLUMNS = ("step", "kimg", "loss_g", "loss_d", "r1", "pl", "ada_p", "ada_rt")


@dataclass(frozen=True)
class StyleGAN2Config:
    """Everything a StyleGAN2-ADA cell depends on; None: the preset's value (``resolved()``)."""

    resolution: int = 256
    preset: str = "auto"  # auto | paper256 | paper512 | paper1024 | stylegan2 | small | tiny
    fmaps: float | None = None  # channel_base = fmaps * 32768 (channel_max 512)
    mapping_layers: int | None = None
    mbstd_group: int | None = None
    classes: tuple[str, ...] = ("MEL",)
    conditional: bool = False
    kimg: float = 5000.0  # real images shown, in thousands
    batch_size: int | None = None
    g_lr: float | None = None
    d_lr: float | None = None
    r1_gamma: float | None = None
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    style_mixing: float = 0.9
    ema_kimg: float | None = None
    ema_rampup: float | None = None  # 0: none
    augment: str = "ada"  # ada | fixed:P | none
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float | None = None  # None: 500, or 100 when resuming (init_from), as the reference
    mirror: bool = False  # x-flip the dataset (besides ADA's own flips)
    mixed_precision: str = "auto"  # auto (fp16 on a GPU, no on a CPU) | fp16 | bf16 | no: see the module docstring
    init_from: str = ""  # a StyleGAN2 snapshot/ folder (ours or imported): transfer, copied by name
    compile: bool = False
    checkpoint_every: int = 0  # steps; 0: only at the end and on signals
    grid_images: int = 16
    truncation_psi: float = 0.8
    log_every: int = 10
    seed: int = 0

    def resolved(self) -> StyleGAN2Config:
        """This config with every unset field taken from its preset at its resolution, and, when it resumes
        (``init_from``), the reference's resume settings for the fields the study left unset."""
        preset = preset_settings(self.preset, self.resolution)
        values = {k: preset[k] for k in (*TRAINING_KEYS, *NETWORK_KEYS) if getattr(self, k) is None}
        values.update(self.resume_defaults())
        values.setdefault("ada_kimg", 500.0 if self.ada_kimg is None else self.ada_kimg)
        return replace(self, **values)

    def resume_defaults(self) -> dict:
        """What the reference's train.py sets when it resumes (ADA speed 100 kimg, no EMA ramp-up), for the
        fields this config leaves unset; {} when it does not resume."""
        if not self.init_from:
            return {}
        return {k: v for k, v in (("ada_kimg", 100.0), ("ema_rampup", 0.0)) if getattr(self, k) is None}

    @property
    def steps(self) -> int:
        """Optimiser steps for ``kimg`` thousand images at the batch size."""
        return max(1, round(self.kimg * 1000 / (self.batch_size or self.resolved().batch_size)))


PRECISIONS = {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16, "auto": None}


def reduced_dtype(cfg: StyleGAN2Config, cuda: bool) -> torch.dtype | None:
    """The dtype of the reduced-precision blocks (None: float32 everywhere, no clamp)."""
    if cfg.mixed_precision in ("auto", "fp16") and not cuda:
        if cfg.mixed_precision == "fp16":
            log.warning("mixed_precision = 'fp16' needs a GPU; this CPU run trains in float32 (recorded)")
        return None
    return torch.float16 if cfg.mixed_precision == "auto" else PRECISIONS[cfg.mixed_precision]


def validate(cfg: StyleGAN2Config) -> float | None:
    """One-line errors for bad settings; returns the fixed augmentation probability, if any."""
    if cfg.mixed_precision not in PRECISIONS:
        raise UserError(f"mixed_precision {cfg.mixed_precision!r}: use 'auto', 'fp16', 'bf16' or 'no'")
    if cfg.augment in ("ada", "none"):
        return None
    if cfg.augment.startswith("fixed:"):
        try:
            return float(cfg.augment.split(":", 1)[1])
        except ValueError:
            pass
    raise UserError(f"augment {cfg.augment!r}: use 'ada', 'fixed:P' (0 <= P <= 1) or 'none'")


class Run:
    """Networks, optimisers, augmentation and counters of one training run."""

    def __init__(self, cfg: StyleGAN2Config, data: TrainImages, acc):
        fixed_p = validate(cfg)
        self.resume_defaults = cfg.resume_defaults()
        cfg = cfg.resolved()
        self.cfg, self.data, self.acc = cfg, data, acc
        c_dim = len(data.class_names) if cfg.conditional else 0
        dtype = reduced_dtype(cfg, acc.device.type == "cuda")
        reduced = dtype is not None  # the reference: num_fp16_res 4 and conv_clamp 256, or neither
        self.net_cfg = network_config(cfg.preset, cfg.resolution, c_dim, cfg.fmaps, cfg.mapping_layers, cfg.mbstd_group,
                                      conv_clamp=256.0 if reduced else None, num_fp16_res=4 if reduced else 0)
        torch.manual_seed(cfg.seed)  # identical initial networks on every rank
        self.G = Generator(self.net_cfg).to(acc.device)
        self.D = Discriminator(self.net_cfg).to(acc.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)  # snapshots and grids: float32
        self.precision_used = str(dtype).replace("torch.", "") if reduced else "float32"
        self.reduced_blocks = [f"G.{n}" for n in set_reduced_precision(self.G, dtype)] + \
            [f"D.{n}" for n in set_reduced_precision(self.D, dtype)]
        # init_from: copied by name as the reference resumes (G, G_ema, D); what was copied goes into the summary
        self.transfer = load_for_transfer(cfg.init_from, self.G, self.D, self.G_ema) if cfg.init_from else None
        self.augment = AugmentPipe().to(acc.device)
        if fixed_p is not None:
            self.augment.p.fill_(fixed_p)
        self.ada = AdaController(cfg.ada_target, cfg.ada_interval, cfg.ada_kimg)
        # as the reference, the lazy intervals scale Adam even when their regulariser is off (weight or gamma 0)
        self.opt_g = lazy_adam(self.G.parameters(), cfg.g_lr, (0.0, 0.99), cfg.pl_interval)
        self.opt_d = lazy_adam(self.D.parameters(), cfg.d_lr, (0.0, 0.99), cfg.r1_interval)
        self.pl_mean = torch.zeros([], device=acc.device)
        self.gamma = cfg.r1_gamma
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + acc.process_index)
        self.sequence = RealSequence(len(data) * (2 if cfg.mirror else 1), cfg.seed, acc.process_index,
                                     acc.num_processes)
        self.step, self.curves = 0, []
        self.g_fwd, self.d_fwd = self.G, self.D  # path length and R1 (double backward) always use G and D
        if cfg.compile:  # G's loss goes through G.mapping and G.synthesis: compile those
            self.g_fwd = SimpleNamespace(mapping=torch.compile(self.G.mapping),
                                         synthesis=torch.compile(self.G.synthesis))
            self.d_fwd = torch.compile(self.D)

    @property
    def per_process(self) -> int:
        return per_process_batch(self.cfg.batch_size, self.acc.num_processes)

    def state_dict(self) -> dict:
        """Everything needed to continue exactly."""
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "augment_p": self.augment.p,
                "ada": asdict(self.ada), "pl_mean": self.pl_mean, "step": self.step, "curves": self.curves,
                "rng_torch": torch.get_rng_state(), "rng_gen": self.gen.get_state(),
                "sequence": self.sequence.state_dict(),
                "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        for name in ("G", "D", "G_ema"):
            getattr(self, name).load_state_dict(state[name])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.augment.p.copy_(state["augment_p"])
        self.ada = AdaController(**state["ada"])
        self.pl_mean.copy_(state["pl_mean"])
        self.step, self.curves = int(state["step"]), list(state["curves"])
        torch.set_rng_state(state["rng_torch"])
        self.gen.set_state(state["rng_gen"])
        self.sequence.load_state_dict(state["sequence"])
        if state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next real images of the sequence in [-1, 1] (index n + i: image i flipped) and their one-hot
        labels (or None)."""
        picks = self.sequence.take(self.per_process)
        x, labels = self.data.batch(picks % len(self.data), False)
        flipped = torch.from_numpy(picks >= len(self.data))[:, None, None, None]
        x = torch.where(flipped, x.flip(3), x)
        return x.to(self.acc.device), self._one_hot(labels) if self.cfg.conditional else None

    def latents(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.net_cfg.z_dim, generator=self.gen).to(self.acc.device)

    def gen_c(self, n: int) -> torch.Tensor | None:
        """One-hot labels drawn from the data's label distribution for ``n`` fakes (None: unconditional)."""
        if not self.cfg.conditional:
            return None
        return self._one_hot(self.data.labels[torch.randint(0, len(self.data), (n,), generator=self.gen)])

    def _one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(labels, len(self.data.class_names)).float().to(self.acc.device)


def _ema_update(run: Run) -> None:
    cfg = run.cfg
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup > 0:  # images shown before this step, as the reference (the first step copies G)
        ema_nimg = min(ema_nimg, run.step * cfg.batch_size * cfg.ema_rampup)
    beta = 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(run.G_ema.parameters(), run.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(run.G_ema.buffers(), run.G.buffers()):
            b_ema.copy_(b)


def _save_state(run: Run, out: Path) -> None:
    run.acc.wait_for_everyone()
    with atomic_path(out / "state" / f"rank{run.acc.process_index}.pt") as tmp:
        torch.save(run.state_dict(), tmp)


def _load_state(run: Run, out: Path) -> None:
    path = out / "state" / f"rank{run.acc.process_index}.pt"
    if path.is_file():
        run.load_state_dict(torch.load(path, map_location=run.acc.device, weights_only=True))


def _log(run: Run, bar, losses: list) -> None:
    cfg = run.cfg
    if run.step % cfg.log_every and run.step != cfg.steps:
        return
    mean = np.mean(losses, axis=0) if losses else [float("nan")] * 4
    run.curves.append({"step": run.step, "kimg": round(run.step * cfg.batch_size / 1000, 4),
                       **dict(zip(("loss_g", "pl", "loss_d", "r1"), map(float, mean))),
                       "ada_p": round(float(run.augment.p), 5), "ada_rt": round(run.ada.r_t, 4)})
    bar.set_postfix(loss_g=f"{mean[0]:.3f}", loss_d=f"{mean[2]:.3f}", p=f"{float(run.augment.p):.3f}")
    losses.clear()


def train_stylegan2(train_shard: str | os.PathLike, out: str | os.PathLike, cfg: StyleGAN2Config,
                    stop_after_steps: int | None = None) -> dict:
    """Train (or resume) StyleGAN2-ADA on the train shard's images of ``cfg.classes``."""
    from accelerate import Accelerator

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(cpu=not torch.cuda.is_available())  # reduced precision: per block (Run), not autocast
    # The run seeds torch's global RNGs (network init, synthesis noise); the caller's are restored afterwards.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if acc.device.type == "cuda" else []):
        return _train(Run(cfg, TrainImages(train_shard, cfg.classes, cfg.resolution), acc), out, stop_after_steps)


def _train(run: Run, out: Path, stop_after_steps: int | None) -> dict:
    cfg = run.cfg
    _load_state(run, out)
    start, losses = time.perf_counter(), []
    bar = progress(total=cfg.steps, initial=run.step, desc=f"stylegan2-ada {out.name}", unit="step",
                   enabled=run.acc.is_main_process)
    with StopFlag() as stop:
        while run.step < cfg.steps:
            losses.append(train_step(run))
            _ema_update(run)
            run.step += 1
            _log(run, bar, losses)
            bar.update(1)
            if stop.requested or (stop_after_steps is not None and run.step >= stop_after_steps and run.step < cfg.steps):
                _save_state(run, out)
                raise Preempted(f"stopped at step {run.step}; state saved in {out / 'state'}")
            if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
                _save_state(run, out)
                _snapshot(run, out)
    bar.close()
    _save_state(run, out)
    _snapshot(run, out)
    return _summary(run, out, time.perf_counter() - start)


def _snapshot(run: Run, out: Path) -> None:
    if run.acc.is_main_process:
        save_snapshot(run.G_ema, out / "snapshot", {"step": run.step, "kimg": run.step * run.cfg.batch_size / 1000,
                                                     "ada_p": float(run.augment.p), "config": asdict(run.cfg),
                                                     "class_names": list(run.data.class_names)},
                      out / "samples" / f"step_{run.step:07d}.png", run.cfg.grid_images, run.cfg.truncation_psi,
                      run.cfg.seed, D=run.D,
                      class_index=run.data.class_names.index(run.cfg.classes[0]) if run.cfg.conditional else None)
        write_csv(out / "curves.csv", CURVE_COLUMNS, run.curves)


def per_process_batch(batch_size: int, processes: int) -> int:
    """Images per process: the global batch split evenly, as the reference requires (batch % GPUs == 0), so that
    the counters kept in images (kimg, EMA half-life, ADA's adjustment) count the images actually trained on."""
    if batch_size % processes or batch_size // processes < 2:
        raise UserError(f"[stylegan2_ada] batch_size = {batch_size} does not split into at least 2 images on each of "
                        f"{processes} processes; set a multiple of {processes} (>= {2 * processes})")
    return batch_size // processes


def _summary(run: Run, out: Path, seconds: float) -> dict:
    write_rank_digest(run.G, out, run.acc.process_index)
    summary = {"config": asdict(run.cfg), "network": asdict(run.net_cfg), "steps": run.step,
               "kimg": run.step * run.cfg.batch_size / 1000, "seconds_this_process": round(seconds, 2),
               "num_processes": run.acc.num_processes, "per_process_batch": run.per_process,
               "effective_batch": run.per_process * run.acc.num_processes, "r1_gamma": run.gamma,
               "random_streams": f"latents, mixing, noise, augmentation: seed * 1000 + process index "
                                 f"(0..{run.acc.num_processes - 1}); real images: one seeded walk, every "
                                 f"{run.acc.num_processes}-th image per process",
               "reduced_precision_blocks": run.reduced_blocks, "reduced_precision_dtype": run.precision_used,
               "ada_p": float(run.augment.p), "train_images": len(run.data),
               "train_image_ids_sha256": run.data.ids_sha256(), "train_shard": run.data.source,
               "transfer": run.transfer, "resume_defaults_applied": run.resume_defaults, "final": run.curves[-1] if run.curves else None, "sec_per_kimg": round(
                   seconds / max(run.step * run.cfg.batch_size / 1000, 1e-9), 3) if run.step else None}
    if run.acc.is_main_process:
        write_json(out / "train_summary.json", summary)
    run.acc.wait_for_everyone()
    return summary

