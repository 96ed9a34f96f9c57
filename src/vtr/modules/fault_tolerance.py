"""Training steps that survive bad batches: the one place that decides when a step does not train.

A step trains on nothing when every clip of some rank's batch was unreadable, or when the loss
is NaN / infinite and ``nonfinite_loss`` is ``skip`` (with ``stop`` the run raises, before the
update and so before any checkpoint of its weights). A skipped step changes no weight: no
optimizer update, no weight decay, no moment update, no EMA. And no checkpoint is written whose
weights hold a NaN or infinity (a non-finite gradient gets past the loss check).

Lightning's callbacks cannot change what ``training_step`` returns nor wrap the optimizer's
closure, so this is a LightningModule base class: a subclass computes its loss and returns
``self.guarded_loss(...)`` from ``training_step``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor


class FaultTolerantModule(L.LightningModule):
    def __init__(self, nonfinite_loss: str = "stop") -> None:
        super().__init__()
        self.nonfinite_loss = nonfinite_loss  # stop | skip
        self.nonfinite_skipped = 0  # training steps skipped for a NaN / infinite loss (nonfinite_loss=skip)
        self._trained = False  # whether a micro-batch of the current optimizer step gave a loss

    def guarded_loss(
        self, total: Tensor | None, losses: dict[str, Tensor], weights: dict[str, float], batch_idx: int
    ) -> Tensor | None:
        """What ``training_step`` returns for the weighted ``total`` of ``losses`` (None: no clip
        of this rank could be read): the total, or, when every rank skips the step, nothing to
        train on."""
        if not self._skip_step(total, losses, weights, batch_idx):
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
        self, total: Tensor | None, losses: dict[str, Tensor], weights: dict[str, float], batch_idx: int
    ) -> bool:
        """Whether every rank skips this step: some rank's clips were all unreadable (no loss), or
        some rank's loss is NaN / infinite and ``nonfinite_loss`` is ``skip``; with ``stop``, a
        non-finite loss raises on every rank. Ranks must agree, or the ones that train on wait
        forever in the gradient reduction for those that skipped: the flags are summed over ranks
        (one small all-reduce)."""
        nonfinite = total is not None and not bool(torch.isfinite(total.detach()))
        flags = torch.tensor([float(total is None), float(nonfinite)], device=self.device)
        if self.trainer.world_size > 1:
            flags = self.trainer.strategy.reduce(flags, reduce_op="sum")
        num_empty, num_nonfinite = (int(v) for v in flags.tolist())
        if num_nonfinite:
            if self.nonfinite_loss == "stop":
                world = self.trainer.world_size
                where = "" if world == 1 else f" on {num_nonfinite} of {world} ranks"
                terms = ", ".join(f"{k}={v.item():.4g} (weight {weights[k]:g})" for k, v in losses.items())
                raise FloatingPointError(
                    f"non-finite training loss at step {self.global_step} (batch {batch_idx}){where}; loss terms on "
                    f"rank {self.global_rank}: {terms or 'none (no readable clip)'}. Stopped before the optimizer "
                    "step, so no checkpoint holds its weights; nonfinite_loss=skip skips such steps instead"
                )
            self.nonfinite_skipped += 1
        if self.nonfinite_loss == "skip":
            self.log("train/nonfinite_skipped", float(self.nonfinite_skipped), reduce_fx="max", batch_size=1)
        return bool(num_empty or num_nonfinite)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to write a checkpoint whose weights hold a NaN or infinity: the error stops the
        run and the previous checkpoint stays."""
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
