"""Tests for vtr.metrics against independent references (brute force, numpy, torchmetrics)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torchmetrics.retrieval import RetrievalHitRate, RetrievalRecall

from vtr.metrics import dual_softmax, retrieval_metrics


def _random_relevant(gen: torch.Generator, q: int, n: int, p: float) -> torch.Tensor:
    """Random relevance with at least one correct item per query."""
    rel = torch.rand(q, n, generator=gen) < p
    rel[torch.arange(q), torch.randint(0, n, (q,), generator=gen)] = True
    return rel


def _brute_force(sim: list[list[float]], rel: list[list[bool]], ks: tuple[int, ...]) -> dict:
    """Exact tie-averaged metrics by enumerating every tie-breaking order of the items.

    Each permutation of the N items serves as a secondary sort key, so every order that is
    consistent with the scores appears equally often: the average over permutations is the
    expectation under uniformly random tie-breaking, computed with exact fractions.
    """
    n_items = len(sim[0])
    perms = list(itertools.permutations(range(n_items)))
    exp_ranks, within = [], {k: [] for k in ks}
    for scores, correct in zip(sim, rel):
        total, hits = Fraction(0), {k: 0 for k in ks}
        for key in perms:
            order = sorted(range(n_items), key=lambda j: (-scores[j], key[j]))
            rank = next(pos for pos, j in enumerate(order, 1) if correct[j])
            total += rank
            for k in ks:
                hits[k] += rank <= k
        exp_ranks.append(total / len(perms))
        for k in ks:
            within[k].append(Fraction(hits[k], len(perms)))
    out = {f"R{k}": float(100 * sum(within[k]) / len(sim)) for k in ks}
    out["MedR"] = float(np.median([float(r) for r in exp_ranks]))
    out["MeanR"] = float(sum(exp_ranks) / len(exp_ranks))
    return out


def _argsort_reference(sim: np.ndarray, rel: np.ndarray, ks: tuple[int, ...]) -> dict:
    """Plain numpy ranking for tie-free scores: rank of the first correct item in the sort."""
    order = np.argsort(-sim, axis=1)
    ranks = np.array([np.flatnonzero(rel[q, order[q]])[0] + 1 for q in range(len(sim))])
    out = {f"R{k}": 100.0 * np.mean(ranks <= k) for k in ks}
    out["MedR"] = float(np.median(ranks))
    out["MeanR"] = float(np.mean(ranks))
    return out


def _assert_close(got: dict, want: dict, tol: float = 1e-9) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=tol), key


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_tie_averaging_matches_brute_force(seed: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(seed)
    q, n = 7, 6
    # Scores from {0, 1, 2} plant large tie groups, some around the correct items.
    sim = torch.randint(0, 3, (q, n), generator=gen).double()
    rel = _random_relevant(gen, q, n, p=0.25)
    ks = (1, 2, 3, 5)
    want = _brute_force(sim.tolist(), rel.tolist(), ks)
    _assert_close(retrieval_metrics(sim.to(dtype), rel, ks=ks), want)


def test_hand_computed_tie() -> None:
    # One correct item tied with two others at the top: rank 1, 2 or 3, each w.p. 1/3.
    sim = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    rel = torch.tensor([[False, True, False, False]])
    got = retrieval_metrics(sim, rel, ks=(1, 2, 3))
    _assert_close(got, {"R1": 100 / 3, "R2": 200 / 3, "R3": 100.0, "MedR": 2.0, "MeanR": 2.0})
    # Two correct among three tied: the first correct one is at 1 w.p. 2/3, else at 2.
    rel = torch.tensor([[True, True, False, False]])
    got = retrieval_metrics(sim, rel, ks=(1, 2))
    _assert_close(got, {"R1": 200 / 3, "R2": 100.0, "MedR": 4 / 3, "MeanR": 4 / 3})
    assert retrieval_metrics(sim, rel, "optimistic", ks=(1,))["R1"] == 100.0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tie_break", ["average", "optimistic", "mean"])
def test_real_valued_matches_argsort_reference(seed: int, tie_break: str) -> None:
    gen = torch.Generator().manual_seed(seed)
    sim = torch.randn(60, 40, generator=gen)
    rel = _random_relevant(gen, 60, 40, p=0.05)  # several correct items for many queries
    assert (rel.sum(1) > 1).any()
    ks = (1, 5, 10)
    want = _argsort_reference(sim.numpy(), rel.numpy(), ks)
    _assert_close(retrieval_metrics(sim, rel, tie_break, ks=ks), want)


@pytest.mark.parametrize("one_correct", [True, False])
def test_recall_matches_torchmetrics(one_correct: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    q, n = 50, 30
    sim = torch.randn(q, n, generator=gen)
    rel = _random_relevant(gen, q, n, p=0.0 if one_correct else 0.1)
    assert (rel.sum(1) == 1).all() == one_correct
    indexes = torch.arange(q).repeat_interleave(n)
    got = retrieval_metrics(sim, rel, ks=(1, 5, 10))
    for k in (1, 5, 10):
        # Hit rate counts a query as found if any correct item is in the top k: our R@K.
        hit = RetrievalHitRate(top_k=k)(sim.flatten(), rel.flatten(), indexes=indexes)
        assert got[f"R{k}"] == pytest.approx(100 * hit.item(), abs=1e-4)
        if one_correct:  # with a single correct item, recall@k is the same quantity
            recall = RetrievalRecall(top_k=k)(sim.flatten(), rel.flatten(), indexes=indexes)
            assert got[f"R{k}"] == pytest.approx(100 * recall.item(), abs=1e-4)


def test_constant_matrix_scores_chance_when_averaging_and_perfect_when_optimistic() -> None:
    n = 20
    sim, rel = torch.zeros(n, n), torch.eye(n, dtype=torch.bool)
    chance = retrieval_metrics(sim, rel)
    _assert_close(chance, {"R1": 100 / n, "R5": 500 / n, "R10": 1000 / n, "MedR": (n + 1) / 2, "MeanR": (n + 1) / 2})
    perfect = retrieval_metrics(sim, rel, tie_break="optimistic")
    _assert_close(perfect, {"R1": 100.0, "R5": 100.0, "R10": 100.0, "MedR": 1.0, "MeanR": 1.0})


def test_identity_is_perfect() -> None:
    got = retrieval_metrics(torch.eye(8), torch.eye(8, dtype=torch.bool))
    _assert_close(got, {"R1": 100.0, "R5": 100.0, "R10": 100.0, "MedR": 1.0, "MeanR": 1.0})


def test_reversed_ordering_gives_known_ranks() -> None:
    # Every query scores item j as j, and query q's correct item is q: rank is 5 - q.
    sim = torch.arange(5.0).repeat(5, 1)
    got = retrieval_metrics(sim, torch.eye(5, dtype=torch.bool), ks=(1, 2))
    _assert_close(got, {"R1": 20.0, "R2": 40.0, "MedR": 3.0, "MeanR": 3.0})


def test_even_query_count_median_averages_middle_ranks() -> None:
    # Items ranked 0, 1, ..., 9; correct items 0, 1, 2, 9 give ranks 1, 2, 3, 10.
    sim = -torch.arange(10.0).repeat(4, 1)
    rel = torch.zeros(4, 10, dtype=torch.bool)
    rel[torch.arange(4), torch.tensor([0, 1, 2, 9])] = True
    got = retrieval_metrics(sim, rel)
    _assert_close(got, {"R1": 25.0, "R5": 75.0, "R10": 100.0, "MedR": 2.5, "MeanR": 4.0})


def test_query_without_correct_item_is_named() -> None:
    rel = torch.eye(4, dtype=torch.bool)
    rel[1, 1] = rel[3, 3] = False
    with pytest.raises(ValueError, match=r"indices \[1, 3\]"):
        retrieval_metrics(torch.randn(4, 4), rel)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same shape"):
        retrieval_metrics(torch.randn(4, 5), torch.ones(5, 4, dtype=torch.bool))


def test_bad_tie_break_raises() -> None:
    with pytest.raises(ValueError, match="tie_break"):
        retrieval_metrics(torch.randn(3, 3), torch.eye(3, dtype=torch.bool), tie_break="random")


def test_nan_raises() -> None:
    sim = torch.randn(3, 3)
    sim[2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(sim, torch.eye(3, dtype=torch.bool))


@pytest.mark.parametrize("tie_break", ["average", "optimistic", "mean"])
def test_chunking_and_layout_do_not_change_results(tie_break: str) -> None:
    gen = torch.Generator().manual_seed(1)
    sim = torch.randint(0, 4, (23, 17), generator=gen).float()
    rel = _random_relevant(gen, 23, 17, p=0.1)
    whole = retrieval_metrics(sim, rel, tie_break)
    for chunk_size in (1, 4, 7, 23, 100):
        _assert_close(retrieval_metrics(sim, rel, tie_break, chunk_size=chunk_size), whole, 1e-12)
    # Non-contiguous input (the transpose, as used for video-to-text) is scored correctly.
    simt, relt = sim.T.contiguous().T, rel.T.contiguous().T
    assert not simt.is_contiguous()
    _assert_close(retrieval_metrics(simt, relt, tie_break, chunk_size=5), whole, 1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(2)
    sim = torch.randint(0, 5, (300, 200), generator=gen).float()
    rel = _random_relevant(gen, 300, 200, p=0.01)
    _assert_close(retrieval_metrics(sim.cuda(), rel.cuda()), retrieval_metrics(sim, rel))


def test_dual_softmax_hand_checked() -> None:
    sim = torch.tensor([[0.9, 0.2], [0.3, 0.8]], dtype=torch.float64)
    # Softmax over queries (dim 0) at temperature 10: column 0 over (9, 3), column 1 over (2, 8).
    want = torch.tensor(
        [[0.9 / (1 + math.exp(-6)), 0.2 / (1 + math.exp(6))], [0.3 / (1 + math.exp(6)), 0.8 / (1 + math.exp(-6))]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(dual_softmax(sim, temperature=10.0), want)
    assert dual_softmax(torch.randn(3, 5)).shape == (3, 5)
