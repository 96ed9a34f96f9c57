"""Frozen patch tokens of the video encoder: after the final norm, after a middle block, and
projected into the joint space.

Why a middle block too: a contrastive model trains its last layer's patch outputs only through
the [CLS] token they are attended by, never directly, so what the encoder knows of a patch may
sit in an earlier block's tokens and be gone from the last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import DualEncoder


def middle_block(model: DualEncoder, block: int | None) -> int:
    """The block whose output the probes read besides the final tokens (default: (depth - 1) // 2, 0-based
    as ``model.video.blocks`` is indexed)."""
    return (len(model.video.blocks) - 1) // 2 if block is None else block


@torch.no_grad()
def patch_tokens(model: DualEncoder, video: Tensor, block: int, batch_size: int = 64) -> dict[str, Tensor]:
    """``final`` (B, T*N, D) patch tokens after the encoder's norm, ``middle`` (B, T*N, D) the
    output of block ``block``, and ``joint`` (B, T*N, E) the final tokens through the video
    projection, unit norm (what a caption's embedding is compared with), all float32 on the CPU."""
    device = next(model.parameters()).device
    captured: list[Tensor] = []
    hook = model.video.blocks[block].register_forward_hook(lambda _m, _i, out: captured.append(out[0][:, 1:]))
    out: dict[str, list[Tensor]] = {"final": [], "middle": [], "joint": []}
    try:
        for chunk in video.split(batch_size):
            tokens = model.video(chunk.to(device)).tokens[:, 1:]
            out["final"].append(tokens.float().cpu())
            out["middle"].append(captured.pop().float().cpu())
            out["joint"].append(F.normalize(model.video_proj(tokens).float(), dim=-1).cpu())
    finally:
        hook.remove()
    return {name: torch.cat(parts) for name, parts in out.items()}
