"""Reading a search index back whole, for tests: every live row's (path, start, end) and embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtr.search.store import IndexStore


def index_rows(folder: Path) -> dict[tuple[str, float, float], np.ndarray]:
    store = IndexStore(folder)
    generation, segments = store.segments()
    keys = [(seg.chunk, int(r)) for seg in segments for r in np.flatnonzero(seg.live)]
    rows = [np.asarray(seg.matrix[r]) for seg in segments for r in np.flatnonzero(seg.live)]
    entries = store.lookup(keys, generation)
    assert len(entries) == store.count()  # every live row has its entry, and no entry lacks a row
    return {(e.path, e.start, e.end): row for e, row in zip(entries, rows)}
