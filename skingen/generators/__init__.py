"""Generators of synthetic images: DDPM (diffusers UNet, our Accelerate loop); StyleGAN2-ADA to come."""
