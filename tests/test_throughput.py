"""perf/clips_per_sec, perf/step_time and perf/data_wait from the Throughput callback."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch

from vtr.callbacks.throughput import Throughput, count_clips


class _Recorder:
    def __init__(self) -> None:
        self.logged: dict[str, list[float]] = {}

    def log(self, name: str, value: float, **kwargs: object) -> None:
        self.logged.setdefault(name, []).append(value)


def test_step_time_wait_and_clips_per_second() -> None:
    """Three steps, each: 0.06 s waiting for the loader, 0.04 s computing, 5 + 3 clips on each of 2 ranks."""
    callback = Throughput(warmup_steps=0)
    trainer = SimpleNamespace(world_size=2, global_step=0)
    module = _Recorder()
    batch = {"webvid": {"video": torch.zeros(5, 1)}, "cc3m": {"video": torch.zeros(3, 1)}}
    for step in range(4):
        time.sleep(0.06)  # the loader
        callback.on_train_batch_start(trainer, module, batch, step)
        time.sleep(0.04)  # forward and backward
        trainer.global_step = step + 1
        callback.on_train_batch_end(trainer, module, None, batch, step)
    # the first step has no previous end to measure its wait from: not logged
    assert len(module.logged["perf/step_time"]) == 3
    for step_time, wait, rate in zip(
        *(module.logged[f"perf/{k}"] for k in ("step_time", "data_wait", "clips_per_sec"))
    ):
        assert step_time == pytest.approx(0.10, abs=0.03)
        assert wait == pytest.approx(0.6, abs=0.15)
        assert rate == pytest.approx(16 / step_time, rel=1e-9)
    summary = callback.summary()
    assert summary["clips_per_sec"] == pytest.approx(160, rel=0.3)
    assert summary["data_wait"] == pytest.approx(0.6, abs=0.15)


def test_count_clips() -> None:
    assert count_clips({"video": torch.zeros(4, 2)}) == 4
    assert count_clips({"a": {"video": torch.zeros(2, 1)}, "b": {"video": torch.zeros(0, 1)}}) == 2
