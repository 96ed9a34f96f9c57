"""One dataset class for every video-text corpus, and the collator that batches it.

Readers turn each corpus's files into ``VideoRecord``s; from there all corpora load alike. An
unreadable video is logged and dropped (the item is ``None``, the collator counts it in
``num_skipped``) instead of being replaced by a blank clip the model would learn from. Only a
test set under the released evaluation protocol (``blank_unreadable``) keeps it, as the
release does, as a black clip: the batch names such clips in ``blank_video_id``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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
    path: Path | BinaryIO  # a file, or the bytes of a shard's member
    captions: list[str]
    is_image: bool = False
    caption_ids: list[str] | None = None


# Any resize and crop of black is black: the size of the substitute frame does not matter.
_BLACK_FRAME = torch.zeros(1, 3, 256, 256, dtype=torch.uint8)


class VideoTextDataset(Dataset):
    """Clips with captions. Training items hold one random caption and ``rand`` frames; evaluation
    items hold all captions and ``uniform`` frames (or ``sample_mode``'s). Images are 1-frame clips.

    ``blank_unreadable`` (the released evaluation's "lax" loading): an unreadable video becomes
    one black frame, transformed like any other. A video clip with fewer frames than
    ``num_frames`` (that, or ``released_uniform`` sampling of a very short video) is padded with
    all-zero frames after the transform, as the release pads its clips. ``source_files`` names
    the files the split was read from."""

    def __init__(
        self,
        records: Sequence[VideoRecord],  # or data_modules.shards.ShardRecords, which resolves them lazily
        num_frames: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
        train: bool,
        *,
        sample_mode: str | None = None,
        blank_unreadable: bool = False,
        source_files: Sequence[str] = (),
    ) -> None:
        self.records = records
        self.num_frames = num_frames
        self.transform = transform
        self.train = train
        self.sample_mode = sample_mode or ("rand" if train else "uniform")
        self.blank_unreadable = blank_unreadable
        self.source_files = list(source_files)
        # records whose media failed once: skipped for the rest of the run (in this process), so a
        # locally corrupt file that only some frame draws reach stops coming and going
        self.unreadable: dict[int, tuple[str, str]] = {}  # index: (path, reason)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        """``key`` is an index, or (index, seed) from ``ResumableSampler``: then the caption, the
        frames and the crop are drawn from that seed alone, not from the global RNGs."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        rng = random.Random(seed) if seed is not None else random
        try:
            record = self.records[index]
        except MediaError as err:  # a sharded sample its shard does not hold, or an unreadable shard
            log.warning("skipping %s: %s", err.path, err.reason)
            return None
        blank = False
        try:
            if index in self.unreadable:
                raise MediaError(*self.unreadable[index])
            if record.is_image:
                frames = read_image(record.path)
            else:
                frames = read_video(record.path, self.num_frames, self.sample_mode, rng)
        except MediaError as err:
            self.unreadable[index] = (err.path, err.reason)
            if not self.blank_unreadable:
                log.warning("skipping %s (video %s): %s", err.path, record.video_id, err.reason)
                return None
            log.warning("black frame for %s (video %s): %s", err.path, record.video_id, err.reason)
            frames, blank = _BLACK_FRAME, True
        if seed is None:
            video = self.transform(frames)
        else:
            with torch.random.fork_rng(devices=[]):  # torchvision draws from the global torch RNG
                torch.random.default_generator.manual_seed(seed)
                video = self.transform(frames)
        if not record.is_image and video.shape[0] < self.num_frames:
            video = torch.cat([video, video.new_zeros(self.num_frames - video.shape[0], *video.shape[1:])])
        item: dict[str, Any] = {"video": video, "video_id": record.video_id, "blank": blank}
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
    (a shared id, such as an action class, repeats across clips, relevant to each).
    ``blank_video_id`` lists the clips that stand in, black, for unreadable videos
    (``VideoTextDataset.blank_unreadable``). Captions are truncated at ``max_length`` tokens, or
    at the tokenizer's own maximum when it is None (the released evaluation). If every item
    was dropped (training or evaluation alike, since nothing is left to tell), the batch has
    ``video`` of shape (0, 0, 0, 0, 0), text of shape (0, 0), empty ``video_id``,
    ``caption_video_id`` and ``caption_id``, and ``num_skipped`` > 0: the module should skip such
    a batch (and log the count).
    """

    def __init__(self, tokenizer: Any, max_length: int | None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
        kept = [item for item in items if item is not None]
        batch: dict[str, Any] = {"num_skipped": len(items) - len(kept), "video_id": [i["video_id"] for i in kept]}
        batch["blank_video_id"] = [item["video_id"] for item in kept if item.get("blank")]
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
