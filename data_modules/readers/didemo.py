"""DiDeMo as paragraph-to-video retrieval.

``{train,val,test}_data.json`` list moments ``{video, times, description, ...}``; the standard
protocol (ClipBERT, Frozen, CLIP4Clip) joins a video's descriptions, in file order, into one
paragraph and retrieves the whole video (test: 1,004 videos). Videos lie under
``data.video_dir``, ``videos/`` or the folder itself. The json's file names do not always match
the disk: the Flickr originals come as ``.mp4``, ``.mov``, ``.avi``, ``.3gp`` and more, and
converted copies change the extension, so the stem is tried with each common one.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers.files import check_split, find_videos, require_file, video_finder

VIDEO_SUBDIRS = ("videos", "")
EXTENSIONS = (".mp4", ".mov", ".avi", ".3gp", ".m4v", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", "")


def read_didemo(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """One record a video (id: its file name's stem), its caption its descriptions joined."""
    check_split("didemo", split, ("train", "val", "test"))
    path = require_file(root / f"{split}_data.json", f"DiDeMo {split} annotations")
    with path.open(encoding="utf-8") as handle:
        moments = json.load(handle)
    names: dict[str, str] = {}
    descriptions: dict[str, list[str]] = {}
    for moment in moments:
        stem = PurePosixPath(moment["video"]).stem
        names.setdefault(stem, moment["video"])
        descriptions.setdefault(stem, []).append(moment["description"].strip())
    candidates = [list(dict.fromkeys([name, *(stem + ext for ext in EXTENSIONS)])) for stem, name in names.items()]
    paths = find_videos(video_finder(root, cfg, VIDEO_SUBDIRS), candidates, "DiDeMo")
    return [VideoRecord(stem, p, [" ".join(descriptions[stem])]) for stem, p in zip(names, paths)]
