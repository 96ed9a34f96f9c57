"""Keeps the MILES snapshot encoder an exponential moving average of the online video encoder.

The update runs once per optimizer step (not per micro-batch under gradient accumulation):
``snapshot = m * snapshot + (1 - m) * online``, parameter by parameter, in place, so it works
the same on replicated (DDP) and sharded (FSDP2) parameters and every rank stays identical.
A step the module skipped (every clip unreadable, or a non-finite loss with
``nonfinite_loss=skip``) leaves the online encoder without gradients, so the optimizer leaves it
as it was, and so does this callback: no EMA update either.

With ``start_step`` (``model.mvm.ema_start_step``) > 0 the snapshot stays as it was until the
optimizer step that reaches ``start_step``, is then copied from the online encoder, and follows
it by EMA from the next step on: masked modeling that starts after a contrastive warm-up then
regresses the features of an encoder that has learned something, not those of its initialisation.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import nn


@torch.no_grad()
def ema_update(snapshot: nn.Module, online: nn.Module, momentum: float) -> None:
    for s, o in zip(snapshot.parameters(), online.parameters(), strict=True):
        s.lerp_(o.detach(), 1.0 - momentum)


@torch.no_grad()
def copy_weights(snapshot: nn.Module, online: nn.Module) -> None:
    """Parameters and buffers in place (shard by shard when sharded, as ``ema_update``)."""
    tensors = zip([*snapshot.parameters(), *snapshot.buffers()], [*online.parameters(), *online.buffers()], strict=True)
    for s, o in tensors:
        s.copy_(o.detach())


def momentum_at(base: float, schedule: str, step: int, total: int) -> float:
    """Constant, or cosine from ``base`` at step 0 to 1.0 at the last step (BYOL's schedule)."""
    if schedule == "constant" or total <= 0:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total) / total) + 1) / 2


class SnapshotEMA(L.Callback):
    def __init__(self, momentum: float, schedule: str = "constant", start_step: int = 0) -> None:
        self.momentum = momentum
        self.schedule = schedule
        self.start_step = start_step
        self._last_step = 0
        self._has_grads = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = trainer.global_step

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        self._has_grads = any(p.grad is not None for p in pl_module.model.video.parameters())

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if trainer.global_step == self._last_step:  # accumulating: no optimizer step yet
            return
        self._last_step = trainer.global_step
        if trainer.global_step < self.start_step:
            return
        if trainer.global_step == self.start_step:
            copy_weights(pl_module.snapshot, pl_module.model.video)
            return
        if not self._has_grads:  # a skipped step: the optimizer left the online encoder as it was
            return
        m = momentum_at(self.momentum, self.schedule, trainer.global_step, int(trainer.estimated_stepping_batches))
        ema_update(pl_module.snapshot, pl_module.model.video, m)
        pl_module.log("train/ema_momentum", m, batch_size=1)
