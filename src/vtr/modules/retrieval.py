"""The LightningModule for pre-training and fine-tuning: one model, switchable objectives.

Pre-training and fine-tuning differ only in data and in which objectives are on, so one module
serves both (``task`` in the config). A training batch is a dict of per-dataset batches (WebVid
clips and CC3M images, say); their embeddings are pooled into one contrastive loss so images
and videos are each other's negatives. The objectives return named losses; the total is their
weighted sum and each is logged as ``train/loss_<name>``. Evaluation embeds clips and captions
and hands them to the ``RetrievalEvaluator`` callback, which scores them.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from ..config import RunConfig
from ..masking import make_mask
from ..models import DualEncoder
from ..objectives.contrastive import contrastive_loss
from ..objectives.mvm import build_head, masked_regression_loss

_NO_DECAY_SUFFIXES = ("cls_token", "mask_token", "pos_embed", "temporal_embed", "logit_scale")


class VideoTextModule(L.LightningModule):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg: DictConfig = OmegaConf.merge(OmegaConf.structured(RunConfig), config)
        model_cfg = self.cfg.model
        self.model = DualEncoder(model_cfg)
        self.mvm_cfg = model_cfg.mvm
        if self.mvm_cfg.enabled:
            # The snapshot is a frozen submodule, so it is saved, restored and sharded with the model.
            self.snapshot = copy.deepcopy(self.model.video).requires_grad_(False)
            target_dim = model_cfg.embed_dim if self.mvm_cfg.target == "joint" else self.model.video.width
            self.mvm_head = build_head(self.mvm_cfg.head, self.model.video.width, target_dim)
        if not (self.mvm_cfg.enabled or model_cfg.mascot.enabled):
            # Nothing masks: a parameter without gradients would stall DDP's gradient reduction.
            self.model.video.mask_token.requires_grad_(False)
        self.skipped: dict[str, int] = {}

    def reset_snapshot(self) -> None:
        """Make the snapshot a copy of the online video encoder (after new weights were loaded)."""
        if self.mvm_cfg.enabled:
            self.snapshot.load_state_dict(self.model.video.state_dict())

    # ------------------------------------------------------------------ training
    def mvm_active(self) -> bool:
        return self.mvm_cfg.enabled and self.global_step >= self.mvm_cfg.start_step

    def _mask_generator(self) -> torch.Generator:
        # Derived from (seed, step, rank): a resumed run draws the masks an uninterrupted one would.
        seed = (self.cfg.seed * 1_000_003 + self.global_step) * 1009 + self.global_rank
        return torch.Generator().manual_seed(seed)

    def _mvm_targets(self, video: Tensor) -> Tensor:
        with torch.no_grad():
            self.snapshot.eval()
            tokens = self.snapshot(video).tokens[:, 1:]
            if self.mvm_cfg.target == "joint":
                return self.model.video_proj(tokens)
            return F.layer_norm(tokens, tokens.shape[-1:])

    def compute_losses(self, batch: dict[str, dict[str, Any]]) -> tuple[dict[str, Tensor], dict[str, float], int]:
        """Named losses, their weights, and the number of clips they were computed on (no losses
        when no clip of the batch could be read)."""
        video_embs, text_embs, mvm_losses = [], [], []
        generator = self._mask_generator() if self.mvm_active() else None
        for sub in batch.values():
            video = sub["video"]
            if video.shape[0] == 0:
                continue
            mask = None
            if generator is not None:
                grid = self.model.video.patch_embed.grid_size
                mask = make_mask(self.mvm_cfg.mask_type, video.shape[0], video.shape[1], grid, self.mvm_cfg.mask_ratio, generator)
                mask = mask.to(video.device)
            video_emb, video_out = self.model.embed_video(video, mask=mask)
            if mask is not None:
                pred = self.mvm_head(video_out.tokens[:, 1:])
                mvm_losses.append(masked_regression_loss(pred, self._mvm_targets(video), mask.flatten(1), self.mvm_cfg.loss))
            video_embs.append(video_emb)
            text_embs.append(self.model.embed_text(sub["text"])[0])

        if not video_embs:
            return {}, {}, 0
        losses = {"contrastive": contrastive_loss(torch.cat(video_embs), torch.cat(text_embs), self.model.scale)}
        weights = {"contrastive": 1.0}
        if mvm_losses:
            losses["mvm"] = torch.stack(mvm_losses).mean()
            weights["mvm"] = self.mvm_cfg.weight
        return losses, weights, sum(e.shape[0] for e in video_embs)

    def training_step(self, batch: dict[str, dict[str, Any]], batch_idx: int) -> Optional[Tensor]:
        for name, sub in batch.items():
            self._count_skipped(f"train_{name}", sub)
        losses, weights, batch_size = self.compute_losses(batch)
        if not losses:  # every clip of the batch was unreadable: Lightning skips the step
            return None
        total = sum(weights[k] * v for k, v in losses.items())
        for name, value in losses.items():
            self.log(f"train/loss_{name}", value, batch_size=batch_size)
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
        self.log("train/logit_scale", self.model.scale, batch_size=batch_size)
        return total

    def _count_skipped(self, split: str, batch: dict[str, Any]) -> None:
        self.skipped[split] = self.skipped.get(split, 0) + int(batch.get("num_skipped", 0))
        self.log(f"data/skipped_{split}", float(self.skipped[split]), reduce_fx="max", batch_size=1)

    # ---------------------------------------------------------------- evaluation
    def _embed_eval(self, batch: dict[str, Any]) -> dict[str, Any]:
        video = batch["video"]
        return {
            "video": self.model.embed_video(video)[0] if video.shape[0] else video.new_zeros(0, self.cfg.model.embed_dim),
            "text": self.model.embed_text(batch["text"])[0] if video.shape[0] else video.new_zeros(0, self.cfg.model.embed_dim),
            "video_id": batch["video_id"],
            "caption_video_id": batch["caption_video_id"],
            "caption_id": batch["caption_id"],
            "num_skipped": int(batch.get("num_skipped", 0)),
        }

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        return self._embed_eval(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        return self._embed_eval(batch)

    # ----------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW without weight decay on norms, biases, embeddings and tokens; warm-up then cosine."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            exempt = param.ndim < 2 or name.endswith(_NO_DECAY_SUFFIXES) or ".embeddings." in name
            (no_decay if exempt else decay).append(param)
        opt = self.cfg.optim
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=opt.lr,
            betas=tuple(opt.betas),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = lr_lambda(opt.schedule, opt.warmup_steps, total, opt.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"}}


def lr_lambda(schedule: str, warmup: int, total: int, min_ratio: float):
    """Multiplier of the base learning rate at a step: linear warm-up, then constant or cosine."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
