"""``python -m vtr search``: rank an index's clips for text queries.

Exact search is one matrix product of the queries with the memory-mapped float16 embeddings,
taken a chunk of rows at a time (top-k kept per chunk, then merged), so an index far larger than
memory is searched with bounded memory. ``faiss=True`` uses a FAISS inner-product index instead
(``pip install faiss-cpu``), built from the same matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from ..checkpoints import load_checkpoint
from ..config import DataConfig
from .store import IndexMismatch, IndexStore

CHUNK_ROWS = 262_144  # rows scored at a time: 256 MiB of float32 at 256 dimensions


@dataclass(frozen=True)
class Hit:
    path: str  # relative to the indexed folder
    start: float  # seconds; 0, 0 for an image
    end: float
    score: float  # cosine similarity of the query and the clip


def exact_topk(
    matrix: np.ndarray, queries: np.ndarray, k: int, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and row indices (both (Q, k'), k' = min(k, rows)) of the best rows for each query,
    best first. Torch does the float16 -> float32 conversion, the product and the top-k: its
    vectorised half-precision conversion is several times faster than numpy's."""
    k = min(k, matrix.shape[0])
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).T
    best_scores = torch.full((queries.shape[0], 0), -torch.inf)
    best_rows = torch.zeros((queries.shape[0], 0), dtype=torch.long)
    for lo in range(0, matrix.shape[0], chunk_rows):
        chunk = torch.from_numpy(np.array(matrix[lo : lo + chunk_rows])).float()  # a copy: memory maps are read-only
        scores, rows = (chunk @ q).T.topk(min(k, chunk.shape[0]), dim=1)
        best_scores, order = torch.cat([best_scores, scores], 1).topk(k, dim=1)
        best_rows = torch.cat([best_rows, rows + lo], 1).gather(1, order)
    return best_scores.numpy(), best_rows.numpy()


def faiss_index(matrix: np.ndarray):
    """A FAISS flat inner-product index of the matrix (exact, like ``exact_topk``; the place to
    swap in an approximate one for very large collections)."""
    try:
        import faiss
    except ImportError:
        raise ImportError("--faiss needs the faiss package: pip install faiss-cpu") from None
    index = faiss.IndexFlatIP(matrix.shape[1])
    for lo in range(0, matrix.shape[0], CHUNK_ROWS):
        index.add(np.ascontiguousarray(matrix[lo : lo + CHUNK_ROWS], dtype=np.float32))
    return index


class SearchIndex:
    """An index and the text tower of the checkpoint that built it (the path the index records,
    unless ``ckpt`` names where that checkpoint is now; its weights must be the same)."""

    def __init__(self, folder: str | Path, ckpt: str | Path | None = None) -> None:
        store = IndexStore(Path(folder))
        self.manifest = store.manifest()
        self.embeddings = store.embeddings(self.manifest)
        path = ckpt or self.manifest["checkpoint"]
        loaded = load_checkpoint(path, self.manifest.get("text_model"))
        expected = self.manifest["identity"]["weights_sha256"]
        if loaded.weights_hash != expected:
            raise IndexMismatch(
                f"checkpoint {path} has weights {loaded.weights_hash[:12]}..., the index in {folder} was built with "
                f"{expected[:12]}...; index again, or name the original checkpoint with --ckpt"
            )
        self.model = loaded.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(loaded.tokenizer)
        self.max_length = DataConfig.max_text_length
        self._faiss = None

    @torch.no_grad()
    def embed_queries(self, queries: list[str]) -> np.ndarray:
        tokens = self.tokenizer(
            queries, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return self.model.embed_text(dict(tokens))[0].float().numpy()

    def search(self, queries: list[str], k: int = 10, faiss: bool = False) -> list[list[Hit]]:
        """The ``k`` best clips for each query, best first."""
        if not queries:
            return []
        if not len(self.embeddings):
            return [[] for _ in queries]
        queries_emb = self.embed_queries(queries)
        if faiss:
            if self._faiss is None:  # built once, kept for the next queries
                self._faiss = faiss_index(self.embeddings)
            scores, rows = self._faiss.search(queries_emb, min(k, len(self.embeddings)))
        else:
            scores, rows = exact_topk(self.embeddings, queries_emb, k)
        entries = self.manifest["entries"]
        return [
            [Hit(entries[r]["path"], entries[r]["start"], entries[r]["end"], float(s)) for s, r in zip(qs, qr)]
            for qs, qr in zip(scores, rows)
        ]
