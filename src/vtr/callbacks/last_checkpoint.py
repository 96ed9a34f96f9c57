"""``last.ckpt``, written at every validation (and epoch end without one), whatever the metrics say.

Lightning's ``save_last=True`` on the monitored ``best.ckpt`` callback writes ``last.ckpt`` only
when the monitored value improves (Lightning 2.6), so ``resume=last.ckpt`` would go back to the
best validation instead of the latest one. A second, unmonitored callback keeps it current."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    def __init__(self, dirpath: Path) -> None:
        super().__init__(dirpath, "last", monitor=None, enable_version_counter=False)

    @property
    def state_key(self) -> str:
        # distinct from an unmonitored best.ckpt callback's (a run without validation sets)
        return self._generate_state_key(filename="last")
