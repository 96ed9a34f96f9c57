"""The spatial parts of the video encoder from a timm ImageNet ViT."""

from __future__ import annotations

from pathlib import Path

from ..models.video_encoder import SpaceTimeViT
from .checked import load_checked
from .reading import read_checkpoint

# Parts of the video encoder that an image ViT does not have.
_VIDEO_ONLY = ("temporal_embed", "mask_token", ".norm_time.", ".attn_time.")
# Parts of a timm classifier that the encoder does not use.
_CLASSIFIER = ("head.", "fc_norm.", "pre_logits.", "head_drop.")


def load_image_vit(encoder: SpaceTimeViT, source: str) -> None:
    """Initialise the spatial parts from a timm ViT: a local state-dict file or a timm model name
    (downloaded by timm, e.g. ``vit_base_patch16_224.orig_in21k_ft_in1k``). The position
    embedding is resampled if the patch grid differs; temporal parts keep their fresh init."""
    if Path(source).is_file():
        state = read_checkpoint(source).state
    else:
        import timm

        state = timm.create_model(source, pretrained=True, num_classes=0).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER)}
    if "pos_embed" in state and state["pos_embed"].shape != encoder.pos_embed.shape:
        from timm.layers import resample_abs_pos_embed

        state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], list(encoder.patch_embed.grid_size))
    load_checked(encoder, state, source, may_miss=_VIDEO_ONLY)
