"""Scores retrieval at the end of each validation / test epoch.

The module's eval step returns embeddings of clips and captions with their ids; this callback
collects them per dataloader, gathers them from every rank, drops the duplicates that a
DistributedSampler adds to even out the last shard (by id), and scores text-to-video and
video-to-text R@K / MedR / MeanR. Metrics are logged as ``{stage}/{dataset}/{t2v|v2t}_{metric}``
and written to ``metrics.json`` in the run folder.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
import torch.distributed as dist
from torch import Tensor

from ..metrics import dual_softmax, retrieval_metrics


def _gather_objects(obj: Any) -> list[Any]:
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _unique(ids: list[str], rows: Tensor) -> tuple[list[str], Tensor]:
    first: dict[str, int] = {}
    for i, key in enumerate(ids):
        first.setdefault(key, i)
    keep = list(first.values())
    return list(first), rows[keep]


def score_embeddings(
    video: Tensor,
    video_ids: list[str],
    text: Tensor,
    caption_ids: list[str],
    pairs: set[tuple[str, str]],
    tie_break: str = "average",
    with_dual_softmax: bool = False,
) -> dict[str, dict[str, float]]:
    """t2v and v2t metrics. ``pairs`` holds the relevant (caption_id, video_id) pairs: a caption
    usually belongs to one video, but a class prompt (zero-shot action recognition) to many. A
    video's v2t rank is its best-ranked relevant caption's."""
    v_index = {vid: i for i, vid in enumerate(video_ids)}
    c_index = {cid: i for i, cid in enumerate(caption_ids)}
    relevant = torch.zeros(len(caption_ids), len(video_ids), dtype=torch.bool)
    for caption, vid in pairs:
        relevant[c_index[caption], v_index[vid]] = True
    relevant = relevant.to(video.device)
    sim = text @ video.T
    scores = {
        "t2v": retrieval_metrics(sim, relevant, tie_break=tie_break),
        "v2t": retrieval_metrics(sim.T, relevant.T, tie_break=tie_break),
    }
    if with_dual_softmax:  # reported beside the raw numbers, never instead of them
        scores["t2v_dsl"] = retrieval_metrics(dual_softmax(sim), relevant, tie_break=tie_break)
    return scores


class RetrievalEvaluator(L.Callback):
    def __init__(self, output: Optional[Path] = None, tie_break: str = "average", report_dual_softmax: bool = False) -> None:
        self.output = output
        self.tie_break = tie_break
        self.report_dual_softmax = report_dual_softmax
        self.results: dict[str, dict[str, Any]] = {}
        self._reset()

    def _reset(self, *_: Any) -> None:
        self._outputs = defaultdict(list)
        self._started: dict[int, float] = {}
        self._finished: dict[int, float] = {}

    on_validation_epoch_start = _reset
    on_test_epoch_start = _reset

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._started.setdefault(dataloader_idx, time.perf_counter())

    on_test_batch_start = on_validation_batch_start

    def _collect(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._outputs[dataloader_idx].append(outputs)
        self._finished[dataloader_idx] = time.perf_counter()

    on_validation_batch_end = _collect
    on_test_batch_end = _collect

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._score("val", trainer.datamodule.val_names, trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._score("test", trainer.datamodule.test_names, trainer, pl_module)

    def _score(self, stage: str, names: list[str], trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stage_results = {}
        for idx, name in enumerate(names):
            outs = self._outputs.get(idx, [])
            local = {
                "video": torch.cat([o["video"] for o in outs]).float().cpu() if outs else torch.zeros(0),
                "text": torch.cat([o["text"] for o in outs]).float().cpu() if outs else torch.zeros(0),
                "video_id": [v for o in outs for v in o["video_id"]],
                "caption_id": [c for o in outs for c in o["caption_id"]],
                "caption_video_id": [c for o in outs for c in o["caption_video_id"]],
                "skipped": sum(o["num_skipped"] for o in outs),
            }
            scoring_started = time.perf_counter()
            gathered = _gather_objects(local)
            skipped = sum(p["skipped"] for p in gathered)
            parts = [p for p in gathered if p["video_id"]]
            video_ids, video = _unique([v for p in parts for v in p["video_id"]], torch.cat([p["video"] for p in parts]))
            caption_ids, text = _unique([c for p in parts for c in p["caption_id"]], torch.cat([p["text"] for p in parts]))
            pairs = {pair for p in parts for pair in zip(p["caption_id"], p["caption_video_id"])}
            scores = score_embeddings(
                video.to(pl_module.device),
                video_ids,
                text.to(pl_module.device),
                caption_ids,
                pairs,
                self.tie_break,
                self.report_dual_softmax,
            )
            for direction, metrics in scores.items():
                for metric, value in metrics.items():
                    pl_module.log(f"{stage}/{name}/{direction}_{metric}", value, sync_dist=False)
            pl_module.log(f"data/skipped_{stage}_{name}", float(skipped), sync_dist=False)
            stage_results[name] = {
                **scores,
                "num_videos": len(video_ids),
                "num_captions": len(caption_ids),
                "skipped": skipped,
                # embedding (first to last batch) plus gathering and scoring
                "seconds": round(
                    self._finished.get(idx, 0.0) - self._started.get(idx, 0.0) + time.perf_counter() - scoring_started, 3
                ),
            }
        self.results[stage] = {"step": trainer.global_step, **stage_results}
        if self.output is not None and trainer.is_global_zero:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_text(json.dumps(self.results, indent=2))
