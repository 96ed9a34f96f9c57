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
from collections import defaultdict
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from ..config import RunConfig
from ..masking import attention_guided_masks, make_mask, random_mask
from ..models import DualEncoder, TextEncoderOutput
from ..objectives.contrastive import contrastive_loss
from ..objectives.mascot import CompletionDecoder, split_by_mask, symmetric_kl
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
        self.mascot_cfg = model_cfg.mascot
        width = self.model.video.width
        target_dim = model_cfg.embed_dim if self.mvm_cfg.target == "joint" else width
        if self.uses_snapshot:
            # A frozen submodule, so it is saved, restored and sharded with the model.
            self.snapshot = copy.deepcopy(self.model.video).requires_grad_(False)
        if self.mvm_cfg.enabled:
            self.mvm_head = build_head(self.mvm_cfg.head, width, target_dim)
        if self.mascot_cfg.enabled:
            m = self.mascot_cfg
            self.completion = CompletionDecoder(
                width, self.model.text.width, target_dim, m.decoder_depth, m.decoder_heads, m.text_context
            )
        if not self.uses_snapshot:
            # Nothing masks: a parameter without gradients would stall DDP's gradient reduction.
            self.model.video.mask_token.requires_grad_(False)
        self.skipped: dict[str, int] = {}
        self.nonfinite_skipped = 0  # training steps skipped for a NaN / infinite loss (nonfinite_loss=skip)
        self._trained = False  # whether a micro-batch of the current optimizer step gave a loss

    @property
    def uses_snapshot(self) -> bool:
        return self.mvm_cfg.enabled or self.mascot_cfg.enabled

    def reset_snapshot(self) -> None:
        """Make the snapshot a copy of the online video encoder (after new weights were loaded)."""
        if self.uses_snapshot:
            self.snapshot.load_state_dict(self.model.video.state_dict())

    def configure_model(self) -> None:
        """Under ``trainer.strategy=fsdp2`` (Lightning's ModelParallelStrategy, which sets the
        device mesh), shard with FSDP2 ``fully_shard``: blocks, encoders (the snapshot like the
        online video encoder), then this module. Other strategies leave the model as it is."""
        if self.device_mesh is None:
            return
        from ..sharding import apply_fully_shard

        apply_fully_shard(
            self, self.device_mesh["data_parallel"], self.cfg.trainer.precision, self.cfg.fsdp.activation_checkpointing
        )

    # ------------------------------------------------------------------ training
    def masking_active(self) -> bool:
        return self.mascot_cfg.enabled or (self.mvm_cfg.enabled and self.global_step >= self.mvm_cfg.start_step)

    def _mask_generator(self) -> torch.Generator:
        # Derived from (seed, step, rank): a resumed run draws the masks an uninterrupted one would.
        seed = (self.cfg.seed * 1_000_003 + self.global_step) * 1009 + self.global_rank
        return torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def _snapshot_targets(self, video: Tensor, with_attention: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        """Targets at every patch from the snapshot on the unmasked clip and, for MASCOT, the
        [CLS] attention read from the same forward pass."""
        self.snapshot.eval()
        out = self.snapshot(video, return_cls_attn=with_attention)
        tokens = out.tokens[:, 1:]
        if self.mvm_cfg.target == "joint":
            return self.model.video_proj(tokens), out.cls_attn
        return F.layer_norm(tokens, tokens.shape[-1:]), out.cls_attn

    def _mvm_views(self, video: Tensor, generator: Optional[torch.Generator]) -> tuple[list[Tensor], dict[str, Tensor]]:
        """MILES: the masked clip's embedding and the regression of snapshot features."""
        if generator is None:
            return [self.model.embed_video(video)[0]], {}
        grid = self.model.video.patch_embed.grid_size
        mask = make_mask(self.mvm_cfg.mask_type, video.shape[0], video.shape[1], grid, self.mvm_cfg.mask_ratio, generator)
        mask = mask.to(video.device).flatten(1)
        emb, out = self.model.embed_video(video, mask=mask)
        pred = self.mvm_head(out.tokens[:, 1:])
        target = self._snapshot_targets(video)[0]
        return [emb], {"mvm": masked_regression_loss(pred, target, mask, self.mvm_cfg.loss)}

    def _complete(self, tokens: Tensor, mask: Tensor, counted: Tensor, target: Tensor, text: TextEncoderOutput) -> Tensor:
        """Completion loss of one masked view, over the hidden positions flagged in ``counted``."""
        queries, visible = split_by_mask(tokens, mask)
        pred = self.completion(queries, visible, text.tokens, text.attention_mask)
        hidden_target, _ = split_by_mask(target, mask)
        hidden_counted, _ = split_by_mask(counted.unsqueeze(-1), mask)
        return masked_regression_loss(pred, hidden_target, hidden_counted.squeeze(-1), self.mvm_cfg.loss)

    def _mascot_views(
        self, video: Tensor, text: TextEncoderOutput, generator: torch.Generator
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """MASCOT: the high- and low-informed masked views and the completion loss."""
        m = self.mascot_cfg
        b, t = video.shape[:2]
        target, cls_attn = self._snapshot_targets(video, with_attention=m.masking == "attention")
        if m.masking == "attention":
            informed, high_mask, low_mask = attention_guided_masks(cls_attn, m.rho, m.mask_ratio, generator)
        else:  # ablation: two random masks, every patch counted as informed
            grid = self.model.video.patch_embed.grid_size
            high_mask, low_mask = (random_mask(b, t, grid, m.mask_ratio, generator).to(video.device) for _ in range(2))
            informed = torch.ones_like(high_mask)
        informed, high_mask, low_mask = informed.flatten(1), high_mask.flatten(1), low_mask.flatten(1)

        emb_high, out_high = self.model.embed_video(video, mask=high_mask)
        completion = [self._complete(out_high.tokens[:, 1:], high_mask, informed, target, text)]
        views = [emb_high]
        if m.dual_mask:
            emb_low, out_low = self.model.embed_video(video, mask=low_mask)
            views.append(emb_low)
            if m.reconstruct_low:  # ablation: also reconstruct the hidden background
                completion.append(self._complete(out_low.tokens[:, 1:], low_mask, ~informed, target, text))
        return views, {"completion": torch.stack(completion).mean()}

    def compute_losses(self, batch: dict[str, dict[str, Any]]) -> tuple[dict[str, Tensor], dict[str, float], int]:
        """Named losses, their weights, and the number of clips they were computed on (no losses
        when no clip of the batch could be read)."""
        parts = [sub for sub in batch.values() if sub["video"].shape[0]]
        if not parts:
            return {}, {}, 0
        generator = self._mask_generator() if self.masking_active() else None
        views: list[list[Tensor]] = []
        texts, terms = [], defaultdict(list)
        for sub in parts:
            text_emb, text_out = self.model.embed_text(sub["text"])
            if self.mascot_cfg.enabled:
                sub_views, sub_terms = self._mascot_views(sub["video"], text_out, generator)
            else:
                sub_views, sub_terms = self._mvm_views(sub["video"], generator)
            views = views or [[] for _ in sub_views]
            for i, emb in enumerate(sub_views):
                views[i].append(emb)
            texts.append(text_emb)
            for name, value in sub_terms.items():
                terms[name].append(value)

        text = torch.cat(texts)
        videos = [torch.cat(v) for v in views]
        scale = self.model.scale
        m = self.mascot_cfg
        losses = {"contrastive": contrastive_loss(videos[0], text, scale)}
        weights = {"contrastive": 1.0, "mvm": self.mvm_cfg.weight, "completion": m.completion_weight}
        if len(videos) > 1:  # MASCOT's second (low-informed) view
            losses["dual_contrastive"] = contrastive_loss(videos[1], text, scale)
            weights["dual_contrastive"] = m.dual_contrastive_weight
            if m.consistency == "sym_kl":
                losses["consistency"] = symmetric_kl(videos[0], videos[1], text, scale)
                weights["consistency"] = m.consistency_weight
        for name, values in terms.items():
            losses[name] = torch.stack(values).mean()
        if self.mvm_cfg.enabled and generator is None and self._trainer is not None and self.trainer.world_size > 1:
            # MVM's warm-up (model.mvm.start_step): its head and the mask token get no gradient yet,
            # which DDP refuses; an exact zero term gives them zero gradients instead
            unused = [*self.mvm_head.parameters(), self.model.video.mask_token]
            losses["mvm"] = sum(p.sum() for p in unused) * 0.0
        return losses, {k: weights[k] for k in losses}, videos[0].shape[0]

    def training_step(self, batch: dict[str, dict[str, Any]], batch_idx: int) -> Optional[Tensor]:
        for name, sub in batch.items():
            self._count_skipped(f"train_{name}", sub)
        losses, weights, batch_size = self.compute_losses(batch)
        total = sum(weights[k] * v for k, v in losses.items()) if losses else None
        skip = self._skip_step(total, losses, weights, batch_idx)
        if total is not None:  # also a skipped non-finite loss, as it was (else Lightning repeats the last value)
            for name, value in losses.items():
                self.log(f"train/loss_{name}", value, batch_size=batch_size)
            self.log("train/loss", total, prog_bar=True, batch_size=batch_size)
            self.log("train/logit_scale", self.model.scale, batch_size=batch_size)
        if not skip:
            self._trained = True
            return total
        if self.trainer.world_size == 1:
            return None  # Lightning skips backward (and optimizer_step drops the update)
        # Lightning refuses None in distributed training: a zero loss that reaches every trainable
        # parameter keeps each rank's gradient all-reduce in step, and optimizer_step drops the update.
        return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Lightning's step, except that one none of whose micro-batches was trained on (all
        skipped, see ``_skip_step``) changes nothing: its gradients are dropped, so AdamW leaves
        every parameter and its moments as they were (no weight decay either), and the snapshot's
        EMA, which follows the gradients, waits too. The schedule and ``global_step`` move on."""

        def closure() -> Any:
            result = optimizer_closure()
            trained, self._trained = self._trained, False
            if trained:
                return result
            optimizer.zero_grad(set_to_none=True)
            return None  # the precision plugins then skip the step (and AMP's unscaling)

        optimizer.step(closure=closure)

    def _skip_step(
        self, total: Optional[Tensor], losses: dict[str, Tensor], weights: dict[str, float], batch_idx: int
    ) -> bool:
        """Whether every rank skips this step: some rank's clips were all unreadable (no loss), or
        some rank's loss is NaN / infinite and ``nonfinite_loss`` is ``skip``; with ``stop``, a
        non-finite loss raises on every rank, before the update (and so before any checkpoint of
        its weights). Ranks must agree, or the ones that train on wait forever in the gradient
        reduction for those that skipped: the flags are summed over ranks (one small all-reduce)."""
        nonfinite = total is not None and not bool(torch.isfinite(total.detach()))
        flags = torch.tensor([float(total is None), float(nonfinite)], device=self.device)
        if self.trainer.world_size > 1:
            flags = self.trainer.strategy.reduce(flags, reduce_op="sum")
        num_empty, num_nonfinite = (int(v) for v in flags.tolist())
        if num_nonfinite:
            if self.cfg.nonfinite_loss == "stop":
                world = self.trainer.world_size
                where = "" if world == 1 else f" on {num_nonfinite} of {world} ranks"
                terms = ", ".join(f"{k}={v.item():.4g} (weight {weights[k]:g})" for k, v in losses.items())
                raise FloatingPointError(
                    f"non-finite training loss at step {self.global_step} (batch {batch_idx}){where}; loss terms on "
                    f"rank {self.global_rank}: {terms or 'none (no readable clip)'}. Stopped before the optimizer "
                    "step, so no checkpoint holds its weights; nonfinite_loss=skip skips such steps instead"
                )
            self.nonfinite_skipped += 1
        if self.cfg.nonfinite_loss == "skip":
            self.log("train/nonfinite_skipped", float(self.nonfinite_skipped), reduce_fx="max", batch_size=1)
        return bool(num_empty or num_nonfinite)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to write a checkpoint whose weights hold a NaN or infinity (a non-finite gradient
        gets past the loss check): the error stops the run and the previous checkpoint stays."""
        bad = []
        for name, value in checkpoint.get("state_dict", {}).items():
            if isinstance(value, Tensor) and value.is_floating_point():
                local = value.to_local() if hasattr(value, "to_local") else value  # DTensor shards
                if not bool(torch.isfinite(local).all()):
                    bad.append(name)
        # Under sharding each rank holds (and checks) a part: agree, so that every rank stops.
        if self.trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            raise FloatingPointError(
                f"not saving the checkpoint of step {self.global_step}: non-finite weights in "
                f"{', '.join(bad[:5]) or 'another rank'}{' ...' if len(bad) > 5 else ''}; "
                "the previous checkpoint is kept"
            )

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
