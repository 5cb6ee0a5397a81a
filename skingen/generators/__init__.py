"""Generators of synthetic images: DDPM (diffusers UNet, our Accelerate loop) and StyleGAN2-ADA (our PyTorch
implementation); `registry.GENERATORS` names them."""
