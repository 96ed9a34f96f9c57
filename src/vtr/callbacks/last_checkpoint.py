"""``last.ckpt``: written at every validation and when training ends, whatever the metrics say.

Lightning's ``save_last=True`` on the monitored ``best.ckpt`` callback writes ``last.ckpt`` only
when the monitored value improves, and at the end of training only if it never wrote one
(Lightning 2.6), so ``resume=last.ckpt`` could go back to the best validation instead of the
latest step. This unmonitored callback keeps it current."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    def __init__(self, dirpath: Path) -> None:
        super().__init__(dirpath, "last", monitor=None, enable_version_counter=False)

    @property
    def state_key(self) -> str:
        # distinct from an unmonitored best.ckpt callback's (a run without validation sets)
        return self._generate_state_key(filename="last")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):  # the final step, unless just saved
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
