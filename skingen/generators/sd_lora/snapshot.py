"""LoRA on the UNet (peft), its training state, and its snapshot in the ecosystem's format."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from ...atomic import atomic_path, write_json
from ...errors import UserError
from .config import SDLoRAConfig

TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
LORA_FILE = "pytorch_lora_weights.safetensors"


def add_lora(unet: torch.nn.Module, cfg: SDLoRAConfig, seed: int) -> torch.nn.Module:
    """The example's adapter (Gaussian init of A, zero B) on the attention projections, drawn from ``seed``;
    LoRA weights in float32 whatever the frozen weights' dtype."""
    from peft import LoraConfig

    config = LoraConfig(r=cfg.rank, lora_alpha=cfg.lora_alpha(), init_lora_weights="gaussian",
                        target_modules=list(TARGET_MODULES))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(config)
    for p in lora_parameters(unet):
        p.data = p.data.float()
    return unet


def lora_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable (LoRA) parameters."""
    return [p for p in unet.parameters() if p.requires_grad]


def lora_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA weights by peft's names."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}


def set_lora_state(unet: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load LoRA weights by peft's names; every LoRA weight must be given."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(unet, state)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora" in k]
    if missing:
        raise UserError(f"LoRA state lacks {len(missing)} weights (first {missing[0]}); it is from another base or rank")


def save_state(folder: Path, unet: torch.nn.Module, opt, lr_sched, scaler, identity: dict, progress: dict) -> None:
    """LoRA, optimiser, schedule, loss scaler and progress in one file (the frozen base is not saved: it is the
    base folder); ``identity`` (base, rank, alpha) is checked on resume."""
    state = {"lora": lora_state(unet), "optimizer": opt.state_dict(), "lr_scheduler": lr_sched.state_dict(),
             "scaler": scaler.state_dict() if scaler is not None else None, "identity": identity, "progress": progress}
    with atomic_path(folder / "training_state.pt") as tmp:
        torch.save(state, tmp)


def load_state(folder: Path, unet: torch.nn.Module, opt, lr_sched, scaler, identity: dict) -> dict:
    """Restore what ``save_state`` wrote; return the progress saved with it."""
    path = folder / "training_state.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("identity") != identity:
        raise UserError(f"{path}: saved by a run with {state.get('identity')}, this run is {identity}; use a new "
                        "--out folder (or delete its state/) to train these settings")
    set_lora_state(unet, state["lora"])
    opt.load_state_dict(state["optimizer"])
    lr_sched.load_state_dict(state["lr_scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return state["progress"]


def save_snapshot(folder: Path, unet: torch.nn.Module, cfg: SDLoRAConfig, base, step: int,
                  class_names: tuple[str, ...]) -> None:
    """``pytorch_lora_weights.safetensors`` as diffusers writes it, and ``snapshot.json``."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    layers = convert_state_dict_to_diffusers(lora_state(unet))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".lora-"))
    try:
        # the adapter's settings (alpha) travel in the file, so load_lora_weights scales as trained
        StableDiffusionPipeline.save_lora_weights(str(tmp), unet_lora_layers=layers, safe_serialization=True,
                                                  unet_lora_adapter_metadata=unet.peft_config["default"].to_dict())
        os.replace(tmp / LORA_FILE, folder / LORA_FILE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(folder / "snapshot.json", {
        "step": step, "base": cfg.base, "base_folder": str(base.folder), "base_fingerprint": base.fingerprint,
        "resolution": cfg.resolution, "rank": cfg.rank, "alpha": cfg.lora_alpha(),
        "prediction_type": base.scheduler.config.prediction_type, "prompt_template": cfg.prompt_template,
        "class_names": list(class_names), "config": asdict(cfg)})
