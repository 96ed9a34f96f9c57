"""Writable copies of the demo corpus, for tests that break files in them, and the ways they break."""

from __future__ import annotations

import shutil
from pathlib import Path

from data_modules.config import DataConfig
from data_modules.readers import READERS


def copy_corpus(demo_root: Path, tmp_path: Path) -> Path:
    """A copy of the (session-wide, shared) demo corpus under ``tmp_path``, free to be damaged."""
    return Path(shutil.copytree(demo_root, tmp_path / "data"))


def truncate(path: Path) -> None:
    """Keeps the first half of the file, as an interrupted download or copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def webvid_videos(root: Path, split: str) -> list[Path]:
    """The video paths the WebVid reader lists for ``split`` of the corpus at ``root``."""
    return [r.path for r in READERS["webvid"](root / "webvid", split, DataConfig())]
