"""Embedding clips with Lightning's predict loop: batches from a DataLoader with workers, one or
several devices (each rank embeds its share and writes its own chunks), written as they come."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from tqdm import tqdm

from ..models import DualEncoder
from .files import Clip, error_record
from .store import IndexStore


class ClipEmbedder(L.LightningModule):
    """The video tower of a dual encoder, as a predict-only LightningModule."""

    def __init__(self, model: DualEncoder) -> None:
        super().__init__()
        self.model = model

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        rows, embeddings = [], []
        for group_rows, video in batch["groups"]:
            rows += group_rows
            embeddings.append(self.model.embed_video(video)[0].float().cpu())
        emb = torch.cat(embeddings).numpy() if embeddings else np.zeros((0, 0), np.float32)
        return {"rows": rows, "embeddings": emb, "errors": batch["errors"]}


class ChunkWriter(BasePredictionWriter):
    """Collects each rank's embeddings and writes a chunk to the store every ``chunk_clips`` clips
    (and at the end), so an interrupted run loses at most one chunk's work."""

    def __init__(self, store: IndexStore, clips: list[Clip], dim: int, chunk_clips: int) -> None:
        super().__init__(write_interval="batch")
        self.store, self.clips, self.dim, self.chunk_clips = store, clips, dim, chunk_clips
        self._rows: list[int] = []
        self._embs: list[np.ndarray] = []
        self._errors: list[dict[str, Any]] = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._rows += prediction["rows"]
        if len(prediction["rows"]):
            self._embs.append(prediction["embeddings"])
        for row, reason in prediction["errors"]:
            clip = self.clips[row]
            self._errors.append(error_record(clip.path, clip.stat, f"{reason} (window {clip.start:g}-{clip.end:g} s)"))
        if len(self._rows) + len(self._errors) >= self.chunk_clips:
            self.flush(trainer.global_rank)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self.flush(trainer.global_rank)

    def flush(self, rank: int) -> None:
        if not self._rows and not self._errors:
            return
        rows = [_row(self.clips[i]) for i in self._rows]
        emb = np.concatenate(self._embs) if self._embs else np.zeros((0, self.dim), np.float16)
        self.store.pending.write(rank, emb, rows, self._errors)
        self._rows, self._embs, self._errors = [], [], []


def _row(clip: Clip) -> dict[str, Any]:
    return {"path": clip.path, **asdict(clip.stat), "start": clip.start, "end": clip.end, "windows": clip.windows}


class ClipRate(Callback):
    """A progress bar counting clips (not batches), so its rate reads in clips/s."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: tqdm | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.bar = tqdm(total=self.total, unit="clip", desc="embedding", dynamic_ncols=True)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.bar is not None:  # rank 0 sees its share: scale by the number of ranks
            self.bar.update((len(outputs["rows"]) + len(outputs["errors"])) * trainer.world_size)

    def on_predict_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
