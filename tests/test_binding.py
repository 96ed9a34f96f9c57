"""The demo corpus's binding split: groups of four videos that one detail of one shape tells
apart, captioned with that detail, read through the MSR-VTT reader."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from data_modules.config import DataConfig
from data_modules.demo import COLOURS, DemoSizes
from data_modules.readers import READERS

SHAPE_WORDS = ("circle", "square", "triangle", "star", "diamond", "cross")
# Caption grammar of the split, written out here: "on a {bg} background, " then per shape
# "a {size} {colour} {shape} {what it does}", comma-separated.
PHRASE = re.compile(rf"^a (\w+) ({'|'.join(COLOURS)}) ({'|'.join(SHAPE_WORDS)}) (.+)$")
STILL = re.compile(r"\b(still|static|not move)\b")


def parse(caption: str) -> tuple[str, list[tuple[str, str, str]]]:
    """(background, [(colour, shape, verb phrase)]) of a caption."""
    match = re.fullmatch(r"on a (black|gray|white) background, (.+)", caption)
    assert match, caption
    phrases = [PHRASE.match(p) for p in match.group(2).split(", ")]
    assert all(phrases), caption
    return match.group(1), [(p.group(2), p.group(3), p.group(4)) for p in phrases]


def first_and_last_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    return frames[0], frames[-1]


def changed_box(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Corners (x, y) of the box around the pixels where two frames clearly differ (beyond codec noise)."""
    ys, xs = np.nonzero(np.abs(a - b).max(-1) > 40)
    return (np.array([xs.min(), ys.min()]), np.array([xs.max(), ys.max()])) if len(xs) else None


@pytest.fixture(scope="module")
def groups(tiny_demo_root: Path) -> list[tuple[str, list[str], list[Path]]]:
    """(detail, captions, videos) of each group, from the split's files."""
    root = tiny_demo_root / "binding"
    data = json.loads((root / "MSRVTT_data.json").read_text())
    with (root / "MSRVTT_JSFUSION_test.csv").open(newline="", encoding="utf-8") as handle:
        caption_of = {row["video_id"]: row["sentence"] for row in csv.DictReader(handle)}
    by_group: dict[int, list[dict]] = {}
    for video in data["videos"]:
        by_group.setdefault(video["group"], []).append(video)
    return [
        (videos[0]["detail"], [caption_of[v["video_id"]] for v in videos],
         [root / f"videos/all/{v['video_id']}.mp4" for v in videos])
        for _, videos in sorted(by_group.items())
    ]  # fmt: skip


def test_the_split_has_groups_of_four_of_every_detail(groups: list) -> None:
    assert len(groups) == DemoSizes.tiny().binding_groups == 3
    assert sorted(detail for detail, _, _ in groups) == ["colour", "mover", "shape"]
    assert all(len(captions) == len(set(captions)) == len(videos) == 4 for _, captions, videos in groups)


def test_captions_of_a_group_differ_only_in_the_detail(groups: list) -> None:
    detail_words = {"colour": set(COLOURS), "shape": set(SHAPE_WORDS)}
    for detail, captions, _ in groups:
        parsed = [parse(c) for c in captions]
        backgrounds = {bg for bg, _ in parsed}
        assert len(backgrounds) == 1, captions
        shapes = [phrases for _, phrases in parsed]
        if detail == "mover":  # one shape moves; the four captions name four different ones
            movers = [[i for i, (_, _, verb) in enumerate(p) if not STILL.search(verb)] for p in shapes]
            assert all(len(m) == 1 for m in movers) and len({m[0] for m in movers}) == 4, captions
            assert all([(c, s) for c, s, _ in p] == [(c, s) for c, s, _ in shapes[0]] for p in shapes), captions
            assert len({p[m[0]][2] for p, m in zip(shapes, movers)}) == 1, captions  # the same motion words
            continue
        words = [c.split() for c in captions]  # one word differs: a word of the detail, four ways
        assert len({len(w) for w in words}) == 1, captions
        changed = [i for i in range(len(words[0])) if len({w[i] for w in words}) > 1]
        assert len(changed) == 1, captions
        values = {w[changed[0]] for w in words}
        assert len(values) == 4 and values <= detail_words[detail], captions


def test_pixels_of_a_group_differ_only_where_the_detail_is(groups: list) -> None:
    for detail, captions, videos in groups:
        frames = [first_and_last_frames(path) for path in videos]
        height, width = frames[0][0].shape[:2]
        one_shape = 0.35 * min(width, height) + 4  # a small shape at its largest, plus codec blur
        # What changes during a clip is one shape: the one that moves.
        moved = [changed_box(first, last) for first, last in frames]
        assert all(box is not None and (box[1] - box[0] <= one_shape).all() for box in moved), (captions, moved)
        centres = [(low + high) / 2 for low, high in moved]
        gaps = [np.abs(c - d).max() for i, c in enumerate(centres) for d in centres[i + 1 :]]
        if detail == "mover":
            assert min(gaps) > 5, (captions, centres)  # a different shape moves in each video
            continue
        assert max(gaps) <= 3, (captions, centres)  # the same shape moves in each
        # The videos' first frames differ in one small region, the same for every pair.
        boxes = [changed_box(frames[0][0], first) for first, _ in frames[1:]]
        assert all(box is not None and (box[1] - box[0] <= one_shape).all() for box in boxes), (captions, boxes)
        assert max(np.abs(box[0] - boxes[0][0]).max() for box in boxes) <= 3, boxes
        if detail == "colour":  # and there, each video shows the colour its caption names
            low, high = boxes[0]
            for (first, _), caption in zip(frames, captions):
                region = first[low[1] : high[1] + 1, low[0] : high[0] + 1].reshape(-1, 3)
                ring = np.concatenate([first[0], first[-1], first[:, 0], first[:, -1]])
                painted = region[np.abs(region - np.median(ring, axis=0)).max(-1) > 60]
                median = np.median(painted, axis=0)
                seen = min(COLOURS, key=lambda c: np.linalg.norm(median - np.array(COLOURS[c])))
                assert seen in [c for c, _, _ in parse(caption)[1]], (caption, seen)
                assert seen not in [w for other in captions if other != caption for w in other.split()]


def test_the_msrvtt_reader_reads_the_split(tiny_demo_root: Path, groups: list) -> None:
    captions = [c for _, group_captions, _ in groups for c in group_captions]
    videos = [v for _, _, group_videos in groups for v in group_videos]
    for mode in ("jsfusion", "all"):
        records = READERS["binding"](tiny_demo_root / "binding", "test", DataConfig(msrvtt_test_captions=mode))
        assert [r.captions for r in records] == [[c] for c in captions]
        assert [r.path for r in records] == videos and all(p.is_file() for p in videos)


def test_every_caption_word_is_a_whole_tokenizer_word(tiny_demo_root: Path, groups: list) -> None:
    vocab = json.loads((tiny_demo_root / "tokenizer/tokenizer.json").read_text())["model"]["vocab"]
    words = {w for _, captions, _ in groups for c in captions for w in re.findall(r"\w+", c)}
    assert words and words <= set(vocab), sorted(words - set(vocab))
