"""One dataset class for every video-text corpus, and the collator that batches it.

Readers turn each corpus's files into ``VideoRecord``s; from there all corpora load alike. An
unreadable video is logged and dropped (the item is ``None``, the collator counts it in
``num_skipped``) instead of being replaced by a blank clip the model would learn from.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from data_modules.video import MediaError, read_image, read_video

log = logging.getLogger("data_modules")


@dataclass(slots=True)
class VideoRecord:
    """A video (or image) and its captions; ``video_id`` is unique within its dataset split.

    ``caption_ids`` name the captions where several videos share one (zero-shot action
    recognition: the caption is the class prompt, its id the class); by default each caption is
    its video's own. Slotted: WebVid holds 2.5M of them."""

    video_id: str
    path: Path
    captions: list[str]
    is_image: bool = False
    caption_ids: list[str] | None = None


class VideoTextDataset(Dataset):
    """Clips with captions. Training items hold one random caption and ``rand`` frames; evaluation
    items hold all captions and ``uniform`` frames. Images are 1-frame clips."""

    def __init__(
        self,
        records: Sequence[VideoRecord],
        num_frames: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
        train: bool,
    ) -> None:
        self.records = records
        self.num_frames = num_frames
        self.transform = transform
        self.train = train

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        """``key`` is an index, or (index, seed) from ``ResumableSampler``: then the caption, the
        frames and the crop are drawn from that seed alone, not from the global RNGs."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        rng = random.Random(seed) if seed is not None else random
        record = self.records[index]
        try:
            if record.is_image:
                frames = read_image(record.path)
            else:
                frames = read_video(record.path, self.num_frames, "rand" if self.train else "uniform", rng)
        except MediaError as err:
            log.warning("skipping %s (video %s): %s", err.path, record.video_id, err.reason)
            return None
        if seed is None:
            video = self.transform(frames)
        else:
            with torch.random.fork_rng(devices=[]):  # torchvision draws from the global torch RNG
                torch.random.default_generator.manual_seed(seed)
                video = self.transform(frames)
        item: dict[str, Any] = {"video": video, "video_id": record.video_id}
        if self.train:
            item["caption"] = rng.choice(record.captions)
        else:
            item["captions"] = list(record.captions)
            if record.caption_ids is not None:
                item["caption_ids"] = list(record.caption_ids)
        return item


class Collator:
    """Batches dataset items: drops ``None`` (unreadable media), stacks clips, tokenizes captions.

    Batch keys: ``video`` (B, T, C, H, W) float; ``text`` = {input_ids, attention_mask}, padded to
    the longest caption; ``video_id`` (list of B); ``num_skipped`` (int). Training batches hold one
    caption a clip (``text`` has B rows). Evaluation batches hold every caption of every clip,
    flattened: ``text`` has Nc rows, ``caption_video_id`` names each caption's clip and
    ``caption_id`` is the record's ``caption_ids`` entry where it has them, else ``"{video_id}#{k}"``
    (a shared id, such as an action class, repeats across clips, relevant to each). If every item
    was dropped (training or evaluation alike, since nothing is left to tell), the batch has
    ``video`` of shape (0, 0, 0, 0, 0), text of shape (0, 0), empty ``video_id``,
    ``caption_video_id`` and ``caption_id``, and ``num_skipped`` > 0: the module should skip such
    a batch (and log the count).
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
        kept = [item for item in items if item is not None]
        batch: dict[str, Any] = {"num_skipped": len(items) - len(kept), "video_id": [i["video_id"] for i in kept]}
        if not kept:
            empty = torch.zeros(0, 0, dtype=torch.long)
            text = {"input_ids": empty, "attention_mask": empty}
            batch.update(video=torch.zeros(0, 0, 0, 0, 0), text=text, caption_video_id=[], caption_id=[])
            return batch
        batch["video"] = torch.stack([item["video"] for item in kept])
        if "caption" in kept[0]:
            captions = [item["caption"] for item in kept]
        else:
            captions = [c for item in kept for c in item["captions"]]
            batch["caption_video_id"] = [item["video_id"] for item in kept for _ in item["captions"]]
            batch["caption_id"] = [cid for item in kept for cid in _caption_ids(item)]
        tokens = self.tokenizer(
            captions, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        batch["text"] = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
        return batch


def _caption_ids(item: dict[str, Any]) -> list[str]:
    return item.get("caption_ids") or [f"{item['video_id']}#{k}" for k in range(len(item["captions"]))]
