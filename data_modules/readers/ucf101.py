"""UCF101 for zero-shot action recognition (see ``_action`` for how classes become captions).

Videos ``UCF-101/{Class}/v_{Class}_g{gg}_c{cc}.avi``; in ``ucfTrainTestlist/``, ``classInd.txt``
(``1 ApplyEyeMakeup``), ``trainlist0{N}.txt`` (``{Class}/v_....avi {label}``) and
``testlist0{N}.txt`` (``{Class}/v_....avi``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers._action import SPLITS, action_records, lines, split_number
from data_modules.readers.files import check_split, require_file

VIDEO_SUBDIRS = ("UCF-101", "videos", "")


def read_ucf101(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """Videos of ``trainlist0N`` (train) or ``testlist0N`` (val, test), in list order."""
    check_split("ucf101", split, SPLITS)
    number = split_number(cfg)
    lists = root / "ucfTrainTestlist"
    known = {line.split()[-1] for line in lines(require_file(lists / "classInd.txt", "UCF101 class index"))}
    part = "train" if split == "train" else "test"
    path = require_file(lists / f"{part}list{number:02d}.txt", f"UCF101 split {number} {part} list")
    videos = [line.split()[0] for line in lines(path)]
    classes = [PurePosixPath(video).parent.name for video in videos]
    unknown = sorted(set(classes) - known)
    if unknown:
        raise ValueError(f"{path}: class(es) {', '.join(unknown)} not in {lists / 'classInd.txt'}")
    return action_records(root, cfg, VIDEO_SUBDIRS, videos, classes, _camel_words, "UCF101")


def _camel_words(name: str) -> str:
    """``ApplyEyeMakeup`` -> ``apply eye makeup``, ``YoYo`` -> ``yo yo``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).lower()
