"""Files that appear whole or not at all: a killed run never leaves a half-written one in place."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` fills a temporary file, which is synced and renamed over ``path``, and the rename
    is synced too: readers see the old file or the new one, and a manifest committed after this
    returns never names a file that a power cut could still take away."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
