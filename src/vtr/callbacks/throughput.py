"""Clips per second, step time and the share of each step spent waiting for data.

A run whose GPUs idle while CPUs decode video looks healthy in every loss curve; these three
numbers show it at once. The wait is the time between the end of one training step and the start
of the next, which is where Lightning fetches the next batch from the loader (plus a small fixed
overhead); the step time is the time from one step's end to the next one's end.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L


def count_clips(batch: Any) -> int:
    """Clips in a training batch: a dict of per-dataset sub-batches, or one sub-batch."""
    if isinstance(batch, dict) and "video" in batch:
        return int(batch["video"].shape[0])
    if isinstance(batch, dict):
        return sum(count_clips(sub) for sub in batch.values())
    return 0


class Throughput(L.Callback):
    """Logs ``perf/clips_per_sec`` (all ranks), ``perf/step_time`` (s) and ``perf/data_wait``
    (fraction of the step) every step, on the progress bar too, and keeps their run means for
    the final report (the first steps, which include start-up, are left out of the means)."""

    def __init__(self, warmup_steps: int = 5) -> None:
        self.warmup_steps = warmup_steps
        self._last_end: float | None = None
        self._wait = 0.0
        self._sums = {"clips": 0.0, "time": 0.0, "wait": 0.0}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = None  # the gap that holds a validation is not time spent waiting for data

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self._wait = now - self._last_end if self._last_end is not None else 0.0
        self._start = now

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        step_time = self._wait + (now - self._start)
        measured = self._last_end is not None
        self._last_end = now
        if not measured or step_time <= 0:
            return
        clips = count_clips(batch) * trainer.world_size
        values = {"clips_per_sec": clips / step_time, "step_time": step_time, "data_wait": self._wait / step_time}
        for name, value in values.items():
            pl_module.log(f"perf/{name}", value, prog_bar=name != "step_time", batch_size=1)
        if trainer.global_step > self.warmup_steps:
            self._sums["clips"] += clips
            self._sums["time"] += step_time
            self._sums["wait"] += self._wait

    def summary(self) -> dict[str, float]:
        """Run means: clips/s over all measured steps and the fraction of their time spent waiting."""
        total = self._sums["time"]
        if total <= 0:
            return {}
        return {"clips_per_sec": self._sums["clips"] / total, "data_wait": self._sums["wait"] / total}
