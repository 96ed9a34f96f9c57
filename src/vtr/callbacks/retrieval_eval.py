"""Scores retrieval at the end of each validation / test epoch.

The module's eval step returns embeddings of clips and captions with their ids; this callback
collects them per dataloader, gathers them from every rank, drops the duplicates that a
DistributedSampler adds to even out the last shard (by id), and scores text-to-video and
video-to-text R@K / MedR / MeanR. Metrics are logged as ``{stage}/{dataset}/{t2v|v2t}_{metric}``
and written to ``metrics.json`` in the run folder, each dataset's with a ``protocol`` block that
says what was measured (split files, captions per video, frames, the data switches of
``vtr.protocol``, tie-breaking, dual softmax, precision), so that numbers are only compared with
numbers measured alike. A set of more than ``gallery_size`` videos is also scored as disjoint
galleries of that size (``galleries``: each R@K's mean and spread over them), since one 200-video
gallery leaves R@1 a binomial standard error of about 2.5 points.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

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
    tie_break: str | tuple[str, str] = "average",
    with_dual_softmax: bool = False,
) -> dict[str, dict[str, float]]:
    """t2v and v2t metrics. ``pairs`` holds the relevant (caption_id, video_id) pairs: a caption
    usually belongs to one video, but a class prompt (zero-shot action recognition) to many. A
    video's v2t rank is its best-ranked relevant caption's. ``tie_break`` is one mode for both
    directions or a (t2v, v2t) pair (the released evaluation's is ``("optimistic", "mean")``)."""
    t2v_ties, v2t_ties = (tie_break, tie_break) if isinstance(tie_break, str) else tie_break
    v_index = {vid: i for i, vid in enumerate(video_ids)}
    c_index = {cid: i for i, cid in enumerate(caption_ids)}
    relevant = torch.zeros(len(caption_ids), len(video_ids), dtype=torch.bool)
    for caption, vid in pairs:
        relevant[c_index[caption], v_index[vid]] = True
    relevant = relevant.to(video.device)
    sim = text @ video.T
    scores = {
        "t2v": retrieval_metrics(sim, relevant, tie_break=t2v_ties),
        "v2t": retrieval_metrics(sim.T, relevant.T, tie_break=v2t_ties),
    }
    if with_dual_softmax:  # reported beside the raw numbers, never instead of them
        scores["t2v_dsl"] = retrieval_metrics(dual_softmax(sim), relevant, tie_break=t2v_ties)
    return scores


def score_galleries(
    video: Tensor,
    video_ids: list[str],
    text: Tensor,
    caption_ids: list[str],
    pairs: set[tuple[str, str]],
    size: int,
    tie_break: str | tuple[str, str] = "average",
) -> dict[str, Any]:
    """The videos, in the order given, cut into ``len // size`` disjoint galleries of ``size``
    (a remainder is left out); each scored on its own with the captions of its videos. Per
    direction and metric: the mean over galleries, their standard deviation (n - 1) and each value."""
    count = len(video_ids) // size
    per_gallery = []
    for g in range(count):
        members = video_ids[g * size : (g + 1) * size]
        inside = set(members)
        gallery_pairs = {(c, v) for c, v in pairs if v in inside}
        described = {c for c, _ in gallery_pairs}
        keep = [i for i, cid in enumerate(caption_ids) if cid in described]
        rows = video[g * size : (g + 1) * size]
        per_gallery.append(
            score_embeddings(rows, members, text[keep], [caption_ids[i] for i in keep], gallery_pairs, tie_break)
        )
    out: dict[str, Any] = {"size": size, "count": count}
    for direction in ("t2v", "v2t"):
        out[direction] = {}
        for metric in per_gallery[0][direction] if per_gallery else ():
            values = torch.tensor([g[direction][metric] for g in per_gallery], dtype=torch.float64)
            spread = float(values.std()) if count > 1 else 0.0
            out[direction][metric] = {"mean": float(values.mean()), "std": spread, "values": values.tolist()}
    return out


class RetrievalEvaluator(L.Callback):
    """``tie_break``: one mode or a (t2v, v2t) pair (``vtr.metrics``); ``eval_protocol``: the preset's
    name, recorded in each protocol block beside the switches the datamodule's ``describe`` reports;
    ``gallery_size``: score sets larger than this as disjoint galleries too (None: never)."""

    def __init__(
        self,
        output: Path | None = None,
        tie_break: str | tuple[str, str] = "average",
        report_dual_softmax: bool = False,
        eval_protocol: str = "ours",
        gallery_size: int | None = None,
    ) -> None:
        self.output = output
        self.tie_break = (tie_break, tie_break) if isinstance(tie_break, str) else tuple(tie_break)
        self.report_dual_softmax = report_dual_softmax
        self.eval_protocol = eval_protocol
        self.gallery_size = gallery_size
        self.results: dict[str, dict[str, Any]] = {}
        # stage -> dataset -> what was scored last (rank 0 holds every rank's rows), for callbacks
        # that show examples: video_ids, video (V, E), caption_ids, text (C, E), pairs
        self.embeddings: dict[str, dict[str, dict[str, Any]]] = {}
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
        self._outputs[dataloader_idx].append({**outputs, "blank_video_id": batch.get("blank_video_id", [])})
        self._finished[dataloader_idx] = time.perf_counter()

    on_validation_batch_end = _collect
    on_test_batch_end = _collect

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._score("val", trainer.datamodule.val_names, trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._score("test", trainer.datamodule.test_names, trainer, pl_module)

    def _score(self, stage: str, names: list[str], trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stage_results, stage_embeddings = {}, {}
        for idx, name in enumerate(names):
            outs = self._outputs.get(idx, [])
            local = {
                "video": torch.cat([o["video"] for o in outs]).float().cpu() if outs else torch.zeros(0),
                "text": torch.cat([o["text"] for o in outs]).float().cpu() if outs else torch.zeros(0),
                "video_id": [v for o in outs for v in o["video_id"]],
                "caption_id": [c for o in outs for c in o["caption_id"]],
                "caption_video_id": [c for o in outs for c in o["caption_video_id"]],
                "skipped": sum(o["num_skipped"] for o in outs),
                "blank": [v for o in outs for v in o["blank_video_id"]],
            }
            scoring_started = time.perf_counter()
            gathered = _gather_objects(local)
            skipped = sum(p["skipped"] for p in gathered)
            parts = [p for p in gathered if p["video_id"]]
            video_ids, video = _unique(
                [v for p in parts for v in p["video_id"]], torch.cat([p["video"] for p in parts])
            )
            caption_ids, text = _unique(
                [c for p in parts for c in p["caption_id"]], torch.cat([p["text"] for p in parts])
            )
            pairs = {pair for p in parts for pair in zip(p["caption_id"], p["caption_video_id"])}
            blank = {v for p in gathered for v in p["blank"]}  # by id: padded duplicates count once
            scores = score_embeddings(
                video.to(pl_module.device),
                video_ids,
                text.to(pl_module.device),
                caption_ids,
                pairs,
                self.tie_break,
                self.report_dual_softmax,
            )
            stage_embeddings[name] = {
                "video_ids": video_ids,
                "video": video,
                "caption_ids": caption_ids,
                "text": text,
                "pairs": pairs,
            }
            for direction, metrics in scores.items():
                for metric, value in metrics.items() if direction != "galleries" else ():
                    pl_module.log(f"{stage}/{name}/{direction}_{metric}", value, sync_dist=False)
            pl_module.log(f"data/skipped_{stage}_{name}", float(skipped), sync_dist=False)
            if self.gallery_size and len(video_ids) > self.gallery_size:
                order = trainer.datamodule.video_ids(stage, name)  # the split's order, whatever the ranks
                rank = {v: i for i, v in enumerate(order)}
                ordered = sorted(range(len(video_ids)), key=lambda i: rank.get(video_ids[i], len(rank) + i))
                scores["galleries"] = score_galleries(
                    video[ordered], [video_ids[i] for i in ordered], text, caption_ids, pairs, self.gallery_size,
                    self.tie_break,
                )  # fmt: skip
                for metric, value in scores["galleries"]["t2v"].items():
                    pl_module.log(f"{stage}/{name}/galleries_t2v_{metric}", value["mean"], sync_dist=False)
            stage_results[name] = {
                **scores,
                "num_videos": len(video_ids),
                "num_captions": len(caption_ids),
                "skipped": skipped,
                "protocol": self._protocol(trainer, stage, name, len(video_ids), len(pairs), len(blank)),
                # embedding (first to last batch) plus gathering and scoring
                "seconds": round(
                    self._finished.get(idx, 0.0) - self._started.get(idx, 0.0) + time.perf_counter() - scoring_started,
                    3,
                ),
            }
        self.results[stage] = {"step": trainer.global_step, **stage_results}
        self.embeddings[stage] = stage_embeddings
        if trainer.is_global_zero:
            self.save()

    def save(self) -> None:
        """Write ``results`` to ``metrics.json`` (also after other callbacks added to them)."""
        if self.output is not None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_text(json.dumps(self.results, indent=2))

    def _protocol(
        self, trainer: L.Trainer, stage: str, name: str, num_videos: int, num_pairs: int, num_blank: int
    ) -> dict[str, Any]:
        """What the numbers of one dataset measure; ``captions_per_video`` counts relevant pairs
        (a class prompt shared by many videos counts once per video)."""
        t2v_ties, v2t_ties = self.tie_break
        return {
            "eval_protocol": self.eval_protocol,
            **trainer.datamodule.describe(stage, name),
            "captions_per_video": round(num_pairs / max(1, num_videos), 3),
            "directions": ["t2v", "v2t", *(["t2v_dsl"] if self.report_dual_softmax else [])],
            "v2t_rank": "best relevant caption",
            "tie_break": {"t2v": t2v_ties, "v2t": v2t_ties},
            "dual_softmax": self.report_dual_softmax,
            "precision": str(trainer.precision),
            "blank_videos": num_blank,
        }
