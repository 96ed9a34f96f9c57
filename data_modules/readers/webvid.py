"""WebVid-2M in its release layout: ``metadata/results_2M_{train,val}.csv`` and ``videos/{page_dir}/{videoid}.mp4``.

``data.video_dir`` (absolute, or relative to the webvid folder) replaces ``videos/`` as the base.
"""

from __future__ import annotations

from pathlib import Path

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers.files import check_split, read_csv

# WebVid has no test split; its val split (5k clips) serves for both.
SPLIT_CSV = {"train": "results_2M_train.csv", "val": "results_2M_val.csv", "test": "results_2M_val.csv"}


def read_webvid(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """One record per CSV row (``name`` is the caption); missing videos are skipped at load time."""
    check_split("webvid", split, tuple(SPLIT_CSV))
    base = root / (cfg.video_dir or "videos")
    rows = read_csv(root / "metadata" / SPLIT_CSV[split], f"WebVid {split} metadata", ("videoid", "page_dir", "name"))
    return [
        VideoRecord(row["videoid"], base / row["page_dir"] / f"{row['videoid']}.mp4", [row["name"]]) for row in rows
    ]
