"""MSR-VTT in the CLIP4Clip layout.

``MSRVTT_data.json`` holds every caption (``sentences: [{video_id, caption, sen_id}]``); the
splits are id lists: ``MSRVTT_train.{9k,7k}.csv`` for training, ``MSRVTT_JSFUSION_test.csv``
for the 1k-A test (one caption a video), and ``MSRVTT_val.csv`` (header ``video_id``), which the
user provides since MSR-VTT's common protocols have no validation split: its videos are left out
of training so that checkpoint selection never sees training data. Videos are
``{video_id}.mp4`` under ``data.video_dir``, ``videos/all/``, ``videos/`` or the folder itself.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers.files import (
    DatasetFileNotFoundError,
    check_split,
    find_videos,
    read_csv,
    require_file,
    video_finder,
)

log = logging.getLogger("data_modules")

VIDEO_SUBDIRS = ("videos/all", "videos", "")


def read_msrvtt(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    check_split("msrvtt", split, ("train", "val", "test"))
    if split == "test":
        rows = list(read_csv(root / "MSRVTT_JSFUSION_test.csv", "MSR-VTT 1k-A test list", ("video_id", "sentence")))
        ids = [row["video_id"] for row in rows]
        if cfg.msrvtt_test_captions == "jsfusion":
            return _records(root, cfg, {row["video_id"]: [row["sentence"]] for row in rows}, ids)
        return _records(root, cfg, _captions(root), ids)
    val_path = root / "MSRVTT_val.csv"
    if split == "val":
        if not val_path.is_file():
            raise DatasetFileNotFoundError(
                f"MSR-VTT has no official validation split: expected a list of held-out video ids at {val_path} "
                "(a CSV with header video_id), or leave msrvtt out of data.val"
            )
        return _records(root, cfg, _captions(root), _ids(val_path, "MSR-VTT validation list"))
    ids = _ids(root / f"MSRVTT_train.{cfg.msrvtt_train_list}.csv", f"MSR-VTT {cfg.msrvtt_train_list} training list")
    if val_path.is_file():
        held_out = set(_ids(val_path, "MSR-VTT validation list")) & set(ids)
        if held_out:
            log.info("msrvtt: leaving the %d validation videos out of training", len(held_out))
            ids = [i for i in ids if i not in held_out]
    return _records(root, cfg, _captions(root), ids)


def _ids(path: Path, what: str) -> list[str]:
    return [row["video_id"] for row in read_csv(path, what, ("video_id",))]


def _captions(root: Path) -> dict[str, list[str]]:
    """All captions of each video, in ``sen_id`` order."""
    with require_file(root / "MSRVTT_data.json", "MSR-VTT annotations").open(encoding="utf-8") as handle:
        sentences = json.load(handle)["sentences"]
    by_video: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for sentence in sentences:
        by_video[sentence["video_id"]].append((int(sentence["sen_id"]), sentence["caption"]))
    return {video: [caption for _, caption in sorted(items)] for video, items in by_video.items()}


def _records(root: Path, cfg: DataConfig, captions: dict[str, list[str]], ids: list[str]) -> list[VideoRecord]:
    """Records of ``ids``; an id without captions or without a video file is an error, since
    silently dropping it would change the benchmark."""
    for video_id in ids:
        if not captions.get(video_id):
            raise ValueError(f"{root / 'MSRVTT_data.json'}: no caption for video {video_id}")
    paths = find_videos(video_finder(root, cfg, VIDEO_SUBDIRS), [[f"{i}.mp4"] for i in ids], "MSR-VTT")
    return [VideoRecord(video_id, path, captions[video_id]) for video_id, path in zip(ids, paths)]
