"""sd_lora benchmark (issue 26): seconds per training step of our loop (cached VAE posteriors and prompt embeddings,
so a step runs only the UNet) vs a bare loop doing what diffusers' ``train_text_to_image_lora.py`` does every step
(VAE encode and sample, text encoder, UNet forward/backward, AdamW, schedule), same base, LoRA, batch and draws,
stepped alternately in one process, compared by median step time (target: ours <= 0.7x bare); plus the one-off
cost of the cache and sampling images/s (DPM-Solver++ 25 steps, guidance 7.5).

The CPU base is SD-1.5's layout (VAE, UNet and 12-layer CLIP text encoder) with every width divided by 8, so each
part's FLOPs are divided by 64 and their proportions stay SD-1.5's; ``--sd15`` builds SD-1.5's shapes with random weights (GPU: 512 px, fp16).

Usage: python benchmarks/bench_sd_lora.py [--steps 8] [--batch 4] [--sd15]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardWriter
from skingen.generators.sd_lora.base import _byte_vocabulary
from skingen.generators.sd_lora.config import SDLoRAConfig
from skingen.generators.sd_lora.train import Trainer, diffusion_loss, draws


def build_base(folder: Path, sd15: bool) -> Path:
    """A diffusers SD folder with random weights: SD-1.5's shapes, or its pattern at reduced widths."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = _byte_vocabulary()
    scale = 1 if sd15 else 8  # every width / 8: each part's FLOPs / 64, so their proportions stay SD-1.5's
    width, vae_width = tuple(c // scale for c in (320, 640, 1280, 1280)), tuple(c // scale for c in (128, 256, 512, 512))
    text, groups = 768 // scale, 32 // scale
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=text, intermediate_size=4 * text,
                                      num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                      bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"]))
    vae = AutoencoderKL(block_out_channels=vae_width, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2,
                        norm_num_groups=groups)
    unet = UNet2DConditionModel(block_out_channels=width, cross_attention_dim=text, attention_head_dim=8,
                                norm_num_groups=groups)
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                          steps_offset=1)
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False).save_pretrained(str(folder))
    return folder


def write_shard(path: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    with ShardWriter(path, size, attrs={"split": "train"}) as w:
        for i in range(n):
            w.add(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), CLASS_INDEX["MEL"], f"i{i}", f"l{i}", "x")
    return path


def bare_step(t: Trainer):
    """The example's per-step work on the same parts: encode pixels and prompts every step."""
    from skingen.generators.sd_lora.latents import encode_text, prompts_of, token_ids

    cfg, base, acc = t.cfg, t.base, t.acc
    prompts, index = prompts_of(t.data, cfg)
    counter = iter(range(10 ** 9))

    def step() -> None:
        micro = next(counter)
        idx = np.arange(micro * cfg.batch_size, (micro + 1) * cfg.batch_size) % len(t.data)
        d = draws(len(idx), t.latent_shape(), cfg.seed, micro, 1000)
        x, _ = t.data.batch(idx, False)
        p = next(base.vae.parameters())
        with torch.no_grad():
            latents = base.vae.encode(x.to(acc.device, p.dtype)).latent_dist.sample() * base.vae.config.scaling_factor
            text = encode_text(base, token_ids(base, [prompts[i] for i in index[idx]]))
        with acc.autocast():
            loss = diffusion_loss(t.unet, base.scheduler, latents, d["noise"].to(acc.device, p.dtype),
                                  d["timesteps"].to(acc.device), text, cfg)
        acc.backward(loss)
        t.opt.step()
        t.lr_sched.step()
        t.opt.zero_grad()
    return step


def timed(fn, sync: bool) -> float:
    start = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--sd15", action="store_true", help="SD-1.5 shapes at 512 px (for the GPU run)")
    parser.add_argument("--sample", type=int, default=2, help="images to sample for images/s")
    args = parser.parse_args()
    res = 512 if args.sd15 else 128
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = build_base(tmp / "base", args.sd15)
        shard = write_shard(tmp / "shards" / "train.h5", 4 * args.batch, res)
        cfg = SDLoRAConfig(base=str(base), resolution=res, batch_size=args.batch, max_steps=10 ** 6, warmup_steps=0,
                           checkpoint_every=0, grid_images=0, mixed_precision="auto")
        start = time.perf_counter()
        ours = Trainer(shard, tmp / "ours", cfg)
        setup = time.perf_counter() - start
        bare = bare_step(Trainer(shard, tmp / "bare", cfg))
        counter = iter(range(10 ** 9))
        times = {"ours": [], "bare": []}
        for i in range(args.steps + 1):  # alternate; the first pair is warm-up
            t_ours, t_bare = timed(lambda: ours.step(next(counter)), gpu), timed(bare, gpu)
            if i:
                times["ours"].append(t_ours)
                times["bare"].append(t_bare)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(f"device {'cuda ' + torch.cuda.get_device_name(0) if gpu else 'cpu'}, {res} px, batch {args.batch}, "
              f"precision {ours.acc.mixed_precision}, {'SD-1.5 shapes' if args.sd15 else 'SD-1.5 layout, widths / 8'}")
        print(f"step (median of {args.steps}): ours {med['ours']:.3f} s ({1 / med['ours']:.2f} steps/s), "
              f"bare example-like {med['bare']:.3f} s; ratio ours/bare {med['ours'] / med['bare']:.3f} (target <= 0.7)")
        print(f"one-off: set-up incl. encoding {len(ours.data)} images x 2 flips {setup:.1f} s")
        from skingen.generators.sd_lora.snapshot import save_snapshot

        save_snapshot(tmp / "ours" / "snapshot", ours.acc.unwrap_model(ours.unet), cfg, ours.base, 1, ("MEL",))
        from skingen.generators.sd_lora.sample import sample_images

        start = time.perf_counter()
        sample_images(tmp / "ours", args.sample, "MEL", batch=args.sample, steps=25)
        took = time.perf_counter() - start
        print(f"sampling: {args.sample / took:.3f} images/s (DPM-Solver++ 25 steps, guidance 7.5, batch {args.sample})")


if __name__ == "__main__":
    main()
