"""The one place where a validated config becomes objects, and a run is carried out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from transformers import AutoTokenizer

from data_modules.datamodule import RetrievalDataModule
from data_modules.demo.truth import corpus_seed
from data_modules.readers import READERS

from .callbacks.demo_probes import DemoProbes
from .callbacks.last_checkpoint import LastCheckpoint
from .callbacks.progress import StepBudgetProgressBar
from .callbacks.retrieval_eval import RetrievalEvaluator
from .callbacks.rng_state import RNGState
from .callbacks.slurm_requeue import SlurmRequeue
from .callbacks.snapshot_ema import SnapshotEMA
from .callbacks.tensorboard_images import TensorBoardImages
from .callbacks.tensorboard_layout import ScalarsLayout
from .callbacks.throughput import Throughput
from .checkpoints import load_image_vit, load_into_module
from .checkpoints.atomic_io import AtomicCheckpointIO
from .config import ConfigError, resolve_run_dir
from .modules.retrieval import VideoTextModule
from .precision import resolve_precision
from .report import print_report
from .sharding import build_strategy


def check_data(cfg: DictConfig) -> None:
    """Fail before any work if a named dataset has no folder under ``data.root``, or a test set
    cannot be listed. Training and validation sets are read before the first step anyway; the
    test sets only after training, so their files (annotations, videos) are checked here, at the
    cost of reading their (small) lists twice."""
    root = Path(cfg.data.root)
    names = cfg.data.val + cfg.data.test + ([] if cfg.task == "evaluate" else cfg.data.train)
    for name in dict.fromkeys(names):
        if name not in READERS:
            raise ConfigError(f"config key 'data': unknown dataset '{name}'; known: {', '.join(sorted(READERS))}")
        if not (root / name).is_dir():
            raise ConfigError(
                f"config key 'data.root': dataset '{name}' expected in folder {root / name}, which does not exist"
            )
    for name in cfg.data.test:
        READERS[name](root / name, "test", cfg.data)  # errors name the file expected and where
    if cfg.probes.enabled and corpus_seed(root) is None:
        raise ConfigError(
            f"config key 'probes.enabled': the probes label patches from the demo corpus's scenes, and {root} "
            "is not a demo corpus (no DONE file with its seed); set probes.enabled=false"
        )


def build_datamodule(cfg: DictConfig) -> RetrievalDataModule:
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.text.name_or_path)
    return RetrievalDataModule(cfg.data, tokenizer, seed=cfg.seed, protocol=cfg.eval)


def build_module(cfg: DictConfig) -> VideoTextModule:
    module = VideoTextModule(OmegaConf.to_container(cfg, resolve=True))
    if cfg.init_from:  # ours (any kind) or a released Frozen-in-Time / MILES checkpoint
        missing = load_into_module(module, cfg.init_from)
        stored = not any(k.startswith("snapshot.") for k in missing)
        if not (stored and cfg.model.mvm.snapshot_init == "checkpoint"):
            module.reset_snapshot()  # targets of the loaded (text-aligned) encoder, not the old snapshot's
    elif cfg.model.video.pretrained and not cfg.resume:
        load_image_vit(module.model.video, cfg.model.video.pretrained)
        module.reset_snapshot()
    return module


def build_trainer(cfg: DictConfig, run_dir: Path) -> tuple[L.Trainer, RetrievalEvaluator]:
    ties = (cfg.eval.t2v_tie_break, cfg.eval.v2t_tie_break)
    evaluator = RetrievalEvaluator(
        run_dir / "metrics.json", ties, cfg.report_dual_softmax, cfg.eval_protocol, cfg.gallery_size
    )
    callbacks: list[L.Callback] = [evaluator, LearningRateMonitor(logging_interval="step"), RNGState(), Throughput()]
    if cfg.probes.enabled:  # after the evaluator, whose test embeddings its error tables read
        tokenizer = AutoTokenizer.from_pretrained(cfg.model.text.name_or_path)
        callbacks.append(DemoProbes(evaluator, corpus_seed(cfg.data.root), cfg, tokenizer))
    callbacks.append(ScalarsLayout(cfg.data.val, cfg.data.test))
    if cfg.log_images:  # after the evaluator, whose embeddings it shows
        callbacks.append(TensorBoardImages(evaluator, cfg.seed))
    callbacks.append(SlurmRequeue())  # SIGUSR1 under SLURM: hpc checkpoint + requeue, between steps on all ranks
    # Select on the first validation set; without one, "best" is simply the latest checkpoint.
    monitor = f"val/{cfg.data.val[0]}/t2v_R1" if cfg.data.val else None
    checkpoints = run_dir / "checkpoints"
    callbacks.append(ModelCheckpoint(checkpoints, "best", monitor, mode="max", enable_version_counter=False))
    callbacks.append(LastCheckpoint(checkpoints))
    if cfg.model.mvm.enabled or cfg.model.mascot.enabled:  # both use the snapshot's EMA settings
        mvm = cfg.model.mvm
        callbacks.append(SnapshotEMA(mvm.ema_momentum, mvm.ema_schedule, mvm.ema_start_step))
    if cfg.trainer.enable_progress_bar:
        callbacks.append(StepBudgetProgressBar())
    logger = TensorBoardLogger(save_dir=str(run_dir), name="", version="", default_hp_metric=False)
    # Checkpoints are written to <path>.tmp, fsync'ed and renamed: a crash mid-save keeps the previous one.
    trainer = L.Trainer(
        **{**OmegaConf.to_container(cfg.trainer), "strategy": build_strategy(cfg)},  # fsdp / fsdp2: vtr/sharding.py
        default_root_dir=str(run_dir),
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        # FSDP2 all-gathers parameters in evaluation too; tensors made under inference_mode could
        # not serve the next training step (no_grad is what Lightning uses for FSDP1 already)
        inference_mode=cfg.trainer.strategy != "fsdp2",
    )
    return trainer, evaluator


def _resume_path(cfg: DictConfig, run_dir: Path) -> str | None:
    """An explicit ``resume``, else the newest checkpoint this run folder already holds (a
    requeued SLURM job, or the same ``version`` started again)."""
    if cfg.resume:
        return cfg.resume
    found = list(run_dir.glob("hpc_ckpt_*.ckpt")) + list((run_dir / "checkpoints").glob("last.ckpt"))
    return str(max(found, key=os.path.getmtime)) if found else None


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train (pretrain / finetune) then test the best checkpoint, or only test (evaluate)."""
    check_data(cfg)
    run_dir = resolve_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True)
    auto = resolve_precision("auto", cfg.trainer.accelerator)
    print(f"precision: {cfg.trainer.precision} (trainer.precision; auto picks {auto} here)")
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    trainer, evaluator = build_trainer(cfg, run_dir)
    if cfg.task != "evaluate":
        trainer.fit(module, datamodule=datamodule, ckpt_path=_resume_path(cfg, run_dir))
    if cfg.data.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    if trainer.is_global_zero:
        throughput = next((c for c in trainer.callbacks if isinstance(c, Throughput)), None)
        print_report(evaluator.results, module.skipped, run_dir, throughput.summary() if throughput else {})
    return evaluator.results
