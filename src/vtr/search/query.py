"""``python -m vtr search``: rank an index's clips for text queries.

Exact search is one matrix product of the queries with each memory-mapped float16 chunk of the
index, taken a slice of rows at a time (top-k kept per slice, tombstoned rows never, then merged),
so an index far larger than memory is searched with bounded memory and nothing but the chunks'
masks and the hits' own rows is read from the manifest. ``faiss=True`` uses a FAISS inner-product
index instead (``pip install faiss-cpu``), built from the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from ..checkpoints import load_checkpoint
from ..config import DataConfig
from .store import IndexMismatch, IndexStore, Segment

CHUNK_ROWS = 262_144  # rows scored at a time: 256 MiB of float32 at 256 dimensions


@dataclass(frozen=True)
class Hit:
    path: str  # relative to the indexed folder
    start: float  # seconds; 0, 0 for an image
    end: float
    score: float  # cosine similarity of the query and the clip


def exact_topk(
    matrix: np.ndarray, queries: np.ndarray, k: int, chunk_rows: int = CHUNK_ROWS, live: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and row indices (both (Q, k'), k' = min(k, rows)) of the best rows for each query,
    best first; with a boolean ``live`` mask only its rows count. Torch does the float16 -> float32
    conversion, the product and the top-k: its vectorised half-precision conversion is several
    times faster than numpy's."""
    k = min(k, matrix.shape[0] if live is None else int(live.sum()))
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).T
    best_scores = torch.full((queries.shape[0], 0), -torch.inf)
    best_rows = torch.zeros((queries.shape[0], 0), dtype=torch.long)
    for lo in range(0, matrix.shape[0], chunk_rows):
        chunk = torch.from_numpy(np.array(matrix[lo : lo + chunk_rows])).float()  # a copy: memory maps are read-only
        scores = chunk @ q
        if live is not None:
            scores[torch.from_numpy(~live[lo : lo + chunk_rows])] = -torch.inf
        scores, rows = scores.T.topk(min(k, chunk.shape[0]), dim=1)
        best_scores, order = torch.cat([best_scores, scores], 1).topk(k, dim=1)
        best_rows = torch.cat([best_rows, rows + lo], 1).gather(1, order)
    return best_scores.numpy(), best_rows.numpy()


def ranked(segments: list[Segment], queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``exact_topk`` over the live rows of every chunk: scores (Q, k') and (chunk, row) keys
    (Q, k', 2), k' = min(k, live rows), best first."""
    scores = [np.zeros((len(queries), 0), np.float32)]
    keys = [np.zeros((len(queries), 0, 2), np.int64)]
    for seg in segments:
        live = None if seg.live.all() else seg.live  # no mask to apply to a chunk without tombstones
        s, rows = exact_topk(seg.matrix, queries, k, live=live)
        scores.append(s)
        keys.append(np.stack([np.full_like(rows, seg.chunk), rows], axis=-1))
    all_scores, all_keys = np.concatenate(scores, 1), np.concatenate(keys, 1)
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_scores, order, 1), np.take_along_axis(all_keys, order[..., None], 1)


def faiss_index(segments: list[Segment]):
    """A FAISS flat inner-product index of the live rows (exact, like ``exact_topk``; the place to
    swap in an approximate one for very large collections) and the (chunk, row) key of each of its ids."""
    try:
        import faiss
    except ImportError:
        raise ImportError("--faiss needs the faiss package: pip install faiss-cpu") from None
    index = faiss.IndexFlatIP(segments[0].matrix.shape[1])
    keys = [np.zeros((0, 2), np.int64)]
    for seg in segments:
        rows = np.flatnonzero(seg.live)
        for lo in range(0, len(rows), CHUNK_ROWS):
            index.add(np.ascontiguousarray(seg.matrix[rows[lo : lo + CHUNK_ROWS]], dtype=np.float32))
        keys.append(np.stack([np.full_like(rows, seg.chunk), rows], axis=-1))
    return index, np.concatenate(keys)


class SearchIndex:
    """An index and the text tower of the checkpoint that built it (the path the index records,
    unless ``ckpt`` names where that checkpoint is now; its weights must be the same)."""

    def __init__(self, folder: str | Path, ckpt: str | Path | None = None) -> None:
        self.store = IndexStore(Path(folder))
        self.info = self.store.info()
        self._load()
        path = ckpt or self.info["checkpoint"]
        loaded = load_checkpoint(path, self.info.get("text_model"))
        expected = self.info["identity"]["weights_sha256"]
        if loaded.weights_hash != expected:
            raise IndexMismatch(
                f"checkpoint {path} has weights {loaded.weights_hash[:12]}..., the index in {folder} was built with "
                f"{expected[:12]}...; index again, or name the original checkpoint with --ckpt"
            )
        self.model = loaded.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(loaded.tokenizer)
        self.max_length = DataConfig.max_text_length

    def _load(self) -> None:
        """The chunks as the index holds them now; a FAISS index is built from them when first asked for."""
        self.generation, self.segments = self.store.segments()
        self.rows = sum(int(seg.live.sum()) for seg in self.segments)
        self._faiss = None

    @torch.no_grad()
    def embed_queries(self, queries: list[str]) -> np.ndarray:
        tokens = self.tokenizer(
            queries, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return self.model.embed_text(dict(tokens))[0].float().numpy()

    def _rank(self, queries_emb: np.ndarray, k: int, faiss: bool) -> tuple[np.ndarray, np.ndarray]:
        if not faiss:
            return ranked(self.segments, queries_emb, k)
        if self._faiss is None:  # built once, kept for the next queries
            self._faiss = faiss_index(self.segments)
        index, keys = self._faiss
        scores, ids = index.search(queries_emb, min(k, self.rows))
        return scores, keys[ids]

    def search(self, queries: list[str], k: int = 10, faiss: bool = False) -> list[list[Hit]]:
        """The ``k`` best clips for each query, best first."""
        if not queries:
            return []
        if not self.rows:
            return [[] for _ in queries]
        queries_emb = self.embed_queries(queries)
        while True:
            scores, keys = self._rank(queries_emb, k, faiss)
            entries = self.store.lookup([tuple(key) for key in keys.reshape(-1, 2)], self.generation)
            if entries is not None:
                break
            self._load()  # an index run committed since the chunks were read: rank on what it left
        per_query = keys.shape[1]
        return [
            [Hit(e.path, e.start, e.end, float(s)) for e, s in zip(entries[q * per_query : (q + 1) * per_query], qs)]
            for q, qs in enumerate(scores)
        ]
