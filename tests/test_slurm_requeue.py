"""The SIGUSR1 requeue callback, without Slurm: a fake `scontrol` and a SLURM-like environment.
(The real thing, under a real Slurm, is tests/test_slurm.py.)"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from vtr.callbacks.slurm_requeue import SlurmRequeue


class SignalsItself(BoringModel):
    def __init__(self, at_step: int):
        super().__init__()
        self.at_step = at_step
        self.handled_during_step = None

    def training_step(self, batch, batch_idx):
        if self.global_step == self.at_step:
            os.kill(os.getpid(), signal.SIGUSR1)  # what --signal=SIGUSR1@90 does, mid-step
            self.handled_during_step = not Path(self.trainer.default_root_dir, "hpc_ckpt_1.ckpt").exists()
        return super().training_step(batch, batch_idx)


def test_sigusr1_saves_the_hpc_checkpoint_after_the_step_and_requeues_the_job(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key, value in dict(SLURM_NTASKS="1", SLURM_NTASKS_PER_NODE="1", SLURM_NNODES="1", SLURM_PROCID="0",
                           SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_JOB_ID="4242", SLURM_JOB_NAME="vtr-test",
                           SLURM_NODELIST="localhost").items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    model = SignalsItself(at_step=3)
    trainer = L.Trainer(
        default_root_dir=tmp_path / "run", max_steps=6, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[SlurmRequeue()],
    )  # fmt: skip
    assert type(trainer._accelerator_connector.cluster_environment).__name__ == "SLURMEnvironment"
    trainer.fit(model)
    hpc = tmp_path / "run/hpc_ckpt_1.ckpt"
    assert hpc.is_file() and model.handled_during_step  # not saved from inside the step
    assert torch.load(hpc, weights_only=False)["global_step"] == 4  # after the signalled step
    assert calls.read_text().split() == ["requeue", "4242"]
    assert trainer.global_step == 6  # training goes on until Slurm stops the job
    assert signal.getsignal(signal.SIGUSR1) in (before, signal.SIG_DFL) or sys.platform == "win32"
