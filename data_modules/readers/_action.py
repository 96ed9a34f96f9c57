"""Zero-shot action recognition as retrieval, shared by the HMDB51 and UCF101 readers.

Class names become captions through ``data.prompt_template`` ("a person {}": ``brush_hair`` ->
"a person brush hair", ``ApplyEyeMakeup`` -> "a person apply eye makeup"). A video's one caption
is its class's prompt and that caption's id is the class, not the video, so all videos of a class
share it: evaluation scores each video against the distinct class prompts and video-to-text R@1
is the accuracy. The prompts are those of the classes with a video in the split, which in the
real splits is every class. ``data.action_split`` (1-3) picks the official split; ``train`` reads
its training part, ``val`` and ``test`` its test part (neither dataset has a validation split).
Videos are looked for under ``data.video_dir`` first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers.files import find_videos, video_finder

SPLITS = ("train", "val", "test")


def action_records(
    root: Path,
    cfg: DataConfig,
    subdirs: Sequence[str],
    videos: list[str],
    classes: list[str],
    words: Callable[[str], str],
    dataset: str,
) -> list[VideoRecord]:
    """One record a video: its class's prompt as caption, the class as the caption's id."""
    template = cfg.prompt_template
    if template.count("{}") != 1:
        raise ValueError(f"data.prompt_template must hold one '{{}}' for the class name, got {template!r}")
    prompts = {name: template.replace("{}", words(name)) for name in dict.fromkeys(classes)}
    paths = find_videos(video_finder(root, cfg, subdirs), [[video] for video in videos], dataset)
    return [
        VideoRecord(PurePosixPath(video).stem, path, [prompts[name]], caption_ids=[name])
        for video, path, name in zip(videos, paths, classes)
    ]


def split_number(cfg: DataConfig) -> int:
    if cfg.action_split not in (1, 2, 3):
        raise ValueError(f"data.action_split must be 1, 2 or 3 (the official splits), got {cfg.action_split}")
    return cfg.action_split


def lines(path: Path) -> list[str]:
    """Non-blank lines (the official lists end lines with CRLF and trailing spaces)."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
