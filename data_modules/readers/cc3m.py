"""Conceptual Captions (CC3M) as a plain ``cc3m_{train,val}.csv`` of ``caption,path``.

``path`` is relative to the cc3m folder or absolute. Images are 1-frame clips.
"""

from __future__ import annotations

from pathlib import Path

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers.files import check_split, read_csv


def read_cc3m(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """One record per row; the path as written in the CSV is the id (unique, unlike the file name)."""
    check_split("cc3m", split, ("train", "val"))
    rows = read_csv(root / f"cc3m_{split}.csv", f"CC3M {split} list", ("caption", "path"))
    return [VideoRecord(row["path"], root / row["path"], [row["caption"]], is_image=True) for row in rows]
