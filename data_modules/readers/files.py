"""Finding the files of a dataset's official layout, with errors that say where they were looked for."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePosixPath

from data_modules.config import DataConfig

log = logging.getLogger("data_modules")


class DatasetFileNotFoundError(FileNotFoundError):
    """A file of a dataset's official layout is not where the layout puts it."""


_REQUIRED: ContextVar[list[Path] | None] = ContextVar("required_files", default=None)


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else an error naming what was expected and where."""
    if not path.is_file():
        raise DatasetFileNotFoundError(f"{what} not found: expected the file {path}")
    required = _REQUIRED.get()
    if required is not None:
        required.append(path)
    return path


@contextmanager
def recording_required_files() -> Iterator[list[Path]]:
    """The files ``require_file`` hands out inside the block (a reader's split and annotation
    files), so that the metrics can name the split they were computed on."""
    required: list[Path] = []
    token = _REQUIRED.set(required)
    try:
        yield required
    finally:
        _REQUIRED.reset(token)


def check_split(dataset: str, split: str, supported: Sequence[str]) -> None:
    if split not in supported:
        raise ValueError(f"{dataset} has no split {split!r}; supported: {', '.join(supported)}")


def read_csv(path: Path, what: str, columns: Sequence[str], delimiter: str = ",") -> Iterator[dict[str, str]]:
    """Rows of a CSV with a header that holds ``columns``, one at a time (WebVid's has 2.5M)."""
    with require_file(path, what).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; header is {reader.fieldnames}")
        yield from reader


class VideoFinder:
    """Finds a file under the first of ``root/subdir`` that holds it.

    Each folder is listed once, on first use, and looked up in memory after that: a dataset of
    10k videos costs a few directory listings rather than 10k stats on a network file system.
    Names may hold a folder part (``movie/clip.avi``); ``""`` as a subdir means ``root`` itself,
    and an absolute subdir is taken as is.
    """

    def __init__(self, root: Path, subdirs: Sequence[str], max_missing: float = 0.0) -> None:
        self.folders = [root / sub for sub in subdirs]
        self.max_missing = max_missing  # the fraction of videos ``find_videos`` lets be missing
        self._listings: dict[Path, frozenset[str]] = {}

    def __call__(self, *names: str) -> Path | None:
        """The first folder holding any of ``names`` wins; within a folder, the earlier name."""
        for folder in self.folders:
            for name in names:
                relative = PurePosixPath(name)
                parent = folder / relative.parent
                if relative.name in self._listing(parent):
                    return parent / relative.name
        return None

    def _listing(self, folder: Path) -> frozenset[str]:
        if folder not in self._listings:
            self._listings[folder] = frozenset(os.listdir(folder)) if folder.is_dir() else frozenset()
        return self._listings[folder]

    def describe(self) -> str:
        """The folders searched, for error messages."""
        return ", ".join(str(folder) for folder in self.folders)


def video_finder(root: Path, cfg: DataConfig, subdirs: Sequence[str]) -> VideoFinder:
    """A finder over a dataset's usual ``subdirs``, after ``data.video_dir`` where set: users keep
    videos wherever their disks have room, or re-encoded copies beside the originals."""
    return VideoFinder(root, [cfg.video_dir, *subdirs] if cfg.video_dir else subdirs, cfg.max_missing_videos)


def find_videos(find: VideoFinder, candidates: Sequence[Sequence[str]], dataset: str) -> list[Path]:
    """The file of each item: the first of its candidate names that ``find`` finds.

    Missing videos are never dropped silently, since that would change the benchmark. Up to
    ``find.max_missing`` of them (``data.max_missing_videos``; a few lost files of a large
    download) are logged here and kept, at the path where the first folder would hold them: the
    loader then skips them as unreadable and they are counted with the split's skipped samples
    (TensorBoard ``data/skipped_*``, the final table). More than that (most likely a wrong
    ``data.video_dir``) is an error naming the count, the first one and the folders searched."""
    paths, missing = [], []
    for names in candidates:
        path = find(*names)
        if path is None:
            missing.append(names)
            path = find.folders[0] / names[0] if find.folders else Path(names[0])
        paths.append(path)
    if missing:
        message = (
            f"{len(missing)} of {len(candidates)} {dataset} videos not found (first: {' or '.join(missing[0])}); "
            f"looked in {find.describe()}"
        )
        if len(missing) > find.max_missing * len(candidates):
            raise DatasetFileNotFoundError(f"{message} (data.max_missing_videos={find.max_missing:g})")
        log.warning("%s; they will be skipped and counted as skipped samples", message)
    return paths
