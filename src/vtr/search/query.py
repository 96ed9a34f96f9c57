"""``python -m vtr search``: rank an index's clips for text queries.

Exact search is one matrix product of the queries with each memory-mapped float16 chunk of the
index, taken a slice of rows at a time (top-k kept per slice, tombstoned rows never, then merged),
so an index far larger than memory is searched with bounded memory and nothing but the chunks'
masks and the hits' own rows is read from the manifest. ``faiss=True`` uses a FAISS inner-product
index instead (``pip install faiss-cpu``), built from the same rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from ..checkpoints import load_checkpoint
from ..config import DataConfig
from .store import IndexMismatch, IndexStore, Segment

CHUNK_ROWS = 262_144  # rows scored at a time: 256 MiB of float32 at 256 dimensions
HALF_QUERIES = 4  # up to this many queries at once, rows are scored in float16 first (see exact_topk)


@dataclass(frozen=True)
class Hit:
    path: str  # relative to the indexed folder
    start: float  # seconds; 0, 0 for an image
    end: float
    score: float  # cosine similarity of the query and the clip


def _float32_topk(block: np.ndarray, q: torch.Tensor, k: int, dead: torch.Tensor | None) -> tuple:
    """Every row scored in float32 (torch's vectorised float16 -> float32 conversion is several
    times faster than numpy's)."""
    scores = torch.from_numpy(np.array(block)).float() @ q  # a copy: memory maps are read-only
    if dead is not None:
        scores[dead] = -torch.inf
    return scores.T.topk(min(k, len(block)), dim=1)


def _float16_topk(block: np.ndarray, q: torch.Tensor, k: int, dead: torch.Tensor | None, max_norm: float) -> tuple:
    """Every row scored in float16 (torch's float16 matrix-vector product reads the rows as they
    are stored and sums in float32, several times faster than converting them), then the rows that
    can be among the ``k`` best again in float32: a float16 score is off by at most ``margin``
    (the query rounded to float16 and the product rounded to float16, for rows of norm up to
    ``max_norm``), so no row more than twice that below the k-th float16 score can be."""
    unit = q / q.norm(dim=0, keepdim=True)  # scaling a query changes no ranking, and keeps float16 in range
    half = unit.half()
    with warnings.catch_warnings():  # torch only reads the read-only memory map
        warnings.simplefilter("ignore", UserWarning)
        rows = torch.from_numpy(block)
    rough = (rows @ half).float()
    if dead is not None:
        rough[dead] = -torch.inf
    error = (unit - half.float()).norm(dim=0) + half.float().norm(dim=0) * (2**-11 + block.shape[1] * 2**-24)
    margin = 2 * max_norm * error  # twice the bound
    kth = rough.topk(min(k, len(block)), dim=0).values[-1]
    near = rough >= kth - 2 * margin  # (rows, Q): the rows each query's best k can come from
    if dead is not None:
        near[dead] = False
    candidates = near.any(dim=1).nonzero()[:, 0]
    scores = torch.from_numpy(np.asarray(block[candidates.numpy()])).float() @ q
    scores[~near[candidates]] = -torch.inf
    best, picked = scores.T.topk(min(k, len(candidates)), dim=1)
    return best, candidates[picked]


def exact_topk(
    matrix: np.ndarray,
    queries: np.ndarray,
    k: int,
    chunk_rows: int = CHUNK_ROWS,
    live: np.ndarray | None = None,
    max_norm: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (float32) and row indices (both (Q, k'), k' = min(k, rows)) of the best rows for each
    query, best first; with a boolean ``live`` mask only its rows count. ``max_norm`` bounds the
    rows' norms (measured here when not given); up to ``HALF_QUERIES`` queries, rows are first
    scored in float16, which is exact in the ranking it returns and reads the rows once."""
    k = min(k, matrix.shape[0] if live is None else int(live.sum()))
    if k == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).T
    if len(queries) <= HALF_QUERIES and max_norm is None:
        max_norm = max((float(np.linalg.norm(np.asarray(matrix[lo : lo + chunk_rows], np.float32), axis=1).max())
                        for lo in range(0, matrix.shape[0], chunk_rows)), default=0.0)  # fmt: skip
    best_scores = torch.full((queries.shape[0], 0), -torch.inf)
    best_rows = torch.zeros((queries.shape[0], 0), dtype=torch.long)
    for lo in range(0, matrix.shape[0], chunk_rows):
        block = matrix[lo : lo + chunk_rows]
        dead = None if live is None else torch.from_numpy(~live[lo : lo + chunk_rows])
        if len(queries) <= HALF_QUERIES:
            scores, rows = _float16_topk(block, q, k, dead, max_norm)
        else:
            scores, rows = _float32_topk(block, q, k, dead)
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
        s, rows = exact_topk(seg.matrix, queries, k, live=live, max_norm=seg.max_norm)
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
