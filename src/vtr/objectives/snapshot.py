"""What the objectives read from the snapshot encoder (the EMA copy of the online video encoder).

Both MILES and MASCOT regress the snapshot's features of the unmasked clip; MASCOT also reads
the [CLS] attention of the same forward pass to decide what to mask. ``cls_cosine`` measures how
far the snapshot has drifted from the online encoder, to tell whether its targets still carry
something the online encoder has not learned yet.
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
def regression_targets(out: VideoEncoderOutput, encoder: DualEncoder, target: str, norm: bool = False) -> Tensor:
    """Targets at every patch (B, T*N, D): the layer-normed patch tokens, or (``joint``) their
    projection into the joint space by the online video projection, layer-normed per token too
    with ``norm`` (then the projection's scale, which weight decay moves, does not reach the loss)."""
    tokens = out.tokens[:, 1:]
    if target == "joint":
        joint = encoder.video_proj(tokens)
        return F.layer_norm(joint, joint.shape[-1:]) if norm else joint
    return F.layer_norm(tokens, tokens.shape[-1:])


@torch.no_grad()
def cls_cosine(
    snapshot_out: VideoEncoderOutput,
    online: SpaceTimeViT,
    video: Tensor,
    online_out: VideoEncoderOutput | None = None,
) -> Tensor:
    """Per clip (B,), the cosine between the snapshot's and the online encoder's [CLS] on the
    unmasked clip. ``online_out`` reuses an unmasked online forward the step did anyway; without
    one the online encoder runs once more, in eval mode so that it draws no random numbers (a
    run's results must not depend on how often it logs)."""
    if online_out is None:
        was_training = online.training
        online.eval()
        try:
            online_out = online(video)
        finally:
            online.train(was_training)
    return F.cosine_similarity(snapshot_out.tokens[:, 0].float(), online_out.tokens[:, 0].float(), dim=-1)
