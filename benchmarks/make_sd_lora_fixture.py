"""Make tests/data/sd_lora_replay.npz: diffusers' ``examples/text_to_image/train_text_to_image_lora.py`` itself, run
for a few steps on the tiny stand-in base with our trainer's random draws, then ``StableDiffusionPipeline`` +
``load_lora_weights`` sampling its LoRA, so a CI test can replay both through our code without diffusers' repository.

The reference is imported unmodified from a diffusers checkout named by DIFFUSERS_PATH (its ``src`` first on
sys.path; the example run as ``__main__`` with its own argument parser). Its extra needs (``datasets``) belong in a
scratch environment, never in the project. What is substituted are the random draws only, so that both sides see
the same ones: the data order (``RandomSampler``), the flips (``RandomHorizontalFlip``), the VAE posterior's noise
(``randn_tensor`` in diffusers' VAE module), the diffusion noise (``torch.randn_like``) and the timesteps
(``torch.randint``) come from ``skingen.generators.sd_lora.train.draws`` and ``ddpm_data.micro_batch`` for
(seed, micro-batch); each substitution checks the shape it is asked for. Recorded from the run: the LoRA weights
right after the example adds the adapter, after every optimiser step, the learning rate and the loss per step,
and the pixel batches the VAE was given (the fixture checks them against our images in our order).

Usage: DIFFUSERS_PATH=/path/to/diffusers python benchmarks/make_sd_lora_fixture.py [--out tests/data/sd_lora_replay.npz]
(a Python with ``datasets`` on top of the project's packages, e.g. a venv whose .pth adds the project venv).
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path

import numpy as np

EXAMPLE = "examples/text_to_image/train_text_to_image_lora.py"
COMMON = dict(resolution=32, rank=4, batch_size=4, lr=1e-3, lr_scheduler="cosine", warmup_steps=2, seed=7,
              random_flip=True, grad_clip=1.0, target_class="MEL")
VARIANTS = {"": dict(COMMON, max_steps=10),
            "vsnr_": dict(COMMON, max_steps=5, grad_accum=2, prediction_type="v_prediction", snr_gamma=5.0)}
N_IMAGES = 12  # a multiple of every variant's micro-batch x accumulation: the example also steps at an epoch's end
SAMPLE_SEED, SAMPLE_N, SAMPLE_STEPS = 3, 3, 4


def reference_root() -> Path:
    """The diffusers checkout (DIFFUSERS_PATH), its src/ first on sys.path."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reference_checkout import diffusers_checkout

    return diffusers_checkout(EXAMPLE)


def images(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Smooth random images (a colour gradient and a dark blob each), uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1.0)
    out = []
    for _ in range(N_IMAGES):
        base, tilt = rng.uniform(40, 215, size=3), rng.uniform(-40, 40, size=(2, 3))
        (cy, cx), r = rng.uniform(0.25, 0.75, size=2) * size, rng.uniform(0.1, 0.3) * size
        blob = np.exp(-((yy * (size - 1) - cy) ** 2 + (xx * (size - 1) - cx) ** 2) / (2 * r * r))[..., None]
        out.append(np.clip(base + tilt[0] * yy[..., None] + tilt[1] * xx[..., None] - 90 * blob, 0, 255).astype(np.uint8))
    return np.stack(out)


def image_folder(folder: Path, pixels: np.ndarray, prompt: str) -> None:
    """The example's ``--train_data_dir`` layout: images and metadata.jsonl with the caption per file."""
    from PIL import Image

    folder.mkdir(parents=True)
    rows = []
    for i, img in enumerate(pixels):
        Image.fromarray(img).save(folder / f"img_{i:03d}.png")
        rows.append(json.dumps({"file_name": f"img_{i:03d}.png", "text": prompt}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")


class Tape:
    """Our trainer's draws for every micro-batch, served in the order the example asks for them."""

    def __init__(self, cfg, n_images: int, latent_shape: tuple[int, ...]):
        from skingen.generators.ddpm_data import micro_batch
        from skingen.generators.sd_lora.train import draws, micro_size, run_steps

        self.used = run_steps(cfg, n_images) * cfg.grad_accum
        per_epoch = -(-n_images // micro_size(cfg))
        epochs = -(-self.used // per_epoch) + 1  # the data loader fetches one batch ahead
        self.orders = [np.random.default_rng([cfg.seed, e]).permutation(n_images).tolist() for e in range(epochs)]
        self.batches = [micro_batch(n_images, micro_size(cfg), cfg.seed, m)[0] for m in range(epochs * per_epoch)]
        d = [draws(len(b), latent_shape, cfg.seed, m, 1000) for m, b in enumerate(self.batches)]
        self.queues = {k: [t for one in d for t in (one[k] if k == "flip" else [one[k]])] for k in d[0]}
        self.flips = [one["flip"] for one in d[:self.used]]
        self.batches = self.batches[:self.used]
        self.epoch = 0

    def pop(self, kind: str, shape=None):
        """The next draw of ``kind``; its shape must be the one asked for."""
        value = self.queues[kind].pop(0)
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise SystemExit(f"{kind}: the example asked for {tuple(shape)}, the tape holds {tuple(value.shape)}")
        return value

    def next_order(self) -> list[int]:
        """The data order of the next epoch."""
        self.epoch += 1
        return self.orders[self.epoch - 1]


def substitute_draws(tape: Tape, rec: dict) -> None:
    """Route the example's random draws to the tape and record what it does with them."""
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF
    from diffusers.models import autoencoders

    vae_module = sys.modules["diffusers.models.autoencoders.vae"]
    randn_like, randint = torch.randn_like, torch.randint
    encode = autoencoders.AutoencoderKL.encode
    T.RandomHorizontalFlip.forward = lambda self, img: TF.hflip(img) if bool(tape.pop("flip")) else img
    torch.utils.data.RandomSampler.__iter__ = lambda self: iter(tape.next_order())
    vae_module.randn_tensor = lambda shape, **kw: tape.pop("posterior", shape).to(kw.get("dtype") or torch.float32)
    torch.randn_like = lambda x, **kw: tape.pop("noise", x.shape).to(x.dtype) if x.dim() == 4 else randn_like(x, **kw)

    def timesteps(low, high, size, **kw):
        return tape.pop("timesteps", size) if (low, high) == (0, 1000) and len(size) == 1 else randint(low, high, size, **kw)

    def recorded_encode(self, x, *args, **kw):
        rec["pixels"].append(x.detach().clone().numpy())
        return encode(self, x, *args, **kw)

    torch.randint = timesteps
    autoencoders.AutoencoderKL.encode = recorded_encode


def record_training(rec: dict) -> None:
    """LoRA weights after the adapter is added and after every optimiser step, lr and loss per step."""
    import torch
    from accelerate import Accelerator
    from diffusers import UNet2DConditionModel

    add_adapter, backward = UNet2DConditionModel.add_adapter, Accelerator.backward

    def lora(model) -> dict:
        return {n: p.detach().clone().float().numpy() for n, p in model.named_parameters() if "lora_" in n}

    def adding(self, *args, **kw):
        add_adapter(self, *args, **kw)
        rec["init"] = lora(self)
        rec["unet"] = self

    class RecordingAdamW(torch.optim.AdamW):
        def step(self, *args, **kw):
            rec["lr"].append(self.param_groups[0]["lr"])
            out = super().step(*args, **kw)
            rec["steps"].append(lora(rec["unet"]))
            return out

    def recording_backward(self, loss, **kw):
        rec["loss"].append(float(loss.detach()))
        return backward(self, loss, **kw)

    UNet2DConditionModel.add_adapter = adding
    torch.optim.AdamW = RecordingAdamW
    Accelerator.backward = recording_backward


def example_args(cfg, base: Path, data: Path, out: Path) -> list[str]:
    """The example's command line for ``cfg`` (fp32, one process, no validation, no hub)."""
    args = ["--pretrained_model_name_or_path", str(base), "--train_data_dir", str(data), "--caption_column", "text",
            "--resolution", str(cfg.resolution), "--center_crop", "--train_batch_size", str(cfg.batch_size // cfg.grad_accum),
            "--gradient_accumulation_steps", str(cfg.grad_accum), "--max_train_steps", str(cfg.max_steps),
            "--learning_rate", str(cfg.lr), "--lr_scheduler", cfg.lr_scheduler, "--lr_warmup_steps",
            str(cfg.warmup_steps), "--rank", str(cfg.rank), "--seed", str(cfg.seed), "--output_dir", str(out),
            "--max_grad_norm", str(cfg.grad_clip), "--mixed_precision", "no", "--dataloader_num_workers", "0",
            "--checkpointing_steps", "100000", "--report_to", "tensorboard"]
    if cfg.random_flip:
        args.append("--random_flip")
    if cfg.prediction_type:
        args += ["--prediction_type", cfg.prediction_type]
    if cfg.snr_gamma:
        args += ["--snr_gamma", str(cfg.snr_gamma)]
    return args


def run_example(root: Path, cfg, base: Path, pixels: np.ndarray, work: Path) -> dict:
    """The example's main() on the tape; returns what was recorded and its saved LoRA file."""
    from safetensors.numpy import load_file

    from skingen.generators.sd_lora.config import class_prompt

    image_folder(work / "data", pixels, class_prompt(cfg.prompt_template, cfg.target_class))
    rec = {"pixels": [], "lr": [], "loss": [], "steps": []}
    tape = Tape(cfg, len(pixels), (4, cfg.resolution // 2, cfg.resolution // 2))
    substitute_draws(tape, rec)
    record_training(rec)
    sys.argv = [EXAMPLE, *example_args(cfg, base, work / "data", work / "out")]
    runpy.run_path(str(root / EXAMPLE), run_name="__main__")
    flips = np.concatenate([np.asarray(f) for f in tape.flips])
    expected = np.concatenate([pixels[b] for b in tape.batches]).astype(np.float32) / 127.5 - 1
    expected = np.where(flips[:, None, None, None], expected[:, :, ::-1], expected)
    seen = np.concatenate(rec["pixels"]).transpose(0, 2, 3, 1)
    if seen.shape != expected.shape or np.abs(seen - expected).max() > 1e-5:
        raise SystemExit("the example's pixel batches are not our images in our order with our flips")
    rec["saved"] = load_file(str(work / "out" / "pytorch_lora_weights.safetensors"))
    return rec


def reference_samples(base: Path, lora_dir: Path, sampler: str):
    """The reference pipeline with the example's LoRA: images as floats in [0, 1], one generator per image."""
    import torch
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

    from skingen.generators.sd_lora.config import class_prompt
    from skingen.generators.sd_lora.sample import image_seed

    pipe = StableDiffusionPipeline.from_pretrained(str(base), safety_checker=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(lora_dir))
    pipe.scheduler = (DDIMScheduler.from_config(pipe.scheduler.config) if sampler == "ddim" else
                      DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++"))
    gens = [torch.Generator().manual_seed(image_seed(SAMPLE_SEED, i)) for i in range(SAMPLE_N)]
    return pipe(prompt=[class_prompt("a dermoscopic image of {name}", "MEL")] * SAMPLE_N,
                num_inference_steps=SAMPLE_STEPS, guidance_scale=7.5, generator=gens, height=32, width=32,
                output_type="np").images


def one_variant(root: Path, prefix: str, part: Path) -> None:
    """Run the example for one variant (a fresh process: the substitutions are global) into ``part``."""
    from skingen.generators.sd_lora.base import build_standin
    from skingen.generators.sd_lora.config import STANDIN, SDLoRAConfig

    cfg = SDLoRAConfig(base=STANDIN, **VARIANTS[prefix])
    pixels = images(np.random.default_rng(2026))
    with tempfile.TemporaryDirectory() as tmp:
        base = build_standin(Path(tmp) / "base")
        rec = run_example(root, cfg, base, pixels, Path(tmp))
        out = {"images": pixels, f"{prefix}lr": np.array(rec["lr"]), f"{prefix}loss": np.array(rec["loss"]),
               f"{prefix}settings": np.array(json.dumps(VARIANTS[prefix]))}
        out.update({f"{prefix}init/{k}": v for k, v in rec["init"].items()})
        for i, step in enumerate(rec["steps"]):
            out.update({f"{prefix}step{i + 1}/{k}": v for k, v in step.items()})
        out.update({f"{prefix}saved/{k}": v for k, v in rec["saved"].items()})
        if not prefix:
            for sampler in ("dpmsolver++", "ddim"):
                out[f"samples_{sampler}"] = reference_samples(base, Path(tmp) / "out", sampler)
    np.savez_compressed(part, **out)
    print(f"{prefix or 'plain '}: lr {np.round(rec['lr'], 6).tolist()}, loss {np.round(rec['loss'], 5).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="tests/data/sd_lora_replay.npz")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = reference_root()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.variant is not None:
        return one_variant(root, args.variant.strip("-"), Path(args.part))
    import subprocess

    import diffusers

    merged = {"source": np.array(f"diffusers {diffusers.__version__} from {root} "
                                 f"({os.environ.get('DIFFUSERS_COMMIT', 'commit unknown')}), {EXAMPLE}; "
                                 f"sampling seed {SAMPLE_SEED}, {SAMPLE_N} images, {SAMPLE_STEPS} steps, guidance 7.5")}
    with tempfile.TemporaryDirectory() as tmp:
        for prefix in VARIANTS:
            part = Path(tmp) / f"part{len(merged)}.npz"
            subprocess.run([sys.executable, __file__, f"--variant=-{prefix}", "--part", str(part)], check=True)
            merged.update(dict(np.load(part)))
    np.savez_compressed(args.out, **merged)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
