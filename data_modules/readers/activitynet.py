"""ActivityNet Captions as paragraph-to-video retrieval.

``train.json`` / ``val_1.json`` map ``v_<id>`` to ``{duration, timestamps, sentences}``. The
standard protocol (Frozen, ClipBERT, CLIP4Clip) joins a video's sentences into one paragraph and
retrieves the whole video; it evaluates on ``val_1`` (4,917 videos) since the test annotations
are withheld, so both ``val`` and ``test`` read ``val_1.json``: select checkpoints on a split
of your own if test numbers are to stay unbiased. Videos are ``v_<id>.mp4`` (or ``.mkv``,
``.webm``, as YouTube downloads come) under ``data.video_dir``, ``videos/``, ``videos/all/``
or the folder itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers.files import check_split, find_videos, require_file, video_finder

_FILES = {"train": "train.json", "val": "val_1.json", "test": "val_1.json"}
VIDEO_SUBDIRS = ("videos", "videos/all", "")
EXTENSIONS = (".mp4", ".mkv", ".webm")


def read_activitynet(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """One record a video, its caption the video's sentences joined in order; every video must exist."""
    check_split("activitynet", split, tuple(_FILES))
    path = require_file(root / _FILES[split], f"ActivityNet Captions {split} annotations")
    with path.open(encoding="utf-8") as handle:
        annotations = json.load(handle)
    paragraphs = {}
    for video_id, annotation in annotations.items():
        if not annotation.get("sentences"):
            raise ValueError(f"{path}: video {video_id} has no sentences")
        paragraphs[video_id] = " ".join(s.strip() for s in annotation["sentences"])
    candidates = [[video_id + ext for ext in EXTENSIONS] for video_id in paragraphs]
    paths = find_videos(video_finder(root, cfg, VIDEO_SUBDIRS), candidates, "ActivityNet")
    return [VideoRecord(v, p, [text]) for (v, text), p in zip(paragraphs.items(), paths)]
