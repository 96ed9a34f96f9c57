"""Finding the files of a dataset's official layout, with errors that say where they were looked for."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath


class DatasetFileNotFoundError(FileNotFoundError):
    """A file of a dataset's official layout is not where the layout puts it."""


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else an error naming what was expected and where."""
    if not path.is_file():
        raise DatasetFileNotFoundError(f"{what} not found: expected the file {path}")
    return path


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
    Names may hold a folder part (``movie/clip.avi``); ``""`` as a subdir means ``root`` itself.
    """

    def __init__(self, root: Path, subdirs: Sequence[str]) -> None:
        self.folders = [root / sub for sub in subdirs]
        self._listings: dict[Path, frozenset[str]] = {}

    def __call__(self, name: str) -> Path | None:
        relative = PurePosixPath(name)
        for folder in self.folders:
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
