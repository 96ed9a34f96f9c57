"""The index's manifest: one SQLite database (standard library), changed only in transactions.

SQLite, not a JSON file, so that a commit writes the rows that changed instead of the whole
manifest, and a search reads a few small tables plus the rows of its hits instead of parsing
an entry per clip. Tables:
  meta     key -> JSON value: format, identity, dim, checkpoint, root, text_model, generation
  files    every indexed file (id, path, size, mtime_ns), as it was when embedded
  chunks   the embedding chunk files in order (id, file name, rows, the largest row norm) and
           ``live``, one byte a row: 0 where the row's file was removed or changed (a tombstone:
           chunk files never change)
  entries  (chunk, row) -> file, start_s, end_s: one per live row
  errors   files skipped as unreadable (path, size, mtime_ns, reason)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FORMAT = 2  # 1: manifest.json and one embeddings-N.npy, rewritten whole on every commit

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL);
CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, rows INTEGER NOT NULL,
                     max_norm REAL NOT NULL, live BLOB NOT NULL);
CREATE TABLE entries (chunk INTEGER NOT NULL, row INTEGER NOT NULL, file INTEGER NOT NULL,
                      start_s REAL NOT NULL, end_s REAL NOT NULL, PRIMARY KEY (chunk, row)) WITHOUT ROWID;
CREATE INDEX entries_file ON entries (file);
CREATE TABLE errors (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, reason TEXT NOT NULL);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit). ``mode=rw``: a missing file is
    an error rather than a new empty database, and a reader may still roll back the journal an
    interrupted commit left (a read-only connection could not)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)


def create(path: Path, meta: dict[str, Any]) -> None:
    """A new, empty manifest at ``path`` (which must not exist yet)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(f"BEGIN; {SCHEMA} COMMIT;")
        with transaction(db):
            set_meta(db, meta)
    finally:
        db.close()


@contextmanager
def transaction(db: sqlite3.Connection, write: bool = True) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock at once) or a deferred read transaction, which sees one
    committed state across several queries; committed on success, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def get_meta(db: sqlite3.Connection) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}


def set_meta(db: sqlite3.Connection, values: dict[str, Any]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
    )
