"""Space-time ViT: the Frozen-in-Time / MILES video encoder.

Tokens are one [CLS] followed by the patches of frame 1, frame 2, ... Each patch gets the image
ViT's spatial position embedding plus a learned temporal embedding of its frame (zero at init);
an image is a 1-frame video and so uses only the first temporal embedding. Parameter names of the
spatial parts follow timm's ``VisionTransformer``, so ImageNet weights load by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, trunc_normal_
from timm.models.vision_transformer import init_weights_vit_timm
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .layers import BlockWiring, DividedSpaceTimeBlock


def resize_temporal_embed(embed: Tensor, num_frames: int) -> Tensor:
    """(1, T, D) temporal embeddings for ``num_frames`` frames: the first ones for fewer frames
    (an image uses the first), linearly interpolated for more (e.g. 8-frame ActivityNet clips on
    a 4-frame model). The one rule for clips at run time and for checkpoints loaded into a model
    built for another number of frames."""
    if num_frames <= embed.shape[1]:
        return embed[:, :num_frames]
    stretched = F.interpolate(embed.transpose(1, 2), size=num_frames, mode="linear", align_corners=True)
    return stretched.transpose(1, 2)


@dataclass
class VideoEncoderOutput:
    tokens: Tensor  # (B, 1 + T*N, D) after the final norm; [CLS] first
    num_frames: int
    cls_attn: Tensor | None = None  # (B, T, N): last block's [CLS]-to-patch attention, head-averaged


class SpaceTimeViT(nn.Module):
    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        width: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        num_frames: int = 4,
        drop_path_rate: float = 0.0,
        grad_checkpointing: bool = False,
        block_wiring: BlockWiring = "released",
    ) -> None:
        super().__init__()
        self.width = width
        self.num_frames = num_frames
        self.grad_checkpointing = grad_checkpointing
        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=3, embed_dim=width)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, width))
        self.temporal_embed = nn.Parameter(torch.zeros(1, num_frames, width))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            DividedSpaceTimeBlock(width, heads, mlp_ratio, rate, block_wiring) for rate in rates
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        trunc_normal_(self.mask_token, std=0.02)
        self.apply(init_weights_vit_timm)
        for block in self.blocks:
            block.zero_temporal_branch()

    def temporal_embedding(self, num_frames: int) -> Tensor:
        """The temporal embeddings of a ``num_frames`` clip (:func:`resize_temporal_embed`)."""
        return resize_temporal_embed(self.temporal_embed, num_frames)

    def embed(self, video: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, C, H, W) -> input tokens (B, 1 + T*N, D). ``mask`` (B, T, N), True = hidden:
        those patch embeddings are replaced by the learnable mask token before position terms."""
        b, t = video.shape[:2]
        x = self.patch_embed(video.flatten(0, 1)).reshape(b, t * self.num_patches, self.width)
        if mask is not None:
            x = torch.where(mask.reshape(b, -1, 1), self.mask_token.to(x.dtype), x)
        pos = self.pos_embed[:, 1:].repeat(1, t, 1) + self.temporal_embedding(t).repeat_interleave(self.num_patches, 1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        return torch.cat([cls, x + pos], dim=1)

    def forward(self, video: Tensor, mask: Tensor | None = None, return_cls_attn: bool = False) -> VideoEncoderOutput:
        num_frames = video.shape[1]
        x = self.embed(video, mask)
        cls_attn = None
        for i, block in enumerate(self.blocks):
            want_attn = return_cls_attn and i == len(self.blocks) - 1
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x, attn = checkpoint(block, x, num_frames, want_attn, use_reentrant=False)
            else:
                x, attn = block(x, num_frames, want_attn)
            if want_attn:
                cls_attn = attn.reshape(x.shape[0], num_frames, self.num_patches)
        return VideoEncoderOutput(self.norm(x), num_frames, cls_attn)
