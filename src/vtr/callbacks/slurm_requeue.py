"""SLURM auto-requeue that is safe with several processes.

Lightning's own SIGUSR1 handler (``SLURMEnvironment(auto_requeue=True)``) saves the hpc
checkpoint from inside the signal handler on every rank. ``Trainer.save_checkpoint`` ends with a
barrier, and a signal handler runs wherever each process happens to be: one rank can enter that
barrier while another is still in the step's gradient all-reduce, and the two collectives then
wait on each other: under gloo the handler hangs, with no checkpoint and no requeue.

This callback installs its handler first (in ``setup``, before Lightning registers its own, which
it then does not), and the handler only sets a flag. After each training batch every rank
all-reduces the flag (one small collective a step; Lightning already broadcasts its SIGTERM flag
every step); when any rank got the signal, all of them save ``hpc_ckpt_N.ckpt`` in
``default_root_dir`` (the job's run folder) at the same point, as ModelCheckpoint saves mid-epoch,
and rank 0 runs ``scontrol requeue``. Training then goes on until Slurm stops the job, as with
Lightning's handler. A signal that arrives during validation is acted on after it, at the next
training batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn


class SlurmRequeue(L.Callback):
    def __init__(self) -> None:
        self._signum: int | None = None
        self._previous: Any = None
        self._received = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        env = trainer._accelerator_connector.cluster_environment
        if stage != "fit" or not isinstance(env, SLURMEnvironment) or not env.auto_requeue:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        self._signum = int(env.requeue_signal or signal.SIGUSR1)
        self._previous = signal.getsignal(self._signum)
        self._received = False
        signal.signal(self._signum, self._on_signal)  # Lightning registers none where one is set

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._received = True

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._signum is None:
            return
        if not trainer.strategy.reduce_boolean_decision(self._received, all=False):
            return
        self._received = False
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path)
        for logger in trainer.loggers:
            logger.save()
        if trainer.is_global_zero:
            array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
            job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
            rank_zero_info(f"Saved {path} at step {trainer.global_step}; requeueing SLURM job {job}")
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            if result.returncode == 0:
                rank_zero_info(f"Requeued SLURM job {job}")
            else:
                rank_zero_warn(f"scontrol requeue {job} failed ({result.returncode}): {result.stderr.strip()}")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._signum is not None and threading.current_thread() is threading.main_thread():
            signal.signal(self._signum, self._previous if self._previous is not None else signal.SIG_DFL)
        self._signum = None
