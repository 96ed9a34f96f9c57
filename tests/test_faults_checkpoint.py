"""Checkpoint faults: NaN weights are never saved, a crash mid-save leaves the previous checkpoint
readable (atomic writes), and the trainer saves through the atomic writer."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from helpers.runs import DEMO_RECIPE, tiny_overrides

from vtr.build import build_datamodule, build_module, build_trainer
from vtr.checkpoints.atomic_io import AtomicCheckpointIO
from vtr.config import load_config


def test_nan_weights_are_never_written_over_a_checkpoint(tiny_demo_root, tmp_path):
    """NaN weights (left by a non-finite gradient) stop the save: the previous checkpoint stays."""
    cfg = load_config(DEMO_RECIPE, tiny_overrides(tiny_demo_root, tmp_path, steps=1) + ["data.val=[]", "data.test=[]"])
    module = build_module(cfg)
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    trainer.fit(module, datamodule=build_datamodule(cfg))
    with torch.no_grad():
        module.model.video.pos_embed.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"not saving .*model\.video\.pos_embed"):
        trainer.save_checkpoint(tmp_path / "nan.ckpt")
    assert not (tmp_path / "nan.ckpt").exists()


# --- atomic checkpoint writes -----------------------------------------------------------------

_SAVER = textwrap.dedent(
    """
    import sys, os, signal, torch
    from vtr.checkpoints.atomic_io import AtomicCheckpointIO
    path, crash_before_rename = sys.argv[1], sys.argv[2] == "1"
    start = torch.load(path, weights_only=True)["version"] if os.path.exists(path) else 0
    if crash_before_rename:  # every byte of the new version written, killed before the rename
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    io = AtomicCheckpointIO()
    for version in range(start + 1, start + 1000):
        io.save_checkpoint({"version": version, "weights": torch.full((13_000_000,), float(version))}, path)  # 52 MB
        print(version, flush=True)
    """
)


def _check_one_version(path: Path) -> int:
    ckpt = torch.load(path, weights_only=True)
    weights = ckpt["weights"]
    assert weights.numel() == 13_000_000 and weights.min() == weights.max() == ckpt["version"]
    return ckpt["version"]


def test_a_crash_during_a_save_leaves_the_previous_checkpoint_readable(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    rng = random.Random(0)
    versions = []
    for round_ in range(4):  # killed at random three times, then once between the last byte and the rename
        crash_before_rename = round_ == 3
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), "1" if crash_before_rename else "0"],
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        if not crash_before_rename:
            assert child.stdout.readline()  # a first version of this round saved
            time.sleep(rng.uniform(0.0, 0.8))
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=120)
        assert child.returncode == -signal.SIGKILL
        versions.append(_check_one_version(path))
    assert versions == sorted(versions) and versions[-1] == versions[-2]  # the crashed write left no trace
    assert (path.parent / "last.ckpt.tmp").exists()  # ... but its temporary file, overwritten next time


def test_the_trainer_saves_through_the_atomic_plugin(tiny_demo_root, tmp_path):
    cfg = load_config(DEMO_RECIPE, tiny_overrides(tiny_demo_root, tmp_path))
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
