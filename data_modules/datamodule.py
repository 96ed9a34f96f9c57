"""The LightningDataModule: named datasets from the config, one loader each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from data_modules.config import DataConfig
from data_modules.dataset import Collator, VideoTextDataset
from data_modules.readers import READERS
from data_modules.resumable import ResumableLoader, ResumableSampler, mix_seed
from data_modules.video import build_transform


class RetrievalDataModule(pl.LightningDataModule):
    """Training draws from every dataset in ``cfg.train`` at once: each step's batch is a dict
    ``{name: batch}`` (``CombinedLoader``, ``max_size_cycle``: an epoch ends with the longest
    dataset, shorter ones restart). Validation and testing give one loader per name, in config
    order; ``val_names`` / ``test_names`` tell which is which (the first val set selects checkpoints).
    Training loaders are ``ResumableLoader``s: their order and augmentation follow from ``seed``,
    and a resumed run continues them where the checkpoint left off.
    """

    def __init__(self, cfg: DataConfig, tokenizer: Any, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        if cfg.input_res is None:
            raise ValueError("data.input_res is unset; vtr.config.load_config sets it from model.video.img_size")
        self.cfg = cfg
        self.collate = Collator(tokenizer, cfg.max_text_length)
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
        if name not in READERS:
            raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(READERS))}")
        records = READERS[name](Path(self.cfg.root) / name, split, self.cfg)
        train = split == "train"
        limit = self.cfg.max_train_samples if train else self.cfg.max_eval_samples
        if limit is not None:
            records = records[:limit]
        num_frames = self.cfg.num_frames if train else (self.cfg.eval_num_frames or self.cfg.num_frames)
        return VideoTextDataset(records, num_frames, build_transform(self.cfg.input_res, train, self.cfg.hflip, self.cfg.crop_scale), train)

    def _loader(self, dataset: VideoTextDataset, batch_size: int) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=self.collate,
        )

    def _train_loader(self, name: str, dataset: VideoTextDataset) -> ResumableLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        seed = mix_seed(self.seed, name)
        workers = self.cfg.num_workers
        return ResumableLoader(
            dataset,
            ResumableSampler(dataset, seed, num_replicas=world, rank=rank),
            self.cfg.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(seed),  # leaves the global RNG to the model
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
        return [self._loader(self.test_sets[name], self.cfg.eval_batch_size) for name in self.test_names]
