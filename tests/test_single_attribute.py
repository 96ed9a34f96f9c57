"""The demo corpus's single_attribute split (groups that differ in one captioned attribute) and its
msrvtt_1k test set, read from the files the generator wrote."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import torch

from data_modules.config import DataConfig
from data_modules.demo import COLOURS, DemoSizes
from data_modules.demo.truth import video_attributes
from data_modules.readers import READERS
from data_modules.video import read_video

KINDS = {"circle": "circle", "square": "square", "triangle": "triangle", "star": "star", "diamond": "diamond",
         "cross": "cross", "circles": "circle", "squares": "square", "triangles": "triangle", "stars": "star",
         "diamonds": "diamond", "crosses": "cross"}  # fmt: skip
COUNTS = {"a": "1", "one": "1", "two": "2", "three": "3"}
SIZES = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}
DIRECTIONS = ("left", "right", "up", "down", "upward", "downward", "leftward", "rises", "falls", "sinks", "rise",
              "fall", "sink", "rising", "falling", "sinking")  # fmt: skip
NOUN_PHRASE = re.compile(rf"\b(a|one|two|three) (\w+) ({'|'.join(COLOURS)}) (\w+)\b")


def _test_rows(root: Path) -> list[dict]:
    with (root / "MSRVTT_JSFUSION_test.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _said(caption: str) -> dict[str, str]:
    """What a caption says of the look, parsed here from its words."""
    count, size, colour, noun = NOUN_PHRASE.search(caption).groups()
    return {"count": COUNTS[count], "size": SIZES[size], "colour": colour, "kind": KINDS[noun]}


def test_groups_differ_in_their_attribute_alone(tiny_demo_root: Path) -> None:
    root = tiny_demo_root / "single_attribute"
    videos = json.loads((root / "MSRVTT_data.json").read_text())["videos"]
    caption_of = {row["video_id"]: row["sentence"] for row in _test_rows(root)}
    groups: dict[int, list[dict]] = {}
    for video in videos:
        groups.setdefault(video["group"], []).append(video)
    assert len(groups) == DemoSizes.tiny().single_attribute_groups == 6
    assert sorted(g[0]["attribute"] for g in groups.values()) == sorted(
        ("kind", "colour", "count", "size", "motion", "direction")
    )
    for members in groups.values():
        attribute = members[0]["attribute"]
        assert len(members) == {"count": 3, "size": 2}.get(attribute, 4)
        captions = [caption_of[v["video_id"]] for v in members]
        assert len(set(captions)) == len(captions), captions
        words = [c.split() for c in captions]
        if attribute in ("kind", "colour", "size", "direction", "motion"):  # one word slot or phrase differs
            said = [_said(c) for c in captions]
            for key in ("count", "size", "colour", "kind"):
                values = {s[key] for s in said}
                assert len(values) == (len(captions) if key == attribute else 1), (key, captions)
        if attribute in ("kind", "colour", "size"):
            assert len({len(w) for w in words}) == 1
            assert sum(len({w[i] for w in words}) > 1 for i in range(len(words[0]))) == 1, captions
        if attribute == "direction":
            assert all(any(d in c.split() for d in DIRECTIONS) for c in captions), captions
        attributes = video_attributes(0, "single_attribute", [v["video_id"] for v in members])
        differing = {k for k in attributes[members[0]["video_id"]] if len({a[k] for a in attributes.values()}) > 1}
        assert differing == {attribute}


def test_msrvtt_1k_begins_with_the_msrvtt_test_split(tiny_demo_root: Path) -> None:
    small, large = _test_rows(tiny_demo_root / "msrvtt"), _test_rows(tiny_demo_root / "msrvtt_1k")
    sizes = DemoSizes.tiny()
    assert len(large) == sizes.msrvtt_1k_test and len({r["video_id"] for r in large}) == len(large)
    assert [(r["video_id"], r["sentence"]) for r in large[: len(small)]] == [
        (r["video_id"], r["sentence"]) for r in small
    ]
    records = READERS["msrvtt_1k"](tiny_demo_root / "msrvtt_1k", "test", DataConfig())
    assert [r.video_id for r in records] == [r["video_id"] for r in large] and all(r.path.is_file() for r in records)
    same = tiny_demo_root / "msrvtt/videos/all" / f"{small[0]['video_id']}.mp4"
    assert torch.equal(read_video(records[0].path, 3, "uniform"), read_video(same, 3, "uniform"))
