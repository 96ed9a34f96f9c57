"""Checkpoint writes that a crash cannot leave half done.

Lightning's ``TorchCheckpointIO`` (2.6) serializes the checkpoint into memory, writes it to a
temporary file in the system temp folder, and moves that over the target. Across file systems
(node-local ``/tmp``, checkpoints on a cluster's shared storage: the usual case) the move is a
copy into the target itself, so a job killed during it leaves a truncated ``last.ckpt`` and no
previous one; nothing is fsync'ed either. ``AtomicCheckpointIO`` writes to ``<path>.tmp`` beside
the target, fsyncs it, renames it over the target (atomic within a file system) and fsyncs the
folder: at any moment the target is either the previous complete checkpoint or the new one.
Remote paths (``s3://`` ...) keep Lightning's behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` fills ``<path>.tmp``, which is fsync'ed and renamed over ``path``, and the rename is
    fsync'ed too: readers see the old file or the new one, and whatever is recorded after this
    returns never names a file that a power cut could still take away."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` through ``write_atomic``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: torch.save(obj, handle))


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)


def _is_local(path: _PATH) -> bool:
    fs = get_filesystem(path)
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
