"""Scoring embeddings: several captions a video, class prompts shared by many videos, and the
de-duplication of samples that a DistributedSampler repeats to even out the last shard."""

import torch
import torch.nn.functional as F

from vtr.callbacks.retrieval_eval import _unique, score_embeddings


def test_video_to_text_rank_is_the_best_caption_rank():
    video = torch.eye(3)
    # v0's captions: c0 (sim .9 to v0), c1 (sim .1); v1: c2; v2: c3.
    text = torch.tensor([[0.9, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.2]])
    pairs = {("c0", "v0"), ("c1", "v0"), ("c2", "v1"), ("c3", "v2")}
    scores = score_embeddings(video, ["v0", "v1", "v2"], text, ["c0", "c1", "c2", "c3"], pairs)
    # t2v ranks: c0 -> 1, c1 -> 1 (.1 > 0, 0), c2 -> 1, c3 -> 2 (v0 .5 above v2 .2)
    assert scores["t2v"]["R1"] == 75.0 and scores["t2v"]["MeanR"] == 1.25
    # v2t: v0 best caption c0 ranks 1; v1: c2 ranks 1; v2: its only caption c3 (.2) ranks 1.
    assert scores["v2t"]["R1"] == 100.0


def test_class_prompts_relevant_to_many_videos_give_accuracy_as_v2t():
    torch.manual_seed(0)
    prompts = F.normalize(torch.randn(3, 8), dim=-1)
    labels = [0, 0, 1, 1, 2, 2]
    video = prompts[labels] + 0.01 * torch.randn(6, 8)
    video[5] = prompts[0]  # one misclassified video
    pairs = {(f"class{c}", f"v{i}") for i, c in enumerate(labels)}
    scores = score_embeddings(video, [f"v{i}" for i in range(6)], prompts, ["class0", "class1", "class2"], pairs)
    top1 = (video @ prompts.T).argmax(1).tolist()
    expected = 100 * sum(p == c for p, c in zip(top1, labels)) / 6
    assert abs(scores["v2t"]["R1"] - expected) < 1e-9 and abs(expected - 500 / 6) < 1e-9


def test_padded_duplicates_are_dropped_by_id():
    ids = ["a", "b", "c", "a"]  # rank 1 repeated 'a' to fill its shard
    rows = torch.arange(4.0).view(4, 1)
    kept_ids, kept = _unique(ids, rows)
    assert kept_ids == ["a", "b", "c"] and kept.flatten().tolist() == [0.0, 1.0, 2.0]


def test_dual_softmax_is_reported_only_on_request():
    video, text = torch.eye(2), torch.eye(2)
    pairs = {("c0", "v0"), ("c1", "v1")}
    assert "t2v_dsl" not in score_embeddings(video, ["v0", "v1"], text, ["c0", "c1"], pairs)
    assert "t2v_dsl" in score_embeddings(video, ["v0", "v1"], text, ["c0", "c1"], pairs, with_dual_softmax=True)


def test_tie_break_is_set_per_direction():
    # A collapsed model: every caption scores every video alike. The released rules rank t2v
    # optimistically (perfect) and v2t at the mean of the 4 tied positions (2.5).
    video, text = torch.ones(4, 3), torch.ones(4, 3)
    ids = [f"v{i}" for i in range(4)], [f"c{i}" for i in range(4)]
    pairs = {(f"c{i}", f"v{i}") for i in range(4)}
    scores = score_embeddings(video, ids[0], text, ids[1], pairs, ("optimistic", "mean"))
    assert scores["t2v"] == {"R1": 100.0, "R5": 100.0, "R10": 100.0, "MedR": 1.0, "MeanR": 1.0}
    assert scores["v2t"] == {"R1": 0.0, "R5": 100.0, "R10": 100.0, "MedR": 2.5, "MeanR": 2.5}
    assert score_embeddings(video, ids[0], text, ids[1], pairs, "average")["t2v"]["R1"] == 25.0
