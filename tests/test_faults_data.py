"""Data faults: broken media files, missing videos and annotation files, and a pre-training run on
a corpus with broken files in every split it reads (skipped and counted, never a crash)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from helpers.corpus import copy_corpus, truncate, webvid_videos
from helpers.media import write_faststart_clip
from helpers.runs import DEMO_RECIPE, scalars, tiny_overrides

from data_modules.config import DataConfig
from data_modules.dataset import Collator
from data_modules.readers import READERS
from data_modules.readers.files import DatasetFileNotFoundError
from data_modules.video import MediaError, read_image, read_video, read_video_full_decode
from vtr.build import run
from vtr.config import load_config

# --- the media readers ------------------------------------------------------------------------


def test_each_kind_of_broken_file_is_a_media_error(tiny_demo_root, tmp_path):
    root = copy_corpus(tiny_demo_root, tmp_path)
    videos = webvid_videos(root, "train")
    videos[0].unlink()
    videos[1].write_bytes(b"")
    truncate(videos[2])
    images = [r.path for r in READERS["cc3m"](root / "cc3m", "train", DataConfig())]
    truncate(images[0])
    images[1].write_text("not a jpeg")
    images[2].write_bytes(b"")
    for path, reason in ((videos[0], "file not found"), (videos[1], "empty file"), (videos[2], None)):
        for reader in (read_video, read_video_full_decode):
            for mode in ("uniform", "rand"):
                with pytest.raises(MediaError, match=reason):
                    reader(path, 4, mode)
    for path in images[:3]:
        with pytest.raises(MediaError):
            read_image(path)
    assert read_video(videos[3], 4, "uniform").shape[0] == 4 and read_image(images[3]).shape[0] == 1


def test_a_truncated_mp4_whose_index_comes_first_is_unreadable_whatever_frames_are_sampled(tmp_path):
    """Such a file opens, and the frames before the cut decode: without the index check, some
    samples would read and some not (and the frame at the cut would be half decoded)."""
    path = write_faststart_clip(tmp_path / "faststart.mp4")
    whole = path.read_bytes()
    assert read_video(path, 4, "uniform").shape[0] == 4
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: int(len(whole) * 0.98)])  # only the last few frames are gone
    for seed in range(8):
        with pytest.raises(MediaError, match="truncated"):
            read_video(cut, 4, "rand", random.Random(seed))
    with pytest.raises(MediaError, match="truncated"):
        read_video(cut, 4, "uniform")


# --- readers: missing videos and annotation files ---------------------------------------------


def test_a_few_missing_benchmark_videos_are_kept_to_be_skipped_and_many_are_an_error(tiny_demo_root, tmp_path, caplog):
    root = copy_corpus(tiny_demo_root, tmp_path)
    test = READERS["msrvtt"](root / "msrvtt", "test", DataConfig())
    test[0].path.unlink()
    too_many = rf"1 of 6 MSR-VTT .*{test[0].video_id}\.mp4.*max_missing_videos=0.1"
    with pytest.raises(DatasetFileNotFoundError, match=too_many):
        READERS["msrvtt"](root / "msrvtt", "test", DataConfig())
    records = READERS["msrvtt"](root / "msrvtt", "test", DataConfig(max_missing_videos=0.2))
    assert [r.video_id for r in records] == [r.video_id for r in test]  # none dropped silently
    assert records[0].path == test[0].path and not records[0].path.exists()
    assert "1 of 6 MSR-VTT videos not found" in caplog.text and "skipped" in caplog.text
    # WebVid (web-scraped, some videos always gone) lists every row; the loader skips the missing
    videos = webvid_videos(root, "val")
    videos[0].unlink()
    assert webvid_videos(root, "val") == videos


def test_a_missing_test_annotation_file_is_an_error_before_training(tiny_demo_root, tmp_path):
    root = copy_corpus(tiny_demo_root, tmp_path)
    (root / "msrvtt/MSRVTT_JSFUSION_test.csv").unlink()
    cfg = load_config(DEMO_RECIPE, tiny_overrides(root, tmp_path / "out"))
    with pytest.raises(DatasetFileNotFoundError, match=str(root / "msrvtt/MSRVTT_JSFUSION_test.csv")):
        run(cfg)
    assert not (tmp_path / "out").exists()  # before any work: no run folder, no checkpoint


# --- end to end: a corrupted corpus -----------------------------------------------------------


def _corrupt(root: Path) -> dict[str, set[str]]:
    """Breaks some WebVid and MSR-VTT videos (truncated, empty, deleted) and CC3M images; returns
    the broken ids of each split that pre-training reads."""
    broken: dict[str, set[str]] = {}

    def spoil(split: str, records, *actions) -> None:
        for record, action in zip(records, actions):
            action(record.path)
            broken.setdefault(split, set()).add(record.video_id)

    empty, delete = (lambda p: p.write_bytes(b"")), Path.unlink
    cfg = DataConfig()
    spoil("train_webvid", READERS["webvid"](root / "webvid", "train", cfg), truncate, empty, delete)
    spoil("train_cc3m", READERS["cc3m"](root / "cc3m", "train", cfg), truncate, lambda p: p.write_text("<html>"))
    spoil("val_webvid", READERS["webvid"](root / "webvid", "val", cfg)[-2:], truncate, delete)  # also WebVid's test
    spoil("val_msrvtt", READERS["msrvtt"](root / "msrvtt", "val", cfg)[1:2], empty)
    spoil("test_msrvtt", READERS["msrvtt"](root / "msrvtt", "test", cfg)[2:4], delete, truncate)
    return broken


def test_pretraining_on_a_corrupted_corpus_completes_and_counts_the_skipped_samples(
    tiny_demo_root, tmp_path, monkeypatch, capsys
):
    root = copy_corpus(tiny_demo_root, tmp_path)
    broken = _corrupt(root)
    every_broken = set().union(*broken.values())
    batches: list[dict] = []
    collate = Collator.__call__

    def recording(self, items):
        batch = collate(self, items)
        kept = [item for item in items if item is not None]
        # no placeholder: a clip in the batch for every readable item, for no other
        assert batch["video"].shape[0] == len(kept) == len(batch["video_id"])
        assert not every_broken & set(batch["video_id"])
        assert batch["num_skipped"] == len(items) - len(kept) and kept, "no batch of this test is all broken"
        batches.append({"train": "caption" in kept[0], "ids": batch["video_id"], "skipped": batch["num_skipped"]})
        return batch

    monkeypatch.setattr(Collator, "__call__", recording)
    steps = 3
    # msrvtt alone as the test set: the other demo test splits' videos reuse MSR-VTT's video ids
    overrides = tiny_overrides(root, tmp_path / "out", steps=steps) + [
        "data.max_missing_videos=0.34",
        "data.test=[msrvtt]",
    ]
    results = run(load_config(DEMO_RECIPE, overrides))

    train_cc3m = {r.video_id for r in READERS["cc3m"](root / "cc3m", "train", DataConfig())}
    seen = {"train_webvid": 0, "train_cc3m": 0}
    for batch in batches:
        if batch["train"]:
            seen["train_cc3m" if set(batch["ids"]) <= train_cc3m else "train_webvid"] += batch["skipped"]
    assert sum(b["train"] for b in batches) == 2 * steps  # one WebVid and one CC3M batch a step
    assert seen["train_webvid"] > 0 and seen["train_cc3m"] > 0  # 3 of 8 and 2 of 8 broken, 6 of 8 drawn

    logged = scalars(next((tmp_path / "out").glob("*/version_0")))
    assert logged["data/skipped_train_webvid"][-1] == seen["train_webvid"]
    assert logged["data/skipped_train_cc3m"][-1] == seen["train_cc3m"]
    # evaluation visits every item once: the counts are exact
    expected = {"val_webvid": 2, "val_msrvtt": 1, "test_msrvtt": 2}
    for split, count in expected.items():
        assert logged[f"data/skipped_{split}"] == [count], split
        stage, name = split.split("_")
        assert results[stage][name]["skipped"] == count
    assert results["test"]["msrvtt"]["num_videos"] == 6 - 2
    assert len(logged["train/loss"]) == steps  # no step lost: every batch had readable clips

    out = capsys.readouterr().out
    assert f"train_cc3m={seen['train_cc3m']}" in out and f"train_webvid={seen['train_webvid']}" in out
    cells = [[c.strip() for c in re.split(r"[│|]", line)] for line in out.splitlines()]
    skipped_column = {tuple(row[1:4]): row[-2] for row in cells if len(row) == 12}  # split, dataset, direction
    assert skipped_column[("test", "msrvtt", "t2v")] == "2" and skipped_column[("val", "webvid", "t2v")] == "2"
    assert skipped_column[("val", "msrvtt", "v2t")] == "1"
