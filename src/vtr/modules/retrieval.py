"""The LightningModule for pre-training and fine-tuning: one model, switchable objectives.

Pre-training and fine-tuning differ only in data and in which objectives are on, so one module
serves both (``task`` in the config). A training batch is a dict of per-dataset batches (WebVid
clips and CC3M images, say). Each enabled objective (``objectives/``: MILES' masked visual
modeling, MASCOT) turns a part into video views and loss terms; each view's embeddings are
pooled over the parts into one contrastive loss, so images and videos are each other's
negatives. The total is the weighted sum of the named losses, each logged as
``train/loss_<name>``. Evaluation embeds clips and captions and hands them to the
``RetrievalEvaluator`` callback, which scores them. What happens to a step without a usable loss
is ``FaultTolerantModule``'s business.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from ..checkpoints import remap_legacy_keys
from ..config import RunConfig
from ..models import DualEncoder
from ..objectives.base import Objective, ObjectiveOutput
from ..objectives.contrastive import contrastive_loss
from ..objectives.mascot import Mascot
from ..objectives.mvm import MaskedVisualModeling
from .fault_tolerance import FaultTolerantModule

_NO_DECAY_SUFFIXES = ("cls_token", "mask_token", "pos_embed", "temporal_embed", "logit_scale")


class VideoTextModule(FaultTolerantModule):
    def __init__(self, config: dict[str, Any]) -> None:
        cfg: DictConfig = OmegaConf.merge(OmegaConf.structured(RunConfig), config)
        super().__init__(cfg.nonfinite_loss)
        self.save_hyperparameters()
        self.cfg = cfg
        model_cfg = cfg.model
        self.model = DualEncoder(model_cfg)
        mvm_cfg, mascot_cfg = model_cfg.mvm, model_cfg.mascot
        width = self.model.video.width
        target_dim = model_cfg.embed_dim if mvm_cfg.target == "joint" else width
        if self.uses_snapshot:
            # A frozen submodule, so it is saved, restored and sharded with the model.
            self.snapshot = copy.deepcopy(self.model.video).requires_grad_(False)
        else:
            # Nothing masks: a parameter without gradients would stall DDP's gradient reduction.
            self.model.video.mask_token.requires_grad_(False)
        if mvm_cfg.enabled:
            self.mvm = MaskedVisualModeling(mvm_cfg, width, target_dim)
        if mascot_cfg.enabled:
            self.mascot = Mascot(mascot_cfg, mvm_cfg.target, mvm_cfg.loss, width, self.model.text.width, target_dim)
        self.skipped: dict[str, int] = {}

    @property
    def uses_snapshot(self) -> bool:
        return self.cfg.model.mvm.enabled or self.cfg.model.mascot.enabled

    @property
    def objectives(self) -> list[Objective]:
        return [getattr(self, name) for name in ("mvm", "mascot") if hasattr(self, name)]

    def reset_snapshot(self) -> None:
        """Make the snapshot a copy of the online video encoder (after new weights were loaded)."""
        if self.uses_snapshot:
            self.snapshot.load_state_dict(self.model.video.state_dict())

    def configure_model(self) -> None:
        """Under ``trainer.strategy=fsdp2`` (Lightning's ModelParallelStrategy, which sets the
        device mesh), shard with FSDP2 ``fully_shard``: blocks, encoders (the snapshot like the
        online video encoder), then this module. Other strategies leave the model as it is.
        ``model.compile`` then compiles the encoders in place (``nn.Module.compile``), so
        parameter names, checkpoints and the EMA snapshot's state dict stay as they are."""
        if self.device_mesh is not None:
            from ..sharding import apply_fully_shard

            apply_fully_shard(
                self,
                self.device_mesh["data_parallel"],
                self.cfg.trainer.precision,
                self.cfg.fsdp.activation_checkpointing,
            )
        if self.cfg.model.compile:
            encoders = [self.model.video, self.model.text] + ([self.snapshot] if self.uses_snapshot else [])
            for encoder in encoders:
                encoder.compile()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resume checkpoints written before the objectives were modules (other key names)."""
        if "state_dict" in checkpoint:
            checkpoint["state_dict"] = remap_legacy_keys(checkpoint["state_dict"])

    # ------------------------------------------------------------------ training
    def _mask_generator(self) -> torch.Generator:
        # Derived from (seed, step, rank): a resumed run draws the masks an uninterrupted one would.
        seed = (self.cfg.seed * 1_000_003 + self.global_step) * 1009 + self.global_rank
        return torch.Generator().manual_seed(seed)

    def compute_losses(self, batch: dict[str, dict[str, Any]]) -> tuple[dict[str, Tensor], dict[str, float], int]:
        """Named losses, their weights, and the number of clips they were computed on (no losses
        when no clip of the batch could be read)."""
        parts = [sub for sub in batch.values() if sub["video"].shape[0]]
        if not parts:
            return {}, {}, 0
        generator = self._mask_generator()
        # Diagnostics only on logged steps (as Lightning's LearningRateMonitor decides them).
        measure = self._trainer is not None and self.trainer._logger_connector.should_update_logs
        texts: list[Tensor] = []
        views, terms, metrics = defaultdict(list), defaultdict(list), defaultdict(list)
        weights = {"contrastive": 1.0}
        for sub in parts:
            text_emb, text_out = self.model.embed_text(sub["text"])
            texts.append(text_emb)
            video, step = sub["video"], self.global_step
            outputs = [
                objective(video, text_out, self.model, self.snapshot, generator, step, measure)
                for objective in self.objectives
            ]
            for out in outputs or [ObjectiveOutput({"contrastive": self.model.embed_video(video)[0]})]:
                for name, emb in out.views.items():
                    views[name].append(emb)
                for name, value in out.losses.items():
                    terms[name].append(value)
                for name, value in out.metrics.items():
                    metrics[name].append(value)
                weights.update(out.weights)

        text = torch.cat(texts)
        pooled = {name: torch.cat(embs) for name, embs in views.items()}
        scale = self.model.scale
        losses = {name: contrastive_loss(emb, text, scale) for name, emb in pooled.items()}
        for objective in self.objectives:
            losses.update(objective.pooled_losses(pooled, text, scale))
        losses.update({name: torch.stack(values).mean() for name, values in terms.items()})
        for name, values in metrics.items():
            self.log(f"train/{name}", torch.cat(values).mean(), batch_size=text.shape[0])
        return losses, {k: weights[k] for k in losses}, text.shape[0]

    def training_step(self, batch: dict[str, dict[str, Any]], batch_idx: int) -> Tensor | None:
        for name, sub in batch.items():
            self._count_skipped(f"train_{name}", sub)
        losses, weights, batch_size = self.compute_losses(batch)
        total = sum(weights[k] * v for k, v in losses.items()) if losses else None
        if total is not None:  # also a non-finite loss, as it was (else Lightning repeats the last value)
            for name, value in losses.items():
                self.log(f"train/loss_{name}", value, batch_size=batch_size)
            self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
            self.log("train/logit_scale", self.model.scale, batch_size=batch_size)
        return self.guarded_loss(total, losses, weights, batch_idx)

    def _count_skipped(self, split: str, batch: dict[str, Any]) -> None:
        self.skipped[split] = self.skipped.get(split, 0) + int(batch.get("num_skipped", 0))
        self.log(f"data/skipped_{split}", float(self.skipped[split]), reduce_fx="max", batch_size=1)

    # ---------------------------------------------------------------- evaluation
    def _embed_eval(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Unmasked clip and caption embeddings with their ids, for ``RetrievalEvaluator``."""
        video = batch["video"]
        if video.shape[0]:
            video_emb, text_emb = self.model.embed_video(video)[0], self.model.embed_text(batch["text"])[0]
        else:  # every clip of the batch was unreadable
            video_emb = text_emb = video.new_zeros(0, self.cfg.model.embed_dim)
        ids = {key: batch[key] for key in ("video_id", "caption_video_id", "caption_id")}
        return {"video": video_emb, "text": text_emb, **ids, "num_skipped": int(batch.get("num_skipped", 0))}

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        if batch_idx == 0 and dataloader_idx == 0 and hasattr(self, "mvm"):
            self._log_mvm_heldout(batch)
        return self._embed_eval(batch)

    def _log_mvm_heldout(self, batch: dict[str, Any]) -> None:
        """``val/mvm_heldout``: the MVM loss on the first batch of the first validation set, with
        masks drawn from ``seed`` alone, so every validation scores the same clips and masks and
        the curve shows learning, not sampling noise. The value is reduced across ranks, so a rank
        whose batch has no readable clip logs a zero of weight zero: it must take part in the
        reduction, and adds nothing to the mean. Beside it, its scale-free readings
        (``val/mvm_heldout_nmse``, ``_cos``, ``_target_var``: see ``regression_diagnostics``)."""
        video = batch["video"]
        zero = video.new_zeros((), dtype=torch.float32)
        loss, readings = zero, {}
        if video.shape[0]:  # else every clip of the batch was unreadable
            generator = torch.Generator().manual_seed(self.cfg.seed)
            result = self.mvm.masked_modeling(video, self.model, self.snapshot, generator)
            loss, readings = result.loss, result.diagnostics
        values = {"val/mvm_heldout": loss}
        for name in ("target_var", "nmse", "cos"):
            values[f"val/mvm_heldout_{name}"] = readings.get(f"mvm_{name}", zero.view(1)).squeeze(0)
        for key, value in values.items():
            self.log(key, value, batch_size=video.shape[0], sync_dist=True, add_dataloader_idx=False)

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
        # One fused kernel for all parameters on CUDA; elsewhere the multi-tensor (foreach) loop,
        # which beats the per-parameter loop the default may fall back to on a CPU.
        on_cuda = (decay + no_decay)[0].device.type == "cuda"
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=opt.lr,
            betas=tuple(opt.betas),
            **({"fused": True} if on_cuda else {"foreach": True}),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = lr_lambda(opt.schedule, opt.warmup_steps, total, opt.min_lr_ratio)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"},
        }


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
