"""Model sizes the benchmarks share, as config overrides on top of a demo recipe."""

from __future__ import annotations


def vit_b_distilbert(img_size: int) -> list[str]:
    """ViT-B/16 video encoder + DistilBERT-sized text encoder (random init) at ``img_size`` px."""
    return [
        f"model.video.img_size={img_size}",
        f"data.input_res={img_size}",
        "model.video.patch_size=16",
        "model.video.width=768",
        "model.video.depth=12",
        "model.video.heads=12",
        "model.text.model_type=distilbert",
        "model.text.width=768",
        "model.text.depth=6",
        "model.text.heads=12",
    ]


def vit_s_bert6(img_size: int) -> list[str]:
    """ViT-S/16 video encoder + a 6-layer, 384-wide BERT text encoder (random init) at ``img_size`` px."""
    return [
        f"model.video.img_size={img_size}",
        f"data.input_res={img_size}",
        "model.video.patch_size=16",
        "model.video.width=384",
        "model.video.depth=12",
        "model.video.heads=6",
        "model.text.model_type=bert",
        "model.text.width=384",
        "model.text.depth=6",
        "model.text.heads=6",
    ]
