"""Stable Diffusion 1.x/2.x fine-tuned with LoRA on class prompts (generator ``sd_lora``)."""
