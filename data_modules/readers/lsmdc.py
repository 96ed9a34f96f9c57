"""LSMDC (the LSMDC 2016 retrieval challenge files).

Each split is a tab-separated file without a header, one clip a line: ``clip_id``,
``start_aligned``, ``end_aligned``, ``start_extracted``, ``end_extracted``, ``sentence``. The
test split is ``LSMDC16_challenge_1000_publictect.csv`` (sic), 1,000 clips. Lines are split on
tabs rather than read with a CSV parser: real sentences hold stray ``"`` characters, and one
opening a field makes a quoting parser read on across lines; some sentences hold tabs, so
fields 6 on are the sentence (whitespace runs become one space).
Clips are ``{movie}/{clip_id}.avi`` (or ``.mp4``), the movie being the clip id before its last
``_``, under ``data.video_dir``, ``avi/``, ``videos/`` or the folder itself.
"""

from __future__ import annotations

from pathlib import Path

from data_modules.config import DataConfig
from data_modules.dataset import VideoRecord
from data_modules.readers.files import check_split, find_videos, require_file, video_finder

_FILES = {
    "train": "LSMDC16_annos_training.csv",
    "val": "LSMDC16_annos_val.csv",
    "test": "LSMDC16_challenge_1000_publictect.csv",
}
VIDEO_SUBDIRS = ("avi", "videos", "")


def read_lsmdc(root: Path, split: str, cfg: DataConfig) -> list[VideoRecord]:
    """One record a clip, its sentence the caption; every clip's video must exist."""
    check_split("lsmdc", split, tuple(_FILES))
    captions = _captions(require_file(root / _FILES[split], f"LSMDC {split} annotations"))
    candidates = []
    for clip_id in captions:
        movie = clip_id.rpartition("_")[0]
        candidates.append([f"{movie}/{clip_id}.avi", f"{movie}/{clip_id}.mp4"])
    paths = find_videos(video_finder(root, cfg, VIDEO_SUBDIRS), candidates, "LSMDC")
    return [VideoRecord(clip_id, path, texts) for (clip_id, texts), path in zip(captions.items(), paths)]


def _captions(path: Path) -> dict[str, list[str]]:
    """Sentences by clip id, in file order (a clip listed twice keeps both, so ids stay unique)."""
    captions: dict[str, list[str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) < 6 or not fields[0]:
                raise ValueError(f"{path}:{number}: expected 6 tab-separated fields, got {len(fields)}: {line!r}")
            captions.setdefault(fields[0], []).append(" ".join(" ".join(fields[5:]).split()))
    return captions
