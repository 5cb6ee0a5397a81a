"""StyleGAN2-ADA, our own licence-clean implementation from the papers (no NVIDIA code)."""
