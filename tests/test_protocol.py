"""The released evaluation protocol, switch by switch, against hand-computed cases and float64 /
literal re-implementations of the release's rules written here, and end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.media import frame_number, write_clip
from helpers.runs import tiny_overrides
from helpers.text import word_tokenizer

from data_modules.datamodule import RetrievalDataModule
from data_modules.dataset import Collator, VideoRecord, VideoTextDataset
from data_modules.video import IMAGENET_MEAN, IMAGENET_STD, build_transform, read_video, sample_frame_indices
from vtr.callbacks.retrieval_eval import score_embeddings
from vtr.config import ConfigError, load_config
from vtr.metrics import retrieval_metrics

ROOT = Path(__file__).resolve().parents[1]
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

# --- frame indices ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "k", "want"),
    [
        # linspace(0, 10, 5) = 0, 2.5, 5, 7.5, 10 -> 0, 2, 5, 7, 10; segments [0,1] [2,4] [5,6] [7,9];
        # (start + end) // 2 = 0, 3, 5, 8; the frame before: -1 (-> 0), 2, 4, 7
        (10, 4, [0, 2, 4, 7]),
        # 3 < 4 frames: 3 segments [0,0] [1,1] [2,2]; middles 0, 1, 2; the frame before: 0, 0, 1
        (3, 4, [0, 0, 1]),
        (1, 4, [0]),  # one segment [0, 0]: middle 0, then -1 -> 0
        # edges 0, 25, 50, 75, 100; middles 12, 37, 62, 87; the frame before
        (100, 4, [11, 36, 61, 86]),
    ],
)
def test_released_frame_indices(total: int, k: int, want: list[int]) -> None:
    assert sample_frame_indices(total, k, "released_uniform") == want


def test_released_sampling_reads_the_frame_before_and_pads_short_clips(tmp_path) -> None:
    long_clip, short_clip = write_clip(tmp_path / "long.mp4", 10), write_clip(tmp_path / "short.mp4", 3)
    frames = read_video(long_clip, 4, "released_uniform")
    assert [frame_number(f.numpy()) for f in frames] == [0, 2, 4, 7]
    data = VideoTextDataset(
        [VideoRecord("s", short_clip, ["x"])],
        4,
        build_transform(32, False, released=True),
        False,
        sample_mode="released_uniform",
    )
    video = data[0]["video"]
    # frames 0, 0, 1 then one all-zero frame (zero after normalisation), as the release pads clips
    assert video.shape == (4, 3, 32, 32)
    assert video[3].abs().max() == 0 and (video[:3].abs().amax(dim=(1, 2, 3)) > 0.1).all()
    torch.testing.assert_close(video[0], video[1])


# --- transform --------------------------------------------------------------------------------


def _bilinear(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resizing with half-pixel centres (align_corners=False)
    and no antialiasing: output i samples the input at (i + 0.5) * n_in / n_out - 0.5, >= 0."""
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        weights[i, lo] += 1 - (src - lo)
        weights[i, hi] += src - lo
    return weights


def _released_reference(frames: np.ndarray, res: int) -> np.ndarray:
    """float in [0, 1]; Resize(256) (short side, long side int(256 * long / short)); CenterCrop(256);
    Resize(res); ImageNet normalisation; all in float64."""
    x = frames.astype(np.float64) / 255
    h, w = x.shape[-2:]
    new_h, new_w = (256, int(256 * w / h)) if h <= w else (int(256 * h / w), 256)
    x = np.einsum("yh,tchw,xw->tcyx", _bilinear(h, new_h), x, _bilinear(w, new_w))
    top, left = int(round((new_h - 256) / 2)), int(round((new_w - 256) / 2))
    x = x[..., top : top + 256, left : left + 256]
    x = np.einsum("yh,tchw,xw->tcyx", _bilinear(256, res), x, _bilinear(256, res))
    mean, std = np.array(IMAGENET_MEAN).reshape(1, 3, 1, 1), np.array(IMAGENET_STD).reshape(1, 3, 1, 1)
    return (x - mean) / std


def test_released_transform_matches_float64_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 3, 40, 60), generator=gen, dtype=torch.uint8)
    want = _released_reference(frames.numpy(), 32)
    got = build_transform(32, train=False, released=True)(frames)
    assert got.dtype == torch.float32 and got.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-5, rtol=0)
    # ours (antialiased resizing of uint8) is a different image: the switch matters on noise
    ours = build_transform(32, train=False)(frames).numpy()
    assert np.abs(ours - want).max() > 0.5


def test_released_transform_is_test_only() -> None:
    with pytest.raises(ValueError, match="test-time"):
        build_transform(32, train=True, released=True)


# --- tie rules --------------------------------------------------------------------------------


def _released_t2v(sims: np.ndarray, owner: list[int]) -> np.ndarray:
    """0-based ranks as the released t2v metric computes them: the first sorted position equal to
    the distance of the caption's video (the release finds it by block position; here by owner)."""
    dists = -sims
    sorted_dists = np.sort(dists, axis=1)
    gt = dists[np.arange(len(owner)), owner][:, None]
    rows, cols = np.where(sorted_dists - gt == 0)
    _, first = np.unique(rows, return_index=True)
    return cols[first].astype(np.float64)


def _released_v2t(sims: np.ndarray, captions_of: list[list[int]]) -> np.ndarray:
    """0-based ranks as the released v2t metric computes them: for each relevant caption the mean
    of the sorted positions equal to its distance, the smallest over the video's captions."""
    dists = -sims.T
    ranks = []
    for video, row in enumerate(dists):
        sorted_row = np.sort(row)
        ranks.append(min(np.where(sorted_row - row[c] == 0)[0].mean() for c in captions_of[video]))
    return np.array(ranks)


def _cols2metrics(cols: np.ndarray) -> dict[str, float]:
    """The release's thresholds on 0-based ranks: R@1 == 0, R@K < K; MedR / MeanR + 1."""
    return {
        "R1": 100 * float(np.sum(cols == 0)) / len(cols),
        "R5": 100 * float(np.sum(cols < 5)) / len(cols),
        "R10": 100 * float(np.sum(cols < 10)) / len(cols),
        "MedR": float(np.median(cols) + 1),
        "MeanR": float(np.mean(cols) + 1),
    }


def test_mean_tie_rule_hand_computed() -> None:
    # correct item tied with 2 others at the top: positions 1, 2, 3, mean 2 -> not R@1, within R@2
    got = retrieval_metrics(
        torch.tensor([[1.0, 1.0, 1.0, 0.0]]), torch.tensor([[False, True, False, False]]), "mean", ks=(1, 2)
    )
    assert got == {"R1": 0.0, "R2": 100.0, "MedR": 2.0, "MeanR": 2.0}
    # 4 items above, the correct one tied with one other: rank 5.5, which the release counts within
    # R@5 (0-based 4.5 < 5); averaging gives P(rank <= 5) = 1/2
    sim = torch.tensor([[3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 0.0]])
    rel = torch.zeros(1, 7, dtype=torch.bool)
    rel[0, 4] = True
    assert retrieval_metrics(sim, rel, "mean", ks=(5,)) == {"R5": 100.0, "MedR": 5.5, "MeanR": 5.5}
    assert retrieval_metrics(sim, rel, "average", ks=(5,))["R5"] == pytest.approx(50.0)
    # two relevant captions among 3 tied: the release's mean ignores that 2 are correct (rank 2),
    # averaging does not (expected rank 1 + 1/3)
    sim, rel = torch.ones(1, 3), torch.tensor([[True, True, False]])
    assert retrieval_metrics(sim, rel, "mean", ks=(1,))["MeanR"] == 2.0
    assert retrieval_metrics(sim, rel, "average", ks=(1,))["MeanR"] == pytest.approx(4 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_released_tie_rules_match_the_release(seed: int) -> None:
    """Scores in {0, 1, 2} (many ties); 6 videos with 1-3 captions each; t2v optimistic, v2t mean."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 4, (6,), generator=gen).tolist()
    owner = [v for v, n in enumerate(counts) for _ in range(n)]
    sims = torch.randint(0, 3, (len(owner), 6), generator=gen).double()
    video_ids, caption_ids = [f"v{i}" for i in range(6)], [f"c{i}" for i in range(len(owner))]
    pairs = {(f"c{c}", f"v{v}") for c, v in enumerate(owner)}
    # embeddings whose dot products are exactly `sims`: captions are rows of sims, videos one-hot
    scores = score_embeddings(
        torch.eye(6, dtype=torch.float64), video_ids, sims, caption_ids, pairs, ("optimistic", "mean")
    )
    t2v_want = _cols2metrics(_released_t2v(sims.numpy(), owner))
    v2t_want = _cols2metrics(
        _released_v2t(sims.numpy(), [[c for c, v in enumerate(owner) if v == i] for i in range(6)])
    )
    for got, want in ((scores["t2v"], t2v_want), (scores["v2t"], v2t_want)):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-9), key


# --- unreadable videos, captions --------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return word_tokenizer(tmp_path_factory.mktemp("tok"), ["a", "red", "circle"], model_max_length=512)


def test_unreadable_video_becomes_a_black_clip_and_is_counted(tmp_path, tokenizer) -> None:
    records = [
        VideoRecord("ok", write_clip(tmp_path / "ok.mp4", 12), ["a red circle"]),
        VideoRecord("bad", tmp_path / "missing.mp4", ["a circle"]),
    ]
    transform = build_transform(32, False, released=True)
    released = VideoTextDataset(records, 4, transform, False, sample_mode="released_uniform", blank_unreadable=True)
    item = released[1]
    assert item["blank"] and item["video"].shape == (4, 3, 32, 32)
    # the release's lax loading: one black frame through the transform (black after un-normalising),
    # then the clip's zero padding for the other frames
    assert (item["video"][:1] * STD + MEAN).abs().max() < 1e-6
    assert item["video"][1:].abs().max() == 0
    batch = Collator(tokenizer, None)([released[0], item])
    assert batch["num_skipped"] == 0 and batch["video_id"] == ["ok", "bad"] and batch["blank_video_id"] == ["bad"]
    # ours drops it and counts it as skipped
    ours = VideoTextDataset(records, 4, build_transform(32, False), False)
    assert ours[1] is None and Collator(tokenizer, 32)([ours[0], ours[1]])["num_skipped"] == 1


def test_released_captions_are_cut_at_the_model_maximum_only(tokenizer) -> None:
    items = [{"video": torch.zeros(1, 3, 4, 4), "video_id": "v", "captions": ["a red circle " * 20, "a " * 600]}]
    capped = Collator(tokenizer, 32)(items)["text"]["attention_mask"].sum(1).tolist()
    uncapped = Collator(tokenizer, None)(items)["text"]["attention_mask"].sum(1).tolist()
    assert capped == [32, 32]
    assert uncapped == [62, 512]  # [CLS] + 60 words + [SEP]; the 602 tokens cut at the model's 512


def test_datamodule_applies_the_switches_to_test_sets_only(tiny_demo_root, tokenizer) -> None:
    cfg = load_config(overrides=[f"data.root={tiny_demo_root}", "eval_protocol=released", "data.val=[msrvtt]"])
    dm = RetrievalDataModule(cfg.data, tokenizer, protocol=cfg.eval)
    dm.setup("validate")
    dm.setup("test")
    val, test = dm.describe("val", "msrvtt"), dm.describe("test", "msrvtt")
    assert (val["frame_sampling"], val["transform"], val["unreadable"], val["caption_max_tokens"]) == (
        "ours",
        "ours",
        "skip",
        cfg.data.max_text_length,
    )
    assert (test["frame_sampling"], test["transform"], test["unreadable"], test["caption_max_tokens"]) == (
        "released",
        "released",
        "black",
        "model max",
    )
    assert sorted(val["split_files"]) == ["MSRVTT_data.json", "MSRVTT_val.csv"]
    assert test["split_files"] == ["MSRVTT_JSFUSION_test.csv"]
    assert dm.test_sets["msrvtt"].sample_mode == "released_uniform" and dm.val_sets["msrvtt"].sample_mode == "uniform"


# --- config -----------------------------------------------------------------------------------


def test_preset_fills_switches_and_explicit_keys_win() -> None:
    ours = load_config(overrides=["task=finetune", "tie_break=optimistic"])
    assert (ours.eval.frame_sampling, ours.eval.transform, ours.eval.unreadable) == ("ours", "ours", "skip")
    assert (ours.eval.t2v_tie_break, ours.eval.v2t_tie_break, ours.eval.caption_truncation) == (
        "optimistic",
        "optimistic",
        "cap",
    )
    released = load_config(
        overrides=["task=evaluate", "eval_protocol=released", "eval.transform=ours", "trainer.precision=bf16-mixed"]
    )
    assert released.eval.transform == "ours" and released.eval.frame_sampling == "released"
    assert (released.eval.t2v_tie_break, released.eval.v2t_tie_break) == ("optimistic", "mean")
    assert released.trainer.precision == "32-true"  # evaluate runs at the protocol's precision
    with pytest.raises(ConfigError, match="'eval_protocol'"):
        load_config(overrides=["eval_protocol=paper"])
    with pytest.raises(ConfigError, match="'eval.unreadable'"):
        load_config(overrides=["eval.unreadable=zeros"])


# --- end to end -------------------------------------------------------------------------------


def test_evaluate_with_released_protocol_records_it(tiny_demo_root, tmp_path) -> None:
    """MSR-VTT of the tiny demo corpus with its first test video broken: kept as a black clip."""
    root = tmp_path / "data"
    shutil.copytree(tiny_demo_root / "msrvtt", root / "msrvtt")
    (root / "tokenizer").symlink_to(tiny_demo_root / "tokenizer")
    first = (root / "msrvtt/MSRVTT_JSFUSION_test.csv").read_text().splitlines()[1].split(",")[2]
    broken = next((root / "msrvtt").rglob(f"{first}.mp4"))
    broken.write_bytes(b"not a video")
    args = tiny_overrides(root, tmp_path, steps=1) + [
        "experiment=released",
        "eval_protocol=released",
        "trainer.precision=bf16-mixed",  # overridden: the released protocol evaluates in fp32
        "data.val=[]",
        "data.test=[msrvtt]",
        "data.max_eval_samples=5",
        "probes.enabled=false",  # this partial copy of the corpus has no DONE to label patches from
    ]
    cmd = [sys.executable, "-m", "vtr", "evaluate", "-c", "experiments/pretrain/demo.yaml", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "released/version_0/metrics.json").read_text())["test"]["msrvtt"]
    assert result["num_videos"] == result["num_captions"] == 5 and result["skipped"] == 0
    assert result["protocol"] == {
        "eval_protocol": "released",
        "split": "msrvtt/test",
        "split_files": ["MSRVTT_JSFUSION_test.csv"],
        "frames": 2,
        "frame_sampling": "released",
        "transform": "released",
        "caption_max_tokens": "model max",
        "unreadable": "black",
        "captions_per_video": 1.0,
        "directions": ["t2v", "v2t"],
        "v2t_rank": "best relevant caption",
        "tie_break": {"t2v": "optimistic", "v2t": "mean"},
        "dual_softmax": False,
        "precision": "32-true",
        "blank_videos": 1,
    }
    assert "test/msrvtt: eval_protocol=released; split msrvtt/test (MSRVTT_JSFUSION_test.csv)" in done.stdout
