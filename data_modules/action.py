"""Zero-shot action recognition as retrieval: HMDB51 and UCF101.

Class names become captions through ``data.prompt_template`` ("a person {}": ``brush_hair`` ->
"a person brush hair", ``ApplyEyeMakeup`` -> "a person apply eye makeup"). A video's one caption
is its class's prompt and that caption's id is the class, not the video, so all videos of a class
share it: evaluation scores each video against the distinct class prompts and video-to-text R@1
is the accuracy. The prompts are those of the classes with a video in the split, which in the
real splits is every class. ``data.action_split`` (1-3) picks the official split; ``train`` reads
its training part, ``val`` and ``test`` its test part (neither dataset has a validation split).

HMDB51: ``videos/{class}/{name}.avi`` (or the class folders directly in the folder); split files
``splits/{class}_test_split{N}.txt`` (or the archive's ``testTrainMulti_7030_splits/``), lines
``{name}.avi {0|1|2}``: 1 training, 2 test, 0 unused.
UCF101: ``UCF-101/{Class}/v_{Class}_g{gg}_c{cc}.avi``; in ``ucfTrainTestlist/``, ``classInd.txt``
(``1 ApplyEyeMakeup``), ``trainlist0{N}.txt`` (``{Class}/v_....avi {label}``) and
``testlist0{N}.txt`` (``{Class}/v_....avi``).
Videos are looked for under ``data.video_dir`` first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from data_modules.dataset import VideoRecord
from data_modules.files import DatasetFileNotFoundError, check_split, find_videos, require_file, video_finder

if TYPE_CHECKING:
    from vtr.config import DataConfig

SPLITS = ("train", "val", "test")
HMDB_VIDEO_SUBDIRS = ("videos", "")
HMDB_SPLIT_DIRS = ("splits", "testTrainMulti_7030_splits")
UCF_VIDEO_SUBDIRS = ("UCF-101", "videos", "")


def read_hmdb51(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """Videos labelled 1 (train) or 2 (val, test) in the split files, classes in name order."""
    check_split("hmdb51", split, SPLITS)
    number = _split_number(cfg)
    label = "1" if split == "train" else "2"
    videos, classes = [], []
    for name, path in _hmdb_split_files(root, number).items():
        for line in _lines(path):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}: expected lines '{{video}}.avi {{0|1|2}}', got {line!r}")
            if fields[1] == label:
                videos.append(f"{name}/{fields[0]}")
                classes.append(name)
    return _records(root, cfg, HMDB_VIDEO_SUBDIRS, videos, classes, _snake_words, "HMDB51")


def read_ucf101(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """Videos of ``trainlist0N`` (train) or ``testlist0N`` (val, test), in list order."""
    check_split("ucf101", split, SPLITS)
    number = _split_number(cfg)
    lists = root / "ucfTrainTestlist"
    known = {line.split()[-1] for line in _lines(require_file(lists / "classInd.txt", "UCF101 class index"))}
    part = "train" if split == "train" else "test"
    path = require_file(lists / f"{part}list{number:02d}.txt", f"UCF101 split {number} {part} list")
    videos = [line.split()[0] for line in _lines(path)]
    classes = [PurePosixPath(video).parent.name for video in videos]
    unknown = sorted(set(classes) - known)
    if unknown:
        raise ValueError(f"{path}: class(es) {', '.join(unknown)} not in {lists / 'classInd.txt'}")
    return _records(root, cfg, UCF_VIDEO_SUBDIRS, videos, classes, _camel_words, "UCF101")


def _records(
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


def _split_number(cfg: DataConfig) -> int:
    if cfg.action_split not in (1, 2, 3):
        raise ValueError(f"data.action_split must be 1, 2 or 3 (the official splits), got {cfg.action_split}")
    return cfg.action_split


def _hmdb_split_files(root: Path, number: int) -> dict[str, Path]:
    """``{class: split file}`` from the first split folder that holds split ``number``."""
    suffix = f"_test_split{number}.txt"
    for folder in HMDB_SPLIT_DIRS:
        files = sorted((root / folder).glob(f"*{suffix}"))
        if files:
            return {path.name[: -len(suffix)]: path for path in files}
    raise DatasetFileNotFoundError(
        f"HMDB51 split {number} files not found: expected {root / HMDB_SPLIT_DIRS[0]}/{{class}}{suffix} "
        f"(or under {root / HMDB_SPLIT_DIRS[1]})"
    )


def _lines(path: Path) -> list[str]:
    """Non-blank lines (the official lists end lines with CRLF and trailing spaces)."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _snake_words(name: str) -> str:
    """``brush_hair`` -> ``brush hair``."""
    return name.replace("_", " ")


def _camel_words(name: str) -> str:
    """``ApplyEyeMakeup`` -> ``apply eye makeup``, ``YoYo`` -> ``yo yo``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).lower()
