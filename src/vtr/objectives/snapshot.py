"""What the objectives read from the snapshot encoder (the EMA copy of the online video encoder).

Both MILES and MASCOT regress the snapshot's features of the unmasked clip; MASCOT also reads
the [CLS] attention of the same forward pass to decide what to mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import DualEncoder
from ..models.video_encoder import SpaceTimeViT, VideoEncoderOutput


@torch.no_grad()
def snapshot_forward(snapshot: SpaceTimeViT, video: Tensor, with_attention: bool = False) -> VideoEncoderOutput:
    """The snapshot on the unmasked clip, always in eval mode (no drop-path noise in the targets)."""
    snapshot.eval()
    return snapshot(video, return_cls_attn=with_attention)


@torch.no_grad()
def regression_targets(out: VideoEncoderOutput, encoder: DualEncoder, target: str) -> Tensor:
    """Targets at every patch (B, T*N, D): the layer-normed patch tokens, or (``joint``) their
    projection into the joint space by the online video projection."""
    tokens = out.tokens[:, 1:]
    if target == "joint":
        return encoder.video_proj(tokens)
    return F.layer_norm(tokens, tokens.shape[-1:])
