"""The chunks of an unfinished ``vtr index`` run, in ``INDEX_DIR/pending/``: what it embedded so
far, each chunk written whole (``atomic.py``), so a killed run keeps all but its last chunk and
the next run commits them instead of embedding those clips again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints.atomic_io import write_atomic


class PendingChunks:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(
        self, rank: int, embeddings: np.ndarray, rows: list[dict[str, Any]], errors: list[dict[str, Any]]
    ) -> None:
        """One chunk: embeddings with their rows (path, size, mtime_ns, start, end, windows) and the
        clips that could not be read. The name holds the rank, so devices never write the same file."""
        meta = np.array(json.dumps({"rows": rows, "errors": errors}))
        path = self.folder / f"chunk-r{rank}-{uuid.uuid4().hex}.npz"
        write_atomic(path, lambda f: np.savez(f, embeddings=embeddings.astype(np.float16), meta=meta))

    def read(self, dim: int) -> tuple[list[dict[str, Any]], np.ndarray, list[dict[str, Any]]]:
        """Rows, their (rows, dim) float16 embeddings and the errors of every chunk, in name order."""
        rows, embs, errors = [], [np.zeros((0, dim), np.float16)], []
        for path in sorted(self.folder.glob("chunk-*.npz")):
            with np.load(path) as chunk:
                meta = json.loads(str(chunk["meta"]))
                rows += meta["rows"]
                errors += meta["errors"]
                embs.append(chunk["embeddings"].reshape(-1, dim))
        return rows, np.concatenate(embs), errors

    def clear(self) -> None:
        for path in self.folder.glob("chunk-*.npz"):
            path.unlink()
