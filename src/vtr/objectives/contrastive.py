"""Symmetric InfoNCE over the global batch, negatives gathered from every rank.

Each rank scores its own rows against everyone's (open_clip's ``local_loss``), and the gather
keeps the autograd graph, so gradients flow back to the rank that produced each feature. With
DDP's gradient averaging this yields exactly the gradient of the single-process loss on the
concatenated batch. Ranks may hold different batch sizes (a corrupt clip was dropped), so the
gather pads to the largest and slices the padding off again.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
import torch.nn.functional as F
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """Rows of every rank concatenated in rank order, and the offset of this rank's rows."""
    if not is_distributed():
        return x, 0
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    padded = F.pad(x, (0, 0, 0, max(sizes) - x.shape[0]))
    # Differentiable all-gather: the backward pass reduce-scatters gradients to their owners.
    parts = funcol.all_gather_single_autograd(padded, gather_dim=0, group=dist.group.WORLD).split(max(sizes))
    gathered = torch.cat([part[:n] for part, n in zip(parts, sizes)])
    return gathered, sum(sizes[: dist.get_rank()])


def contrastive_loss(video: Tensor, text: Tensor, scale: Tensor | float) -> Tensor:
    """Mean of video-to-text and text-to-video cross-entropy; row i of ``video`` matches row i of ``text``.

    Inputs are unit-norm joint-space embeddings of this rank; ``scale`` is 1 / temperature. The
    logits and the loss are computed in fp32 even under bf16 autocast: at a scale of 20, bf16's
    8-bit mantissa would blur logits by about 0.1, as much as the gaps the loss learns from."""
    all_video, offset = gather_with_grad(video)
    all_text, _ = gather_with_grad(text)
    labels = torch.arange(video.shape[0], device=video.device) + offset
    with torch.autocast(video.device.type, enabled=False):
        video, text, all_video, all_text = (x.float() for x in (video, text, all_video, all_text))
        v2t = scale * video @ all_text.T
        t2v = scale * text @ all_video.T
        return (F.cross_entropy(v2t, labels) + F.cross_entropy(t2v, labels)) / 2
