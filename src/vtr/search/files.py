"""What gets embedded: the media files of a folder and the clips (time windows) cut from them."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from data_modules.video import MediaError, read_image, read_video

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


@dataclass(frozen=True)
class FileStat:
    """Size and modification time (ns): a file whose stat changed is embedded again."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Clip:
    """One row of the index: a window ``[start, end)`` seconds of ``path`` (relative to the folder).
    Images are one clip with start = end = 0. ``windows`` is how many clips its file gives, so a
    file whose clips were only partly embedded before an interruption is recognised as unfinished."""

    path: str
    stat: FileStat
    start: float
    end: float
    windows: int

    @property
    def is_image(self) -> bool:
        return Path(self.path).suffix.lower() in IMAGE_SUFFIXES


def scan(root: Path) -> dict[str, FileStat]:
    """Every video and image under ``root`` (recursively, symlinks followed), by POSIX path relative to it."""
    found: dict[str, FileStat] = {}
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            if Path(name).suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
                path = Path(folder) / name
                st = path.stat()
                found[path.relative_to(root).as_posix()] = FileStat(st.st_size, st.st_mtime_ns)
    return dict(sorted(found.items()))


def listed(root: Path, listing: Path) -> dict[str, FileStat]:
    """The files of ``root`` that ``listing`` names (one path relative to ``root`` a line), as ``scan`` gives them.

    A listed file that is not there, or is no video or image, is an error naming the first few:
    a list that does not match its folder is a mistake, not a partial index.
    """
    if not listing.is_file():
        raise FileNotFoundError(f"file list not found: {listing}")
    names = sorted({line.strip() for line in listing.read_text().splitlines() if line.strip()})
    found = scan(root)
    missing = [name for name in names if name not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        where = f"are not videos or images under {root}"
        raise FileNotFoundError(f"{len(missing)} files listed in {listing} {where}: {shown}")
    return {name: found[name] for name in names}


def windows(duration: float, window: float, stride: float) -> list[tuple[float, float]]:
    """``window``-second windows every ``stride`` seconds covering ``[0, duration]``; the last one
    ends at the end of the video (so it may overlap its neighbour). ``window`` 0, or a video no
    longer than one window, gives the whole video."""
    if window <= 0 or duration <= window:
        return [(0.0, duration)]
    count = math.ceil((duration - window) / stride - 1e-9) + 1
    starts = [min(i * stride, duration - window) for i in range(count)]
    return [(round(s, 6), round(s + window, 6)) for s in starts]


class ClipDataset(Dataset):
    """Frames of each clip, as the evaluation reads them (``uniform`` sampling, test transform).

    An unreadable clip becomes ``{"row", "error"}`` instead of a tensor: the index lists the file
    as skipped, with the reason, rather than failing the run."""

    def __init__(
        self, root: Path, clips: list[Clip], num_frames: int, transform: Callable[[torch.Tensor], torch.Tensor]
    ):
        self.root = root
        self.clips = clips
        self.num_frames = num_frames
        self.transform = transform

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, row: int) -> dict[str, Any]:
        clip = self.clips[row]
        path = self.root / clip.path
        try:
            if clip.is_image:
                frames = read_image(path)
            else:
                # a whole video is read exactly as the evaluation reads it; windows by their time span
                span = None if clip.windows == 1 else (clip.start, clip.end)
                frames = read_video(path, self.num_frames, "uniform", window=span)
        except MediaError as err:
            return {"row": row, "error": err.reason}
        return {"row": row, "video": self.transform(frames)}


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Clips grouped by frame count (images are 1-frame clips, so they cannot share a tensor with
    videos), and the errors."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        if "video" in item:
            groups.setdefault(item["video"].shape[0], []).append(item)
    return {
        "groups": [([i["row"] for i in g], torch.stack([i["video"] for i in g])) for g in groups.values()],
        "errors": [(i["row"], i["error"]) for i in items if "error" in i],
    }


def clip_order(clip: Clip) -> tuple[bool, str, float]:
    """Images first, then videos: batches then rarely mix frame counts."""
    return (not clip.is_image, clip.path, clip.start)


def plan(
    root: Path,
    todo: dict[str, FileStat],
    window: float,
    stride: float,
    duration: Callable[[Path], float],
) -> tuple[list[Clip], list[dict[str, Any]]]:
    """The clips of the files to embed, and the files whose length could not be read (as error records)."""
    clips: list[Clip] = []
    errors: list[dict[str, Any]] = []
    for rel, stat in todo.items():
        if Path(rel).suffix.lower() in IMAGE_SUFFIXES:
            clips.append(Clip(rel, stat, 0.0, 0.0, 1))
            continue
        try:
            spans = windows(duration(root / rel), window, stride)
        except MediaError as err:
            errors.append(error_record(rel, stat, err.reason))
            continue
        clips += [Clip(rel, stat, s, e, len(spans)) for s, e in spans]
    return sorted(clips, key=clip_order), errors


def error_record(path: str, stat: FileStat, reason: str) -> dict[str, Any]:
    return {"path": path, "size": stat.size, "mtime_ns": stat.mtime_ns, "reason": reason}
