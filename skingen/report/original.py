"""The original study's published numbers (arXiv 2512.17585, README-final; basic + StyleGAN2-ADA, A2)
beside ours, for studies flagged ``compare_to_original = true``."""
from __future__ import annotations

from .joint import JointBootstrap
from .tables import Table, fmt

MODEL_NAMES = {"vit_b16": "ViT-B/16", "resnet50": "ResNet-50", "vgg16": "VGG-16", "efficientnet_b0": "EfficientNet-B0",
               "resnet18": "ResNet-18"}
# Macro-F1, MEL F1, MEL ROC-AUC of the original's A2 arm (one seed, no CIs, no held-out test set).
ORIGINAL_A2 = {"vit_b16": (0.8393, 0.8831, 0.9802), "resnet50": (0.8393, 0.8663, 0.9787),
               "vgg16": (0.8181, 0.8438, 0.9729), "efficientnet_b0": (0.7977, 0.8126, 0.9633),
               "resnet18": (0.7525, 0.7724, 0.9542)}


def original_comparison(jb: JointBootstrap | None) -> Table:
    """Original A2 numbers next to ours (basic pipeline; the StyleGAN2-ADA arm when present, else real-only)."""
    aggs = {k: jb.summary(k) if jb else {} for k in ("macro_f1", "mel_f1", "mel_roc_auc")}
    arms = {k[1] for a in aggs.values() for k in a if k[0] == "basic"}
    arm = next((a for a in sorted(arms) if "stylegan" in a), "real")
    body = []
    for model, orig in ORIGINAL_A2.items():
        ours = [aggs[k].get(("basic", arm, model)) for k in ("macro_f1", "mel_f1", "mel_roc_auc")]
        body.append([MODEL_NAMES[model]] + [f"{o:.4f}" for o in orig]
                    + [fmt(*v[:3]) if v else "missing" for v in ours])
    note = (f"Ours: basic pipeline, arm '{arm}', lesion-grouped held-out test set, 95 % joint-bootstrap CIs. The original: one seed, "
            "model selected and reported on the same folder, lesions on both sides of the split (PROTOCOL.md).")
    return Table("original_comparison", "The original's A2 (basic + StyleGAN2-ADA) vs ours",
                 ["Model", "Orig Macro-F1", "Orig MEL F1", "Orig MEL AUC", "Our Macro-F1", "Our MEL F1", "Our MEL AUC"],
                 body, note)
