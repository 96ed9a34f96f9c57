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
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)), requires_grad=cfg.learn_temperature)
        self.max_log_scale = math.log(cfg.max_logit_scale)

    @property
    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_video(
        self, video: Tensor, mask: Tensor | None = None, return_cls_attn: bool = False
    ) -> tuple[Tensor, VideoEncoderOutput]:
        """Unit-norm joint-space embedding of the [CLS] token, and the encoder's full output."""
        out = self.video(video, mask=mask, return_cls_attn=return_cls_attn)
        return F.normalize(self.video_proj(out.tokens[:, 0]), dim=-1), out

    def embed_text(self, text: dict[str, Tensor]) -> tuple[Tensor, TextEncoderOutput]:
        out = self.text(text["input_ids"], text["attention_mask"])
        return F.normalize(self.text_proj(out.sentence), dim=-1), out
