"""Retrieval metrics (R@K, median and mean rank) from a query-by-item similarity matrix.

Why tie-averaging is the default
--------------------------------
The reference implementations rank a query's correct item as ``1 + #items scoring strictly
higher``, i.e. every tie is broken in the query's favour. That is harmless for real-valued
embeddings, where exact ties do not occur, but it rewards collapse: a model whose embeddings
have all become identical (or a half-precision matrix that saturates) produces a constant
similarity matrix, and optimistic tie-breaking scores it as perfect (R@1 = 100, MedR = 1).
The default here, ``tie_break="average"``, reports the expected value under a uniformly
random order of the tied items (McSherry & Najork, ECIR 2008), so a constant matrix scores
exactly like chance. Without ties all modes give identical numbers, so the default does not
change comparisons with published results. The released evaluation breaks ties differently in
each direction, and both of its rules are here to reproduce its numbers: text-to-video ranks
optimistically (``tie_break="optimistic"``), video-to-text takes the mean of the tied positions
(``tie_break="mean"``), whose fractional ranks it then thresholds for R@K.

Test-time re-normalisation (:func:`dual_softmax`) lifts retrieval numbers by using the whole
test set's statistics at once; report its numbers beside the raw ones, never instead of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

TIE_BREAKS = ("average", "optimistic", "mean")
# Elements of `sim` processed per chunk: two float32 working buffers of 8 MB, small enough to
# stay in a server CPU's L3 cache across the passes (much larger chunks spill to memory on each
# pass) and to bound memory whatever the matrix size.
_CHUNK_ELEMENTS = 1 << 21


def retrieval_metrics(
    sim: torch.Tensor,
    relevant: torch.Tensor,
    tie_break: str = "average",
    ks: Sequence[int] = (1, 5, 10),
    *,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Score a (queries x items) similarity matrix against a boolean relevance matrix.

    A query's rank is the 1-based rank of its best-ranked correct item. Returns ``R{k}`` for
    each ``k`` in ``ks`` (percent of queries with rank <= k), ``MedR`` (median rank, the two
    middle ranks averaged for an even number of queries, as ``numpy.median``) and ``MeanR``.

    Ties (``tie_break="average"``): for a query let ``s*`` be the best score among its correct
    items, ``g`` the number of items scoring above ``s*``, ``n`` the number scoring exactly
    ``s*`` and ``c`` the correct ones among those. Under a uniformly random order of the ``n``
    tied items the rank has expectation ``g + (n + 1) / (c + 1)`` and ``P(rank <= K) =
    1 - C(n - c, m) / C(n, m)`` with ``m = clamp(K - g, 0, n)``; R@K averages these
    probabilities and MedR/MeanR use the expected ranks. ``"optimistic"`` ranks ``g + 1``.
    ``"mean"`` ranks ``g + (n + 1) / 2``, the mean of the tied positions whatever ``c``, and
    counts a hit for R@1 only at rank 1 and for R@K (K > 1) at rank < K + 1, as the released
    evaluation does (it compares 0-based ranks: ``== 0`` for R@1, ``< K`` otherwise): a rank of
    5.5 is within R@5 there.

    Runs on ``sim``'s device (CPU or CUDA). float16/bfloat16 scores are compared after an
    exact widening to float32, so ties and order are those of the input dtype; counts and
    averages are accumulated in float64. ``chunk_size`` (queries per chunk) bounds memory:
    by default about 2M matrix elements (two 8 MB float32 buffers) at a time.
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    if sim.ndim != 2 or relevant.shape != sim.shape:
        raise ValueError(
            f"sim must be 2-D and relevant the same shape; got sim {tuple(sim.shape)}, relevant {tuple(relevant.shape)}"
        )
    if sim.shape[0] == 0:
        raise ValueError("sim has no queries")
    if not sim.is_floating_point():
        raise ValueError(f"sim must be a floating-point tensor, got {sim.dtype}")
    ks = tuple(ks)
    if any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    relevant = relevant.to(device=sim.device, dtype=torch.bool)
    # amax over a uint8 view: a plain `any` over a boolean matrix is ~100x slower on CPU.
    missing = (relevant.view(torch.uint8).amax(dim=1) == 0).nonzero().flatten().tolist()
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
        raise ValueError(f"{len(missing)} queries have no correct item: indices [{shown}]")

    num_queries, num_items = sim.shape
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(1, num_items))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    # Half-precision scores are widened to float32, which is exact and so changes no
    # comparison (ties stay ties); it lets every pass below run on reused float buffers,
    # several times faster on CPU than boolean masks and mixed-dtype reductions. Counts are
    # summed as 0/1 floats: exact in float32 up to 2**24 items, hence float64 beyond.
    wide = sim.dtype == torch.float64 or num_items > 2**24
    work_dtype = torch.float64 if wide else torch.float32
    rows = min(chunk_size, num_queries)
    work = torch.empty(rows, num_items, dtype=work_dtype, device=sim.device)
    flags = torch.empty_like(work)
    neg_inf = torch.tensor(float("-inf"), dtype=work_dtype, device=sim.device)
    zero = torch.zeros((), dtype=work_dtype, device=sim.device)

    ranks = torch.empty(num_queries, dtype=torch.float64, device=sim.device)
    hits = torch.zeros(len(ks), dtype=torch.float64, device=sim.device)
    for start in range(0, num_queries, chunk_size):
        r = relevant[start : start + chunk_size]
        s = work[: r.shape[0]].copy_(sim[start : start + chunk_size])
        f = flags[: r.shape[0]]
        # NaN compares false with everything and would silently rank its query first; the
        # full-tensor check runs only when the (cheap) sum says a NaN may be present.
        if torch.isnan(s.sum()) and torch.isnan(s).any():
            raise ValueError("sim contains NaN")
        best = torch.where(r, s, neg_inf, out=f).amax(dim=1, keepdim=True)
        above = torch.gt(s, best, out=f).sum(dim=1).double()
        if tie_break == "optimistic":
            rank = above + 1
            for j, k in enumerate(ks):
                hits[j] += (rank <= k).sum(dtype=torch.float64)
        elif tie_break == "mean":
            rank = above + (torch.eq(s, best, out=f).sum(dim=1).double() + 1) / 2
            for j, k in enumerate(ks):
                hits[j] += (rank == 1 if k == 1 else rank < k + 1).sum(dtype=torch.float64)
        else:
            n = torch.eq(s, best, out=f).sum(dim=1).double()
            c = torch.where(r, f, zero, out=f).sum(dim=1).double()
            rank = above + (n + 1) / (c + 1)
            for j, k in enumerate(ks):
                hits[j] += _prob_within(above, n, c, k).sum()
        ranks[start : start + chunk_size] = rank

    sorted_ranks = ranks.sort().values
    median = (sorted_ranks[(num_queries - 1) // 2] + sorted_ranks[num_queries // 2]) / 2
    out = {f"R{k}": float(h) * 100.0 / num_queries for k, h in zip(ks, hits.tolist())}
    out["MedR"] = float(median)
    out["MeanR"] = float(ranks.mean())
    return out


def _prob_within(above: torch.Tensor, n: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """P(rank <= k) when ``c`` of ``n`` tied items are correct and ``above`` items outrank them.

    The first ``m = clamp(k - above, 0, n)`` tied slots fall within the top k; the query misses
    iff all of them hold wrong items, with probability C(n-c, m) / C(n, m) = prod_{i<m}
    (n-c-i)/(n-i). The product form stays exact (and hits zero) when n - c < m, where
    log-gamma forms would lose precision on large tie groups.
    """
    m = (k - above).clamp(min=0).minimum(n)
    miss = torch.ones_like(n)
    for i in range(int(m.max())):
        term = (n - c - i).clamp(min=0) / (n - i).clamp(min=1)
        miss = torch.where(i < m, miss * term, miss)
    return 1 - miss


def dual_softmax(sim: torch.Tensor, temperature: float = 100.0) -> torch.Tensor:
    """Dual-softmax re-normalisation (CAMoE / DSL): ``sim * softmax(sim * temperature, dim=0)``.

    Rows are queries, columns items (text-by-video for text-to-video retrieval; pass ``sim.T``
    for video-to-text). Each score is re-weighted by how strongly its item prefers this query
    over the other queries, which uses the whole test set at once: a test-time prior that
    inflates R@K. Report its numbers beside, never instead of, the raw ones.
    """
    return sim * torch.softmax(sim * temperature, dim=0)
