"""Training faults: a step whose clips are all unreadable, a non-finite loss (the ``nonfinite_loss``
policy: skip the step or stop the run), and every DDP rank taking the same decision."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from helpers.corpus import copy_corpus, truncate, webvid_videos
from helpers.runs import DEMO_RECIPE, REPO_ROOT, scalars, tiny_overrides

from data_modules.config import DataConfig
from data_modules.readers import READERS
from vtr.build import build_datamodule, build_module, build_trainer, run
from vtr.config import load_config, resolve_run_dir
from vtr.modules.retrieval import VideoTextModule

# --- a step without a readable clip -----------------------------------------------------------


def test_a_training_step_whose_clips_are_all_unreadable_is_skipped(tiny_demo_root, tmp_path):
    root = copy_corpus(tiny_demo_root, tmp_path)
    for path in webvid_videos(root, "train"):
        path.write_bytes(b"")
    for record in READERS["cc3m"](root / "cc3m", "train", DataConfig()):
        truncate(record.path)
    cfg = load_config(DEMO_RECIPE, tiny_overrides(root, tmp_path / "out", steps=2) + ["data.val=[]", "data.test=[]"])
    module = build_module(cfg)
    with torch.no_grad():  # a snapshot unlike the online encoder, so that an EMA update would show
        for p in module.snapshot.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    trainer.fit(module, datamodule=build_datamodule(cfg))
    assert trainer.global_step == 2
    assert module.skipped == {"train_webvid": 8, "train_cc3m": 8}  # 2 steps x batch 4, every clip
    for name, value in module.state_dict().items():
        assert torch.equal(value, before[name]), name  # no optimizer step, no EMA update
    logged = scalars(tmp_path / "run")
    assert "train/loss" not in logged and logged["data/skipped_train_webvid"][-1] == 8


# --- non-finite losses ------------------------------------------------------------------------


def _nan_at(monkeypatch, step: int) -> None:
    real = VideoTextModule.compute_losses

    def poisoned(self, batch):
        losses, weights, size = real(self, batch)
        if self.global_step == step:
            losses["contrastive"] = losses["contrastive"] * float("nan")
        return losses, weights, size

    monkeypatch.setattr(VideoTextModule, "compute_losses", poisoned)


class _WeightsPerStep:
    """Records, for each batch, whether the module's weights (snapshot included) changed."""

    def __init__(self) -> None:
        self.changed: list[bool] = []

    def on_train_batch_start(self, trainer, module, *args) -> None:
        self._before = {k: v.clone() for k, v in module.state_dict().items()}

    def on_train_batch_end(self, trainer, module, *args) -> None:
        after = module.state_dict()
        self.changed.append(any(not torch.equal(after[k], v) for k, v in self._before.items()))


def test_nonfinite_loss_skip_leaves_the_weights_and_goes_on(tiny_demo_root, tmp_path, monkeypatch):
    import lightning as L

    extra = ["data.val=[]", "data.test=[]", "nonfinite_loss=skip"]
    cfg = load_config(DEMO_RECIPE, tiny_overrides(tiny_demo_root, tmp_path, steps=3) + extra)
    _nan_at(monkeypatch, step=1)
    module = build_module(cfg)
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    watch = type("Watch", (_WeightsPerStep, L.Callback), {})()
    trainer.callbacks.append(watch)
    trainer.fit(module, datamodule=build_datamodule(cfg))
    assert trainer.global_step == 3 and watch.changed == [True, False, True]
    assert module.nonfinite_skipped == 1
    logged = scalars(tmp_path / "run")
    assert logged["train/nonfinite_skipped"] == [0.0, 1.0, 1.0]
    assert [math.isnan(v) for v in logged["train/loss"]] == [False, True, False]  # the skipped step's loss as it was


def test_nonfinite_loss_stop_names_the_step_and_keeps_the_last_checkpoint(tiny_demo_root, tmp_path, monkeypatch):
    extra = ["trainer.val_check_interval=2", "data.test=[]"]
    cfg = load_config(DEMO_RECIPE, tiny_overrides(tiny_demo_root, tmp_path, steps=4) + extra)
    assert cfg.nonfinite_loss == "stop"  # the default
    _nan_at(monkeypatch, step=3)
    with pytest.raises(FloatingPointError, match=r"at step 3 .*contrastive=nan \(weight 1\).*mvm=") as info:
        run(cfg)
    assert "nonfinite_loss=skip" in str(info.value)
    last = resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


_DDP_SCRIPT = """
import sys
from pathlib import Path
from helpers.runs import tiny_overrides
from vtr.build import run
from vtr.config import load_config
from vtr.modules.retrieval import VideoTextModule

real = VideoTextModule.compute_losses

def poisoned(self, batch):  # a NaN on rank 1 only, at step 1
    losses, weights, size = real(self, batch)
    if self.global_step == 1 and self.global_rank == 1:
        losses["contrastive"] = losses["contrastive"] * float("nan")
    return losses, weights, size

VideoTextModule.compute_losses = poisoned
root, out, policy = sys.argv[1:4]
extra = ["trainer.devices=2", "trainer.strategy=ddp", "data.val=[]", "data.test=[]", f"nonfinite_loss={{policy}}"]
run(load_config({demo!r}, tiny_overrides(Path(root), Path(out), steps=3) + extra))
"""


@pytest.mark.ddp
@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_under_ddp_every_rank_takes_the_nonfinite_decision_of_one(policy, tiny_demo_root, tmp_path):
    """A NaN on one rank only: all skip together (or all stop), where a rank going on alone would hang."""
    script = tmp_path / "nan_on_rank1.py"
    script.write_text(_DDP_SCRIPT.format(demo=str(DEMO_RECIPE)))
    cmd = [sys.executable, str(script), str(tiny_demo_root), str(tmp_path / "out"), policy]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    if policy == "stop":
        assert done.returncode != 0 and "non-finite training loss at step 1 (batch 0) on 1 of 2 ranks" in done.stderr
        return
    assert done.returncode == 0, done.stderr[-3000:]
    logged = scalars(next((tmp_path / "out").glob("*/version_0")))
    assert logged["train/nonfinite_skipped"] == [0.0, 1.0, 1.0]
    ckpt = torch.load(next((tmp_path / "out").glob("*/version_0/checkpoints/last.ckpt")), weights_only=False)
    assert ckpt["global_step"] == 3


def test_nonfinite_loss_policy_is_validated():
    from vtr.config import ConfigError

    with pytest.raises(ConfigError, match="nonfinite_loss.*stop, skip"):
        load_config(None, ["nonfinite_loss=ignore"])
