"""Video and text towers, their projections into one joint space, and the temperature.

Projections follow Frozen / MILES: video Linear(width, 256); text ReLU -> Linear(width, 256).
The temperature is a log logit scale (CLIP style): fixed at 1/0.05 by default, learnable on
request, and capped so a learnable scale cannot run away.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .text_encoder import TextEncoder, TextEncoderOutput
from .video_encoder import SpaceTimeViT, VideoEncoderOutput


class DualEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, load_text_weights: bool = True) -> None:
        """``load_text_weights=False``: a pretrained text model's architecture only, for weights
        about to be loaded from a checkpoint."""
        super().__init__()
        v = cfg.video
        self.video = SpaceTimeViT(
            img_size=v.img_size,
            patch_size=v.patch_size,
            width=v.width,
            depth=v.depth,
            heads=v.heads,
            mlp_ratio=v.mlp_ratio,
            num_frames=v.num_frames,
            drop_path_rate=v.drop_path_rate,
            grad_checkpointing=v.grad_checkpointing,
            block_wiring=v.block_wiring,
        )
        self.text = TextEncoder(cfg.text, load_text_weights)
        self.video_proj = nn.Linear(self.video.width, cfg.embed_dim)
        self.text_proj = nn.Sequential(nn.ReLU(), nn.Linear(self.text.width, cfg.embed_dim))
        log_scale = torch.tensor(math.log(1.0 / cfg.temperature))
        self.logit_scale = nn.Parameter(log_scale, requires_grad=cfg.learn_temperature)
        self.max_log_scale = math.log(cfg.max_logit_scale)

    @property
    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_video(
        self, video: Tensor, mask: Tensor | None = None, return_cls_attn: bool = False
    ) -> tuple[Tensor, VideoEncoderOutput]:
        """Unit-norm joint-space embedding of the [CLS] token (fp32 also under bf16 autocast, so
        retrieval scores are not rounded to bf16), and the encoder's full output."""
        out = self.video(video, mask=mask, return_cls_attn=return_cls_attn)
        return F.normalize(self.video_proj(out.tokens[:, 0]).float(), dim=-1), out

    def embed_video_views(self, video: Tensor, masks: list[Tensor | None]) -> list[tuple[Tensor, VideoEncoderOutput]]:
        """``embed_video`` of the same clips once per mask (``None``: unmasked), as one forward pass
        over the views stacked along the batch. The encoder treats every clip on its own, so this
        is the function of separate passes, with a third to half as many operations: for images
        and small clips, whose time goes to per-operation costs more than to arithmetic, faster."""
        if len(masks) == 1:
            return [self.embed_video(video, mask=masks[0])]
        b = video.shape[0]
        unmasked = video.new_zeros(b, video.shape[1] * self.video.num_patches, dtype=torch.bool)
        stacked = torch.cat([unmasked if mask is None else mask.reshape(b, -1) for mask in masks])
        emb, out = self.embed_video(torch.cat([video] * len(masks)), mask=stacked)
        return [
            (view_emb, VideoEncoderOutput(tokens, out.num_frames))
            for view_emb, tokens in zip(emb.split(b), out.tokens.split(b), strict=True)
        ]

    def embed_text(self, text: dict[str, Tensor]) -> tuple[Tensor, TextEncoderOutput]:
        out = self.text(text["input_ids"], text["attention_mask"])
        return F.normalize(self.text_proj(out.sentence).float(), dim=-1), out
