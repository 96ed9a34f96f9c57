"""The index on disk: one float16 embedding matrix and a JSON manifest, changed only atomically.

Layout of ``INDEX_DIR``:
  manifest.json       identity (weights hash, settings), the checkpoint and folder paths, ``files`` (size, mtime
                      of every indexed file), ``entries`` (path, start, end of each embedding row),
                      ``errors`` (files skipped, with the reason), and the embeddings file's name
  embeddings-N.npy    (rows, dim) float16, unit norm; memory-mapped when searching
  pending/            chunks of an unfinished run: what it embedded so far, each chunk written to
                      a temporary name and renamed, so a killed run leaves only whole chunks

``commit`` folds the pending chunks into a new generation: it writes embeddings-(N+1).npy, then
renames the new manifest into place (the one step that switches generations), then deletes the
old matrix and the chunks. A crash at any point leaves either the old or the new index, whole.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .files import FileStat

FORMAT = 1
COPY_ROWS = 65536  # rows copied at a time when a generation is written: memory stays bounded


class IndexMismatch(ValueError):
    """The index was built with another checkpoint or other settings."""


def _write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` fills a temporary file, which is synced and renamed over ``path``: readers see the old or new file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, value: Any) -> None:
    _write_atomic(path, lambda f: f.write(json.dumps(value).encode()))


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return "; ".join(f"{k}: index has {old.get(k)!r}, this run {new.get(k)!r}" for k in keys)


class IndexStore:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.manifest_path = self.folder / "manifest.json"
        self.pending = self.folder / "pending"
        # set by ``open``: checkpoint, folder, tokenizer, recorded at the next commit
        self.recorded: dict[str, Any] = {}

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        if not self.exists():
            raise FileNotFoundError(
                f"no index in {self.folder} (manifest.json missing); build one with `python -m vtr index`"
            )
        return json.loads(self.manifest_path.read_text())

    def embeddings(self, manifest: dict[str, Any]) -> np.ndarray:
        """The (rows, dim) float16 matrix, memory-mapped (read on demand, not loaded)."""
        if not manifest["entries"]:
            return np.zeros((0, manifest["dim"]), np.float16)
        return np.load(self.folder / manifest["embeddings"], mmap_mode="r")

    # ------------------------------------------------------------------ opening
    def open(self, identity: dict[str, Any], dim: int, rebuild: bool, checkpoint: str, root: str,
             text_model: str | None = None) -> None:  # fmt: skip
        """Start a run: refuse (or, with ``rebuild``, clear) an index or unfinished run of another
        identity (weights and settings; the checkpoint and the folder may have moved: their paths
        are recorded); an empty index is written if none exists, so later steps always have one."""
        self.recorded = {"checkpoint": checkpoint, "root": root, "text_model": text_model}
        found = [
            json.loads(p.read_text())["identity"]
            for p in (self.manifest_path, self.pending / "identity.json")
            if p.is_file()
        ]
        for other in found:
            if other != identity and not rebuild:
                raise IndexMismatch(
                    f"the index in {self.folder} was built with another checkpoint or settings "
                    f"({_describe_difference(other, identity)}); pass --rebuild to replace it"
                )
        if rebuild and found:
            shutil.rmtree(self.pending, ignore_errors=True)
            for old in self.folder.glob("embeddings-*.npy"):
                old.unlink()
            self.manifest_path.unlink(missing_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.exists():
            empty = {"format": FORMAT, "identity": identity, **self.recorded, "dim": dim, "generation": 0,
                     "embeddings": None, "files": {}, "entries": [], "errors": []}  # fmt: skip
            _write_json(self.manifest_path, empty)
        self.pending.mkdir(exist_ok=True)
        _write_json(self.pending / "identity.json", {"identity": identity})

    # ------------------------------------------------------------------ chunks
    def write_chunk(
        self, rank: int, embeddings: np.ndarray, rows: list[dict[str, Any]], errors: list[dict[str, Any]]
    ) -> None:
        """One chunk of a run: embeddings with their rows (path, size, mtime_ns, start, end, windows)."""
        meta = json.dumps({"rows": rows, "errors": errors})
        name = f"chunk-r{rank}-{uuid.uuid4().hex}.npz"
        _write_atomic(
            self.pending / name, lambda f: np.savez(f, embeddings=embeddings.astype(np.float16), meta=np.array(meta))
        )

    def _chunks(self) -> tuple[list[dict[str, Any]], list[np.ndarray], list[dict[str, Any]]]:
        rows, embs, errors = [], [], []
        for path in sorted(self.pending.glob("chunk-*.npz")):
            with np.load(path) as chunk:
                meta = json.loads(str(chunk["meta"]))
                rows += meta["rows"]
                errors += meta["errors"]
                embs.append(chunk["embeddings"])
        return rows, embs, errors

    # ------------------------------------------------------------------ commit
    def commit(self, present: dict[str, FileStat], extra_errors: list[dict[str, Any]] = ()) -> dict[str, int]:
        """Fold the pending chunks into the index, keeping only files still ``present`` unchanged.

        A file enters the index when all its windows were embedded; a file with any unreadable
        window is listed in ``errors`` instead. Returns counts: rows ``embedded`` (added to the
        matrix), files ``added``, files ``dropped`` (removed or changed), ``entries``, ``errors``."""
        old = self.manifest()

        def current(path: str, size: int, mtime_ns: int) -> bool:
            """The file is still there with the size and modification time it was embedded with."""
            stat = present.get(path)
            return stat is not None and (stat.size, stat.mtime_ns) == (size, mtime_ns)

        rows, chunk_embs, chunk_errors = self._chunks() if self.pending.is_dir() else ([], [], [])
        errors = {
            e["path"]: e
            for e in [*old["errors"], *chunk_errors, *extra_errors]
            if current(e["path"], e["size"], e["mtime_ns"])
        }
        by_file: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if current(row["path"], row["size"], row["mtime_ns"]) and row["path"] not in errors:
                by_file.setdefault(row["path"], []).append(i)
        new_files = {
            p: idx
            for p, idx in by_file.items()
            if len({(rows[i]["start"], rows[i]["end"]) for i in idx}) == rows[idx[0]]["windows"]
        }
        keep = [
            i
            for i, e in enumerate(old["entries"])
            if current(e["path"], *old["files"][e["path"]]) and e["path"] not in new_files
        ]
        kept_files = {old["entries"][i]["path"] for i in keep}
        files = {p: old["files"][p] for p in kept_files}
        picked: list[int] = []
        for path, idx in new_files.items():
            seen: dict[tuple[float, float], int] = {}
            for i in idx:  # a window embedded twice (resumed run, several devices) is kept once
                seen.setdefault((rows[i]["start"], rows[i]["end"]), i)
            picked += sorted(seen.values(), key=lambda i: rows[i]["start"])
            files[path] = [rows[idx[0]]["size"], rows[idx[0]]["mtime_ns"]]
        entries = [old["entries"][i] for i in keep] + [
            {k: rows[i][k] for k in ("path", "start", "end")} for i in picked
        ]
        error_list = sorted(errors.values(), key=lambda e: e["path"])
        dropped = len({e["path"] for e in old["entries"]} - kept_files - set(new_files))
        counts = {
            "embedded": len(picked),
            "added": len(new_files),
            "dropped": dropped,
            "entries": len(entries),
            "errors": len(errors),
        }
        unchanged = all(old.get(k) == v for k, v in self.recorded.items()) and error_list == old["errors"]
        if not picked and len(keep) == len(old["entries"]) and unchanged:
            self._clear_chunks()  # nothing changed: keep this generation
            return counts
        generation = old["generation"] + 1
        name = f"embeddings-{generation}.npy"
        self._write_matrix(name, old, keep, chunk_embs, picked)
        manifest = {**old, **self.recorded, "generation": generation, "embeddings": name, "files": files,
                    "entries": entries, "errors": error_list}  # fmt: skip
        _write_json(self.manifest_path, manifest)
        if old["embeddings"]:
            (self.folder / old["embeddings"]).unlink(missing_ok=True)
        self._clear_chunks()
        return counts

    def _clear_chunks(self) -> None:
        for path in self.pending.glob("chunk-*.npz"):
            path.unlink()

    def _write_matrix(
        self, name: str, old: dict[str, Any], keep: list[int], chunk_embs: list[np.ndarray], picked: list[int]
    ) -> None:
        """Kept rows of the old matrix, then the picked chunk rows, into a new .npy (temp + rename)."""
        source = self.embeddings(old)
        pending = np.concatenate(chunk_embs) if chunk_embs else np.zeros((0, old["dim"]), np.float16)
        path = self.folder / name
        tmp = path.with_name(f".{name}.tmp")
        if not keep and not picked:  # a memory map cannot be empty
            _write_atomic(path, lambda f: np.save(f, np.zeros((0, old["dim"]), np.float16)))
            return
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(keep) + len(picked), old["dim"]))
        for lo in range(0, len(keep), COPY_ROWS):
            rows = keep[lo : lo + COPY_ROWS]
            out[lo : lo + len(rows)] = source[rows]
        if picked:
            out[len(keep) :] = pending[picked]
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
