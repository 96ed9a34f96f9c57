"""HMDB51 for zero-shot action recognition (see ``_action`` for how classes become captions).

Videos ``videos/{class}/{name}.avi`` (or the class folders directly in the folder); split files
``splits/{class}_test_split{N}.txt`` (or the archive's ``testTrainMulti_7030_splits/``), lines
``{name}.avi {0|1|2}``: 1 training, 2 test, 0 unused.
"""

from __future__ import annotations

from pathlib import Path

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers._action import SPLITS, action_records, lines, split_number
from data_modules.readers.files import DatasetFileNotFoundError, check_split

VIDEO_SUBDIRS = ("videos", "")
SPLIT_DIRS = ("splits", "testTrainMulti_7030_splits")


def read_hmdb51(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """Videos labelled 1 (train) or 2 (val, test) in the split files, classes in name order."""
    check_split("hmdb51", split, SPLITS)
    number = split_number(cfg)
    label = "1" if split == "train" else "2"
    videos, classes = [], []
    for name, path in _split_files(root, number).items():
        for line in lines(path):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}: expected lines '{{video}}.avi {{0|1|2}}', got {line!r}")
            if fields[1] == label:
                videos.append(f"{name}/{fields[0]}")
                classes.append(name)
    return action_records(root, cfg, VIDEO_SUBDIRS, videos, classes, _snake_words, "HMDB51")


def _split_files(root: Path, number: int) -> dict[str, Path]:
    """``{class: split file}`` from the first split folder that holds split ``number``."""
    suffix = f"_test_split{number}.txt"
    for folder in SPLIT_DIRS:
        files = sorted((root / folder).glob(f"*{suffix}"))
        if files:
            return {path.name[: -len(suffix)]: path for path in files}
    raise DatasetFileNotFoundError(
        f"HMDB51 split {number} files not found: expected {root / SPLIT_DIRS[0]}/{{class}}{suffix} "
        f"(or under {root / SPLIT_DIRS[1]})"
    )


def _snake_words(name: str) -> str:
    """``brush_hair`` -> ``brush hair``."""
    return name.replace("_", " ")
