"""Classifiers: timm model factory, augmentation arms, Accelerate training loop, Grad-CAM."""
