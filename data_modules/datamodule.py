"""The LightningDataModule: named datasets from the config, one loader each."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from data_modules.config import DataConfig
from data_modules.dataset import Collator, VideoRecord, VideoTextDataset
from data_modules.readers import READERS
from data_modules.readers.files import recording_required_files
from data_modules.resumable import ResumableLoader, ResumableSampler, mix_seed
from data_modules.shards import ShardRecords, ShardSampler, find_shards, index_folder
from data_modules.video import build_transform

# The data switches of the evaluation protocol (``eval.*`` keys) and their released values.
_RELEASED_SWITCHES = {
    "frame_sampling": "released",
    "transform": "released",
    "caption_truncation": "model_max",
    "unreadable": "black",
}


class WorkerInit:
    """A loader worker's start: lower its CPU priority by ``nice``, then seed it as Lightning
    does for ``seed_everything(workers=True)`` (which it skips for loaders that bring their own
    ``worker_init_fn``).

    On a CPU run with few cores the model's threads and the workers share them; at equal
    priority a worker that pre-empts one of the model's threads stalls the others at their next
    synchronisation, so decoding costs the step about its own time again. At niceness 19 the
    workers run when the model's threads wait (for data, too), and the step is shorter."""

    def __init__(self, nice: int, rank: int) -> None:
        self.nice = nice
        self.rank = rank

    def __call__(self, worker_id: int) -> None:
        if self.nice:
            os.nice(self.nice)
        if int(os.environ.get("PL_SEED_WORKERS", 0)):
            pl_worker_init_function(worker_id, rank=self.rank)


class RetrievalDataModule(pl.LightningDataModule):
    """Training draws from every dataset in ``cfg.train`` at once: each step's batch is a dict
    ``{name: batch}`` (``CombinedLoader``, ``max_size_cycle``: an epoch ends with the longest
    dataset, shorter ones restart). Validation and testing give one loader per name, in config
    order; ``val_names`` / ``test_names`` tell which is which (the first val set selects checkpoints).
    Training loaders are ``ResumableLoader``s: their order and augmentation follow from ``seed``,
    and a resumed run continues them where the checkpoint left off.

    ``protocol`` (the config's ``eval`` section, resolved) sets how test sets are sampled,
    transformed and tokenized (``vtr.protocol``); without one, or for validation sets, ours.
    ``describe`` tells the metrics what a test or validation set was.
    """

    def __init__(self, cfg: DataConfig, tokenizer: Any, seed: int = 0, protocol: Any = None) -> None:
        super().__init__()
        self.seed = seed
        if cfg.input_res is None:
            raise ValueError("data.input_res is unset; vtr.config.load_config sets it from model.video.img_size")
        self.cfg = cfg
        self.protocol = protocol
        self.collate = Collator(tokenizer, cfg.max_text_length)
        uncapped = self._released("test")["caption_truncation"]
        self.test_collate = Collator(tokenizer, None if uncapped else cfg.max_text_length)
        self.val_names = list(cfg.val)
        self.test_names = list(cfg.test)
        self.train_sets: dict[str, VideoTextDataset] = {}
        self.val_sets: dict[str, VideoTextDataset] = {}
        self.test_sets: dict[str, VideoTextDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and not self.train_sets:
            self.train_sets = {name: self._dataset(name, "train") for name in self.cfg.train}
        if stage in (None, "fit", "validate") and not self.val_sets:
            self.val_sets = {name: self._dataset(name, "val") for name in self.val_names}
        if stage in (None, "test") and not self.test_sets:
            self.test_sets = {name: self._dataset(name, "test") for name in self.test_names}

    def _dataset(self, name: str, split: str) -> VideoTextDataset:
        train = split == "train"
        limit = self.cfg.max_train_samples if train else self.cfg.max_eval_samples
        root = Path(self.cfg.root) / name
        files: list[Path] = []
        if train and name in self.cfg.shards:
            records: Sequence[VideoRecord] | ShardRecords = self._shard_records(name)
            if limit is not None:
                records = records.head(limit)
        else:
            if name not in READERS:
                raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(READERS))}")
            with recording_required_files() as files:
                records = READERS[name](root, split, self.cfg)
            if limit is not None:
                records = records[:limit]
        num_frames = self.cfg.num_frames if train else (self.cfg.eval_num_frames or self.cfg.num_frames)
        released = self._released(split)
        transform = build_transform(
            self.cfg.input_res, train, self.cfg.hflip, self.cfg.crop_scale, released=released["transform"]
        )
        return VideoTextDataset(
            records,
            num_frames,
            transform,
            train,
            sample_mode="released_uniform" if released["frame_sampling"] else None,
            blank_unreadable=released["unreadable"],
            source_files=[str(path.relative_to(root)) if path.is_relative_to(root) else str(path) for path in files],
        )

    def _shard_records(self, name: str) -> ShardRecords:
        folder = Path(self.cfg.root) / self.cfg.shards[name]  # an absolute folder stays as it is
        records = ShardRecords(folder, index_folder(folder, self.cfg.shard_index_dir), find_shards(folder))
        return records.counted() if self.cfg.shard_counts == "index" else records

    def _released(self, split: str) -> dict[str, bool]:
        """Which data switches of the released protocol apply to ``split``: on test sets, those set so."""
        protocol = self.protocol
        return {
            key: split == "test" and protocol is not None and getattr(protocol, key) == value
            for key, value in _RELEASED_SWITCHES.items()
        }

    def describe(self, stage: str, name: str) -> dict[str, Any]:
        """What a ``val`` or ``test`` set was, for the protocol block of the metrics."""
        dataset = (self.test_sets if stage == "test" else self.val_sets)[name]
        released = self._released(stage)
        return {
            "split": f"{name}/{stage}",
            "split_files": list(dict.fromkeys(dataset.source_files)),
            "frames": dataset.num_frames,
            "frame_sampling": "released" if released["frame_sampling"] else "ours",
            "transform": "released" if released["transform"] else "ours",
            "caption_max_tokens": "model max" if released["caption_truncation"] else self.cfg.max_text_length,
            "unreadable": "black" if released["unreadable"] else "skip",
        }

    def video_ids(self, stage: str, name: str) -> list[str]:
        """A ``val`` or ``test`` set's video ids in the order of its split list."""
        dataset = (self.test_sets if stage == "test" else self.val_sets)[name]
        return [record.video_id for record in dataset.records]

    def _worker_init(self) -> WorkerInit:
        nice = self.cfg.worker_nice
        if nice is None:
            device = self.trainer.strategy.root_device if self.trainer is not None else None
            on_cpu = device.type == "cpu" if device is not None else not torch.cuda.is_available()
            nice = 19 if on_cpu else 0
        return WorkerInit(nice, self.trainer.global_rank if self.trainer is not None else 0)

    def _loader(self, dataset: VideoTextDataset, batch_size: int, collate: Collator | None = None) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate or self.collate,
            worker_init_fn=self._worker_init(),
        )

    def _train_loader(self, name: str, dataset: VideoTextDataset) -> ResumableLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        seed = mix_seed(self.seed, name)
        workers = self.cfg.num_workers
        records = dataset.records
        if isinstance(records, ShardRecords):
            sampler: ResumableSampler = ShardSampler(dataset, records.counts, self.cfg.shard_mix, seed, world, rank)
        else:
            sampler = ResumableSampler(dataset, seed, num_replicas=world, rank=rank)
        return ResumableLoader(
            dataset,
            sampler,
            self.cfg.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(seed),  # leaves the global RNG to the model
            worker_init_fn=self._worker_init(),
        )

    def train_dataloader(self) -> CombinedLoader:
        for name, dataset in self.train_sets.items():
            if len(dataset) < self.cfg.batch_size:
                raise ValueError(
                    f"training set {name} has {len(dataset)} items, fewer than data.batch_size={self.cfg.batch_size}: "
                    "no full batch to train on"
                )
        loaders = {name: self._train_loader(name, ds) for name, ds in self.train_sets.items()}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader(self.val_sets[name], self.cfg.eval_batch_size) for name in self.val_names]

    def test_dataloader(self) -> list[DataLoader]:
        batch_size = self.cfg.eval_batch_size
        return [self._loader(self.test_sets[name], batch_size, self.test_collate) for name in self.test_names]
