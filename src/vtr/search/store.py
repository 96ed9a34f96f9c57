"""The index on disk: a SQLite manifest and append-only embedding chunks, changed only atomically.

Layout of ``INDEX_DIR``:
  index.sqlite   the manifest (``manifest.py``): identity (weights hash, settings), the checkpoint
                 and folder paths, the indexed files, each embedding row's file, window and place,
                 the files skipped as unreadable
  chunks/*.npy   (rows, dim) float16 unit-norm embeddings, each file written once and never
                 changed; memory-mapped when searching
  pending/       the chunks of an unfinished run (``pending.py``)

``commit`` writes the run's new rows as one new chunk file (synced, renamed into place), then
records that chunk, its rows, and the removed or changed files (their rows become tombstones in
the ``live`` mask of their chunk) in one SQLite transaction: the one step that switches from the
old index to the new. A crash before it leaves the old index and at most a chunk file that no
manifest names (deleted by the next run); SQLite rolls back a transaction cut short. So an
incremental run writes what changed, not the index: one chunk file and the rows it touched.
A chunk left less than half live, and the smaller half of the chunks once there are more than
``MAX_CHUNKS``, are folded into the new chunk (their live rows copied), so that tombstones and the
small chunks of many small runs cannot pile up.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints.atomic_io import write_atomic
from . import manifest
from .files import FileStat
from .pending import PendingChunks

MAX_CHUNKS = 64  # a search opens every chunk file
COPY_ROWS = 65536  # rows copied at a time when a chunk is folded: memory stays bounded


class IndexMismatch(ValueError):
    """The index was built with another checkpoint or other settings, or by an older version."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the indexed folder
    start: float  # seconds; 0, 0 for an image
    end: float


@dataclass(frozen=True)
class Segment:
    """One chunk file, memory-mapped, which of its rows are live (the others are tombstones), and
    the largest norm of its rows (what bounds the error of scoring them in float16)."""

    chunk: int
    matrix: np.ndarray
    live: np.ndarray
    max_norm: float


@dataclass
class _Chunk:
    """A chunk as a commit sees it: its mask is changed in memory, then written in the transaction."""

    id: int
    name: str
    live: np.ndarray
    changed: bool = False


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return "; ".join(f"{k}: index has {old.get(k)!r}, this run {new.get(k)!r}" for k in keys)


def _to_fold(chunks: list[_Chunk]) -> list[_Chunk]:
    """The chunks whose live rows move into the next chunk: those less than half live (a search
    would score their dead rows for ever) and, past ``MAX_CHUNKS``, the smaller half."""
    fold = {c.id for c in chunks if 2 * int(c.live.sum()) < len(c.live)}
    rest = sorted((c for c in chunks if c.id not in fold), key=lambda c: int(c.live.sum()))
    if len(rest) >= MAX_CHUNKS:
        fold |= {c.id for c in rest[: len(rest) // 2]}
    return [c for c in chunks if c.id in fold]


def _npy(f, blocks: Iterator[np.ndarray], rows: int, dim: int) -> None:
    """A float16 .npy of ``rows`` x ``dim`` written block by block (never whole in memory)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": (rows, dim)}
    np.lib.format.write_array_header_1_0(f, header)
    for block in blocks:
        f.write(np.ascontiguousarray(block, dtype=np.float16).tobytes())


class IndexStore:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.db_path = self.folder / "index.sqlite"
        self.chunk_dir = self.folder / "chunks"
        self.pending = PendingChunks(self.folder / "pending")
        # set by ``open``: checkpoint, folder, tokenizer, recorded at the next commit
        self.recorded: dict[str, Any] = {}

    def exists(self) -> bool:
        return self.db_path.is_file()

    def _legacy(self) -> IndexMismatch | None:
        """The refusal of an index an older version wrote (manifest.json), if this is one."""
        if self.exists() or not (self.folder / "manifest.json").is_file():
            return None
        return IndexMismatch(
            f"the index in {self.folder} was written by an older version (manifest.json); rebuild it: "
            f"python -m vtr index VIDEO_DIR --ckpt CKPT --out {self.folder} --rebuild"
        )

    def _connect(self) -> closing[sqlite3.Connection]:
        legacy = self._legacy()
        if legacy:
            raise legacy
        if not self.exists():
            raise FileNotFoundError(
                f"no index in {self.folder} (index.sqlite missing); build one with `python -m vtr index`"
            )
        return closing(manifest.connect(self.db_path))

    # ------------------------------------------------------------------ reading
    def info(self) -> dict[str, Any]:
        """identity, dim, checkpoint, root (the indexed folder), text_model, format, generation."""
        with self._connect() as db:
            return manifest.get_meta(db)

    def files(self) -> dict[str, FileStat]:
        with self._connect() as db:
            return {p: FileStat(s, m) for p, s, m in db.execute("SELECT path, size, mtime_ns FROM files")}

    def errors(self) -> list[dict[str, Any]]:
        """The files skipped as unreadable: path, size, mtime_ns, reason."""
        with self._connect() as db:
            rows = db.execute("SELECT path, size, mtime_ns, reason FROM errors ORDER BY path")
            return [dict(zip(("path", "size", "mtime_ns", "reason"), row)) for row in rows]

    def count(self) -> int:
        """Live rows: clips (or windows, or images) in the index."""
        with self._connect() as db:
            return db.execute("SELECT count(*) FROM entries").fetchone()[0]

    def segments(self) -> tuple[int, list[Segment]]:
        """The generation (commits so far) and every chunk, memory-mapped, read in one transaction."""
        with self._connect() as db, manifest.transaction(db, write=False):
            generation = json.loads(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            chunks = db.execute("SELECT id, name, live, max_norm FROM chunks ORDER BY id").fetchall()
            segments = [
                Segment(i, np.load(self.chunk_dir / name, mmap_mode="r"), np.frombuffer(live, dtype=bool), norm)
                for i, name, live, norm in chunks
            ]
        return generation, segments

    def lookup(self, keys: list[tuple[int, int]], generation: int) -> list[Entry] | None:
        """The entries at (chunk, row) ``keys``; None if a commit came after ``generation`` was read
        (the keys may then name rows that moved or died)."""
        with self._connect() as db, manifest.transaction(db, write=False):
            now = json.loads(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            if now != generation:
                return None
            query = (
                "SELECT f.path, e.start_s, e.end_s FROM entries e JOIN files f ON f.id = e.file "
                "WHERE e.chunk = ? AND e.row = ?"
            )
            return [Entry(*db.execute(query, (int(c), int(r))).fetchone()) for c, r in keys]

    # ------------------------------------------------------------------ opening
    def open(self, identity: dict[str, Any], dim: int, rebuild: bool, checkpoint: str, root: str,
             text_model: str | None = None) -> None:  # fmt: skip
        """Start a run: refuse (or, with ``rebuild``, clear) an index or unfinished run of another
        identity (weights and settings; the checkpoint and the folder may have moved: their paths
        are recorded), or an index of an older version; an empty index is written if none exists,
        so later steps always have one."""
        self.recorded = {"checkpoint": checkpoint, "root": root, "text_model": text_model}
        legacy = self._legacy()
        if legacy and not rebuild:
            raise legacy
        identity_file = self.pending.folder / "identity.json"
        found = [self.info()["identity"]] if self.exists() else []
        found += [json.loads(identity_file.read_text())["identity"]] if identity_file.is_file() else []
        for other in found:
            if other != identity and not rebuild:
                raise IndexMismatch(
                    f"the index in {self.folder} was built with another checkpoint or settings "
                    f"({_describe_difference(other, identity)}); pass --rebuild to replace it"
                )
        if rebuild and (found or legacy):
            self._clear()
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        if not self.exists():
            tmp = self.folder / f".index.sqlite.{uuid.uuid4().hex}.tmp"
            meta = {"format": manifest.FORMAT, "identity": identity, **self.recorded, "dim": dim, "generation": 0}
            manifest.create(tmp, meta)
            os.replace(tmp, self.db_path)
        self._sweep()
        self.pending.folder.mkdir(exist_ok=True)
        write_atomic(identity_file, lambda f: f.write(json.dumps({"identity": identity}).encode()))

    def _clear(self) -> None:
        """Everything an index of this or the older version keeps in its folder."""
        shutil.rmtree(self.pending.folder, ignore_errors=True)
        shutil.rmtree(self.chunk_dir, ignore_errors=True)
        for name in ("index.sqlite", "index.sqlite-journal", "manifest.json"):
            (self.folder / name).unlink(missing_ok=True)
        for old in self.folder.glob("embeddings-*.npy"):
            old.unlink()

    def _sweep(self) -> None:
        """Delete the chunk files no manifest names: written by a commit that did not finish."""
        with self._connect() as db:
            named = {name for (name,) in db.execute("SELECT name FROM chunks")}
        for path in self.chunk_dir.iterdir():
            if path.name not in named:
                path.unlink()

    # ------------------------------------------------------------------ commit
    def commit(self, present: dict[str, FileStat], extra_errors: list[dict[str, Any]] = ()) -> dict[str, int]:
        """Fold the pending chunks into the index, keeping only files still ``present`` unchanged.

        A file enters the index when all its windows were embedded; a file with any unreadable
        window is listed in ``errors`` instead. Returns counts: rows ``embedded`` (added to the
        index), files ``added``, files ``dropped`` (removed or changed), ``entries``, ``errors``."""
        meta = self.info()
        with self._connect() as db:
            old_files = {p: (i, s, m) for i, p, s, m in db.execute("SELECT id, path, size, mtime_ns FROM files")}
            old_entries = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        old_errors = self.errors()

        def current(path: str, size: int, mtime_ns: int) -> bool:
            """The file is still there with the size and modification time it was embedded with."""
            stat = present.get(path)
            return stat is not None and (stat.size, stat.mtime_ns) == (size, mtime_ns)

        has_pending = self.pending.folder.is_dir()
        rows, chunk_embs, chunk_errors = self.pending.read(meta["dim"]) if has_pending else ([], None, [])
        errors = {
            e["path"]: e
            for e in [*old_errors, *chunk_errors, *extra_errors]
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
        kept = {p for p, (_, s, m) in old_files.items() if current(p, s, m) and p not in new_files}
        gone = [i for p, (i, _, _) in old_files.items() if p not in kept]  # removed, changed, or embedded again
        picked: list[int] = []
        for idx in new_files.values():
            seen: dict[tuple[float, float], int] = {}
            for i in idx:  # a window embedded twice (resumed run, several devices) is kept once
                seen.setdefault((rows[i]["start"], rows[i]["end"]), i)
            picked += sorted(seen.values(), key=lambda i: rows[i]["start"])
        error_list = sorted(errors.values(), key=lambda e: e["path"])
        with self._connect() as db:
            dead = [key for i in gone for key in db.execute("SELECT chunk, row FROM entries WHERE file = ?", (i,))]
        counts = {
            "embedded": len(picked),
            "added": len(new_files),
            "dropped": len(set(old_files) - kept - set(new_files)),
            "entries": old_entries - len(dead) + len(picked),
            "errors": len(errors),
        }
        unchanged = all(meta.get(k) == v for k, v in self.recorded.items()) and error_list == old_errors
        if not picked and not gone and unchanged:
            self.pending.clear()  # nothing changed: no commit
            return counts
        new_embs = chunk_embs[picked] if picked else None
        self._record(meta, gone, dead, [rows[i] for i in picked], new_embs, error_list)
        self.pending.clear()
        return counts

    def _record(
        self,
        meta: dict[str, Any],
        gone: list[int],
        dead: list[tuple[int, int]],
        new_rows: list[dict[str, Any]],
        new_embs: np.ndarray | None,
        errors: list[dict[str, Any]],
    ) -> None:
        """Write the new chunk (folded rows, then ``new_rows``), then switch to it in one transaction
        that deletes the ``gone`` files and their ``dead`` rows and records the new rows."""
        with self._connect() as db:
            chunks = [
                _Chunk(i, name, np.frombuffer(live, dtype=bool).copy())
                for i, name, live in db.execute("SELECT id, name, live FROM chunks ORDER BY id")
            ]
        by_id = {c.id: c for c in chunks}
        for chunk, row in dead:
            by_id[chunk].live[row] = False
            by_id[chunk].changed = True
        folded = _to_fold(chunks)
        moved = [(c.id, int(r)) for c in folded for r in np.flatnonzero(c.live)]
        total = len(moved) + len(new_rows)
        name = f"{uuid.uuid4().hex}.npy"
        norms = [0.0]
        if total:

            def blocks() -> Iterator[np.ndarray]:
                for c in folded:
                    source, live = np.load(self.chunk_dir / c.name, mmap_mode="r"), np.flatnonzero(c.live)
                    for lo in range(0, len(live), COPY_ROWS):
                        yield source[live[lo : lo + COPY_ROWS]]
                if new_embs is not None:
                    yield new_embs

            def measured() -> Iterator[np.ndarray]:
                for block in blocks():
                    norms.append(float(np.linalg.norm(block.astype(np.float32), axis=1).max(initial=0.0)))
                    yield block

            write_atomic(self.chunk_dir / name, lambda f: _npy(f, measured(), total, meta["dim"]))
        with self._connect() as db, manifest.transaction(db):
            db.executemany("DELETE FROM entries WHERE chunk = ? AND row = ?", dead)
            db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in gone])
            if total:
                new_id = db.execute(
                    "INSERT INTO chunks (name, rows, max_norm, live) VALUES (?, ?, ?, ?)",
                    (name, total, max(norms), np.ones(total, bool).tobytes()),
                ).lastrowid
                db.executemany(
                    "UPDATE entries SET chunk = ?, row = ? WHERE chunk = ? AND row = ?",
                    [(new_id, i, c, r) for i, (c, r) in enumerate(moved)],
                )
                self._insert_rows(db, new_id, len(moved), new_rows)
            db.executemany("DELETE FROM chunks WHERE id = ?", [(c.id,) for c in folded])
            folded_ids = {c.id for c in folded}
            db.executemany(
                "UPDATE chunks SET live = ? WHERE id = ?",
                [(c.live.tobytes(), c.id) for c in chunks if c.changed and c.id not in folded_ids],
            )
            db.execute("DELETE FROM errors")
            db.executemany(
                "INSERT INTO errors (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?)",
                [(e["path"], e["size"], e["mtime_ns"], e["reason"]) for e in errors],
            )
            manifest.set_meta(db, {**self.recorded, "generation": meta["generation"] + 1})
        for c in folded:
            (self.chunk_dir / c.name).unlink(missing_ok=True)

    @staticmethod
    def _insert_rows(db: sqlite3.Connection, chunk: int, first: int, rows: list[dict[str, Any]]) -> None:
        """The files of ``rows`` (path, size, mtime_ns, start, end) and their entries, rows
        ``first``... of ``chunk``."""
        next_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM files").fetchone()[0]
        ids: dict[str, tuple[int, int, int]] = {}
        for row in rows:
            ids.setdefault(row["path"], (next_id + len(ids), row["size"], row["mtime_ns"]))
        db.executemany(
            "INSERT INTO files (id, path, size, mtime_ns) VALUES (?, ?, ?, ?)",
            [(i, p, s, m) for p, (i, s, m) in ids.items()],
        )
        db.executemany(
            "INSERT INTO entries (chunk, row, file, start_s, end_s) VALUES (?, ?, ?, ?, ?)",
            ((chunk, first + j, ids[r["path"]][0], r["start"], r["end"]) for j, r in enumerate(rows)),
        )
