"""The index store on its own (no model): fake embeddings of fake files, checked against the test's
own record of what the index must hold."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.index import index_rows

from vtr.cli import main
from vtr.search import store as store_module
from vtr.search.files import FileStat
from vtr.search.query import SearchIndex, exact_topk, faiss_index, ranked
from vtr.search.store import IndexMismatch, IndexStore

ROOT = Path(__file__).resolve().parents[1]
DIM = 8
IDENTITY = {"weights_sha256": "0" * 64, "window": 2.0, "stride": 2.0, "num_frames": 4, "img_size": 64}
Key = tuple[str, float, float]


class Folder:
    """Fake files (a stat each) and the float16 embeddings of their windows."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.stats: dict[str, FileStat] = {}
        self.embeddings: dict[str, dict[Key, np.ndarray]] = {}

    def put(self, path: str, windows: int = 1) -> None:
        """Add ``path`` with new content (a new stat and new embeddings)."""
        old = self.stats.get(path, FileStat(0, 0))
        self.stats[path] = FileStat(100 + windows, old.mtime_ns + 1)
        vectors = self.rng.standard_normal((windows, DIM))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        spans = [(2.0 * w, 2.0 * w + 2) for w in range(windows)]
        self.embeddings[path] = {(path, s, e): v.astype(np.float16) for (s, e), v in zip(spans, vectors)}

    def remove(self, path: str) -> None:
        del self.stats[path], self.embeddings[path]

    def rows(self) -> dict[Key, np.ndarray]:
        return {key: emb for per_file in self.embeddings.values() for key, emb in per_file.items()}


def index(folder: Folder, out: Path, paths: list[str], pieces: int = 2) -> dict[str, int]:
    """One ``vtr index`` run as the store sees it: open, pending chunks for ``paths``, commit."""
    store = IndexStore(out)
    store.open(IDENTITY, DIM, False, "ckpt", "root")
    rows, embs = [], []
    for path in paths:
        stat = folder.stats[path]
        for (p, start, end), emb in folder.embeddings[path].items():
            windows = len(folder.embeddings[path])
            rows.append({"path": p, "size": stat.size, "mtime_ns": stat.mtime_ns, "start": start, "end": end,
                         "windows": windows})  # fmt: skip
            embs.append(emb)
    for part in np.array_split(np.arange(len(rows)), pieces):
        store.pending.write(0, np.array([embs[i] for i in part]).reshape(-1, DIM), [rows[i] for i in part], [])
    return store.commit(folder.stats)


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """mtime_ns and a hash of every chunk file."""
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.iterdir()}


def pages(path: Path, size: int = 4096) -> list[bytes]:
    data = path.read_bytes()
    return [data[i : i + size] for i in range(0, len(data), size)]


def assert_same_rows(actual: dict[Key, np.ndarray], expected: dict[Key, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])


def test_an_incremental_run_writes_one_new_chunk_and_only_the_rows_it_changed(tmp_path):
    folder = Folder()
    for i in range(20_000):
        folder.put(f"v{i:05d}.mp4", windows=1 + i % 3)
    index(folder, tmp_path / "index", list(folder.stats))
    before_chunks, before_pages = snapshot(tmp_path / "index/chunks"), pages(tmp_path / "index/index.sqlite")
    folder.remove("v00003.mp4")
    folder.put("v00005.mp4", windows=4)  # changed: embedded again, with more windows
    folder.put("new/a.mp4", windows=2)
    counts = index(folder, tmp_path / "index", ["v00005.mp4", "new/a.mp4"])
    assert (counts["embedded"], counts["added"], counts["dropped"]) == (6, 2, 1)  # the changed file: replaced
    after = snapshot(tmp_path / "index/chunks")
    assert {n: after[n] for n in before_chunks} == before_chunks  # old chunks: same bytes, never rewritten
    (new,) = after.keys() - before_chunks.keys()
    assert np.load(tmp_path / "index/chunks" / new).shape == (6, DIM)  # the new rows and nothing else
    changed = sum(a != b for a, b in zip(pages(tmp_path / "index/index.sqlite"), before_pages))
    assert changed < len(before_pages) // 20  # a few pages of the manifest, not the manifest
    assert_same_rows(index_rows(tmp_path / "index"), folder.rows())
    index(folder, tmp_path / "scratch", sorted(folder.stats), pieces=1)
    assert_same_rows(index_rows(tmp_path / "index"), index_rows(tmp_path / "scratch"))


def brute_force(rows: dict[Key, np.ndarray], queries: np.ndarray, k: int) -> list[list[tuple[Key, float]]]:
    keys = list(rows)
    matrix = np.stack([rows[key] for key in keys]).astype(np.float64)
    scores = matrix @ queries.astype(np.float64).T
    return [[(keys[i], scores[i, q]) for i in np.argsort(-scores[:, q])[:k]] for q in range(len(queries))]


def search(out: Path, queries: np.ndarray, k: int, faiss: bool = False) -> list[list[tuple[Key, float]]]:
    """The hits ``SearchIndex.search`` gives for query embeddings (the text tower left out)."""
    generation, segments = IndexStore(out).segments()
    if faiss:
        index, keys = faiss_index(segments)
        scores, ids = index.search(queries, min(k, len(keys)))
        keys = keys[ids]
    else:
        scores, keys = ranked(segments, queries, k)
    entries = IndexStore(out).lookup([tuple(key) for key in keys.reshape(-1, 2)], generation)
    per_query = keys.shape[1]
    return [
        [((e.path, e.start, e.end), float(s)) for e, s in zip(entries[q * per_query : (q + 1) * per_query], qs)]
        for q, qs in enumerate(scores)
    ]


def assert_same_hits(actual, expected) -> None:
    assert [[key for key, _ in hits] for hits in actual] == [[key for key, _ in hits] for hits in expected]
    np.testing.assert_allclose([[s for _, s in h] for h in actual], [[s for _, s in h] for h in expected], rtol=1e-5)


@pytest.mark.parametrize("faiss", [False, True])
def test_search_gives_the_float64_top_k_of_the_live_rows(tmp_path, faiss):
    if faiss:
        pytest.importorskip("faiss")
    folder = Folder(1)
    for run in range(4):  # four chunks, then removals and changes that leave tombstones in them
        for i in range(300):
            folder.put(f"r{run}/{i}.mp4", windows=1 + i % 2)
        index(folder, tmp_path / "index", [p for p in folder.stats if p.startswith(f"r{run}/")])
    for i in range(0, 300, 7):
        folder.remove(f"r1/{i}.mp4")
        folder.put(f"r2/{i}.mp4")
    index(folder, tmp_path / "index", [f"r2/{i}.mp4" for i in range(0, 300, 7)])
    assert len(IndexStore(tmp_path / "index").segments()[1]) == 5
    for count in (1, 3, 5):  # up to HALF_QUERIES queries are scored in float16 first, more in float32
        queries = folder.rng.standard_normal((count, DIM)).astype(np.float32)
        for k in (1, 10, 100):
            assert_same_hits(search(tmp_path / "index", queries, k, faiss), brute_force(folder.rows(), queries, k))
    everything = search(tmp_path / "index", queries[:2], 10_000, faiss)
    assert all(len(hits) == len(folder.rows()) for hits in everything)  # k past the size: every live row once


def test_rows_that_float16_scores_rank_in_the_wrong_order_are_ranked_exactly():
    """Rows built so that rounding the query to float16 inverts them: the 5 best rows score lowest
    in float16. Exact search must still return them."""
    rng = np.random.default_rng(6)
    query = rng.standard_normal(256)
    query = (query / np.linalg.norm(query)).astype(np.float32)
    lost = query.astype(np.float64) - query.astype(np.float16)  # what rounding the query to float16 loses
    away = lost - (lost @ query) * query
    away /= np.linalg.norm(away)

    def rows(score: float, sign: int, count: int) -> np.ndarray:
        noise = 1e-3 * rng.standard_normal((count, 256))
        noise -= np.outer(noise @ query, query) + np.outer(noise @ away, away)
        a = score * query + sign * np.sqrt(1 - score**2) * away + noise
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float16)

    matrix = np.concatenate([rows(0.01, -1, 50), rows(0.0101, 1, 5)])
    exact = matrix.astype(np.float64) @ query.astype(np.float64)
    rough = (matrix @ query.astype(np.float16)).astype(np.float64)
    assert exact[50:].min() > exact[:50].max() and rough[50:].max() < rough[:50].min()  # inverted
    scores, picked = exact_topk(matrix, query[None], k=5)
    assert sorted(picked[0]) == [50, 51, 52, 53, 54]
    np.testing.assert_allclose(scores[0], exact[picked[0]], rtol=1e-5)


def test_a_removed_file_is_never_found_again(tmp_path):
    folder = Folder(2)
    for i in range(50):
        folder.put(f"{i}.mp4", windows=2)
    index(folder, tmp_path / "index", list(folder.stats))
    gone = folder.embeddings["7.mp4"]
    folder.remove("7.mp4")
    counts = index(folder, tmp_path / "index", [])
    assert (counts["dropped"], counts["entries"]) == (1, 98)
    assert "7.mp4" not in IndexStore(tmp_path / "index").files()
    assert_same_rows(index_rows(tmp_path / "index"), folder.rows())
    queries = np.stack(list(gone.values())).astype(np.float32)  # without the tombstone, each would find itself
    for hits in search(tmp_path / "index", queries, 5):
        assert all(path != "7.mp4" for (path, _, _), _ in hits)
    assert_same_hits(search(tmp_path / "index", queries, 5), brute_force(folder.rows(), queries, 5))


def test_tombstones_and_small_chunks_are_folded_away(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_CHUNKS", 4)
    folder = Folder(3)
    for i in range(40):
        folder.put(f"a/{i}.mp4")
    index(folder, tmp_path / "index", list(folder.stats))
    (first,) = snapshot(tmp_path / "index/chunks")
    for i in range(25):  # the first chunk falls below half live: its 15 live rows move into the next chunk
        folder.remove(f"a/{i}.mp4")
    folder.put("b.mp4")
    index(folder, tmp_path / "index", ["b.mp4"])
    (second,) = snapshot(tmp_path / "index/chunks")
    assert second != first and np.load(tmp_path / "index/chunks" / second).shape == (16, DIM)
    assert_same_rows(index_rows(tmp_path / "index"), folder.rows())
    for run in range(10):  # one small chunk a run: never more than MAX_CHUNKS of them
        folder.put(f"c/{run}.mp4")
        index(folder, tmp_path / "index", [f"c/{run}.mp4"])
        assert len(list((tmp_path / "index/chunks").iterdir())) <= 4
        assert_same_rows(index_rows(tmp_path / "index"), folder.rows())


def old_format_index(out: Path) -> None:
    """An index as the JSON store wrote it (format 1): manifest.json and embeddings-1.npy."""
    out.mkdir()
    np.save(out / "embeddings-1.npy", np.ones((1, DIM), np.float16) / np.sqrt(DIM))
    manifest = {"format": 1, "identity": IDENTITY, "checkpoint": "ckpt", "root": "root", "text_model": None,
                "dim": DIM, "generation": 1, "embeddings": "embeddings-1.npy", "files": {"a.mp4": [1, 1]},
                "entries": [{"path": "a.mp4", "start": 0.0, "end": 0.0}], "errors": []}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_an_index_of_the_json_format_is_refused_with_the_command_that_rebuilds_it(tmp_path, capsys):
    old_format_index(tmp_path / "old")
    rebuild = f"python -m vtr index VIDEO_DIR --ckpt CKPT --out {tmp_path / 'old'} --rebuild"
    with pytest.raises(IndexMismatch, match="older version") as err:
        SearchIndex(tmp_path / "old")  # before any checkpoint is loaded
    assert rebuild in str(err.value)
    assert main(["search", str(tmp_path / "old"), "a query"]) == 2
    assert rebuild in capsys.readouterr().err
    with pytest.raises(IndexMismatch, match="older version"):  # indexing again without --rebuild
        IndexStore(tmp_path / "old").open(IDENTITY, DIM, False, "ckpt", "root")
    IndexStore(tmp_path / "old").open(IDENTITY, DIM, True, "ckpt", "root")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["chunks", "index.sqlite", "pending"]
    assert IndexStore(tmp_path / "old").count() == 0


CRASH = """
import os, sys
sys.path[:0] = [{src!r}, {root!r}, {tests!r}]
from vtr.search import manifest, store
from test_search_store import Folder, index

def crash(db, *args):  # the rows are inserted, the transaction is not committed: then the process dies
    insert(db, *args)
    os._exit(9)

def small_cache(path):  # so that the uncommitted rows reach the database file, as in a large commit
    db = connect(path)
    db.execute("PRAGMA cache_size = 2")
    return db

insert, store.IndexStore._insert_rows = store.IndexStore._insert_rows, staticmethod(crash)
connect, manifest.connect = manifest.connect, small_cache
folder = Folder(4)
for i in range({files}):
    folder.put(f"{{i}}.mp4")
index(folder, {out!r}, [f"{{i}}.mp4" for i in range(0, {files}, 2)])  # the even files (the odd ones are indexed)
"""


def test_a_commit_killed_midway_leaves_the_previous_index(tmp_path):
    files = 3000
    folder = Folder(4)  # the same files the crashing process writes
    for i in range(files):
        folder.put(f"{i}.mp4")
    for i in range(0, files, 2):
        folder.remove(f"{i}.mp4")
    index(folder, tmp_path / "index", list(folder.stats))
    before, chunks = index_rows(tmp_path / "index"), snapshot(tmp_path / "index/chunks")
    db_before = (tmp_path / "index/index.sqlite").read_bytes()
    script = CRASH.format(src=str(ROOT / "src"), root=str(ROOT), tests=str(ROOT / "tests"), files=files,
                          out=str(tmp_path / "index"))  # fmt: skip
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9
    # killed inside the transaction: the database file holds uncommitted pages, the journal the old ones
    assert (tmp_path / "index/index.sqlite").read_bytes() != db_before
    assert (tmp_path / "index/index.sqlite-journal").stat().st_size > 0
    assert len(list((tmp_path / "index/chunks").iterdir())) == len(chunks) + 1  # its chunk file, never recorded
    assert_same_rows(index_rows(tmp_path / "index"), before)  # reading rolls the journal back
    assert (tmp_path / "index/index.sqlite").read_bytes() == db_before
    folder = Folder(4)
    for i in range(files):
        folder.put(f"{i}.mp4")
    counts = index(folder, tmp_path / "index", [f"{i}.mp4" for i in range(0, files, 2)])  # the next run
    assert (counts["added"], counts["entries"]) == (files // 2, files)
    after = snapshot(tmp_path / "index/chunks")
    assert len(after) == len(chunks) + 1 and after.keys() >= chunks.keys()  # the orphan deleted, a new chunk
    assert_same_rows(index_rows(tmp_path / "index"), folder.rows())
