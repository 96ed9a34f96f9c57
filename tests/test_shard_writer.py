"""``vtr shard``: per-file WebVid / CC3M train splits written as video2dataset / img2dataset shards.

The shards are read back here with the standard library's ``tarfile`` and checked against the
source CSVs and media files read independently of the writer."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tarfile
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.media import CORRUPTIONS, write_corrupt_videos
from PIL import Image

from data_modules.preprocess import Settings, transcode
from data_modules.shard_sources import shard_dataset
from data_modules.shard_writer import ERRORS_FILE, Row, ShardSpec, write_shards
from data_modules.video import read_video_full_decode
from vtr.cli import main

CORRUPT_VIDEO, MISSING_VIDEO, CORRUPT_IMAGE = 2, 5, 4  # rows of the tiny train splits
OLD = 1_000_000_000  # an mtime (2001) no file written by the test run can have


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def source(tiny_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo's WebVid and CC3M with one corrupt video, one missing video, one corrupt image."""
    root = tmp_path_factory.mktemp("per_file")
    for name in ("webvid", "cc3m"):
        shutil.copytree(tiny_demo_root / name, root / name)
    noise = np.random.default_rng(0).bytes(5000)
    (root / "webvid" / _video(root, CORRUPT_VIDEO)).write_bytes(noise)
    (root / "webvid" / _video(root, MISSING_VIDEO)).unlink()
    (root / "cc3m" / _rows(root / "cc3m/cc3m_train.csv")[CORRUPT_IMAGE]["path"]).write_bytes(noise)
    return root


def _video(root: Path, i: int) -> str:
    row = _rows(root / "webvid/metadata/results_2M_train.csv")[i]
    return f"videos/{row['page_dir']}/{row['videoid']}.mp4"


def _members(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _samples(members: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes}; a key is everything before the first dot."""
    samples: dict[str, dict[str, bytes]] = {}
    for name, data in members.items():
        key, ext = name.split(".", 1)
        samples.setdefault(key, {})[ext] = data
    return samples


def _frames(data: bytes | Path) -> list[np.ndarray]:
    with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def webvid(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("shards") / "webvid"
    assert main(["shard", str(source), str(dst), "--dataset", "webvid", "--workers", "2"]) == 0
    return dst


def test_webvid_shard_holds_every_row_as_video2dataset_writes_it(source: Path, webvid: Path) -> None:
    assert sorted(p.name for p in webvid.iterdir()) == ["00000.tar", "00000_stats.json", ERRORS_FILE]
    samples = _samples(_members(webvid / "00000.tar"))
    rows = _rows(source / "webvid/metadata/results_2M_train.csv")
    assert list(samples) == [f"0000000{i}" for i in range(8)]  # 1,000 a shard: 8 digits
    for i, (key, members) in enumerate(samples.items()):
        meta = json.loads(members["json"])
        assert members["txt"].decode() == rows[i]["name"] == meta["caption"]
        assert meta["key"] == key and meta["url"] == rows[i]["contentUrl"]
        assert {k: meta[k] for k in ("videoid", "page_dir", "duration", "page_idx")} == {
            "videoid": rows[i]["videoid"], "page_dir": rows[i]["page_dir"], "duration": rows[i]["duration"],
            "page_idx": None,
        }  # fmt: skip
        if i in (CORRUPT_VIDEO, MISSING_VIDEO):  # failed: caption and metadata only, as video2dataset keeps them
            assert sorted(members) == ["json", "txt"] and meta["error_message"]
            status = "failed_to_subsample" if i == CORRUPT_VIDEO else "failed_to_download"
            assert meta["status"] == status
            continue
        assert sorted(members) == ["json", "mp4", "txt"]
        assert meta["status"] == "success" and meta["error_message"] is None
        assert members["mp4"] == (source / "webvid" / _video(source, i)).read_bytes()


def test_webvid_stats_count_what_the_shard_holds(source: Path, webvid: Path) -> None:
    stats = json.loads((webvid / "00000_stats.json").read_text())
    good = [i for i in range(8) if i not in (CORRUPT_VIDEO, MISSING_VIDEO)]
    assert {k: stats[k] for k in ("count", "successes", "failed_to_download", "failed_to_subsample")} == {
        "count": 8, "successes": 6, "failed_to_download": 1, "failed_to_subsample": 1,
    }  # fmt: skip
    assert stats["bytes_downloaded"] == sum((source / "webvid" / _video(source, i)).stat().st_size for i in good)
    assert stats["status_dict"]["success"] == 6 and sum(stats["status_dict"].values()) == 8
    assert stats["start_time"] <= stats["end_time"] and stats["duration"] >= 0


def test_failed_inputs_are_listed(source: Path, webvid: Path) -> None:
    lines = [line.split("\t") for line in (webvid / ERRORS_FILE).read_text().splitlines()]
    assert [(key, Path(media)) for key, media, _ in lines] == [
        (f"00000/0000000{CORRUPT_VIDEO}", source / "webvid" / _video(source, CORRUPT_VIDEO)),
        (f"00000/0000000{MISSING_VIDEO}", source / "webvid" / _video(source, MISSING_VIDEO)),
    ]
    assert lines[1][2] == "file not found" and lines[0][2]


def test_cc3m_shards_leave_failures_out_as_img2dataset_does(source: Path, tmp_path: Path) -> None:
    assert main(["shard", str(source), str(tmp_path), "--dataset", "cc3m", "--shard-size", "3"]) == 0
    rows = _rows(source / "cc3m/cc3m_train.csv")
    keys = ["000000", "000001", "000002", "000010", "000011", "000012", "000020", "000021"]  # 10 keys a shard
    held = {}
    for shard in range(3):
        held |= _samples(_members(tmp_path / f"0000{shard}.tar"))
    assert list(held) == [k for i, k in enumerate(keys) if i != CORRUPT_IMAGE]
    for i, key in enumerate(keys):
        if i == CORRUPT_IMAGE:
            continue
        meta = json.loads(held[key]["json"])
        assert held[key]["txt"].decode() == rows[i]["caption"] and meta["key"] == key
        assert held[key]["jpg"] == (source / "cc3m" / rows[i]["path"]).read_bytes()
        with Image.open(source / "cc3m" / rows[i]["path"]) as image:
            assert (meta["width"], meta["height"]) == image.size and image.format == "JPEG"
    stats = json.loads((tmp_path / "00001_stats.json").read_text())
    assert (stats["count"], stats["successes"], stats["failed_to_download"], stats["failed_to_resize"]) == (3, 2, 0, 1)
    assert [json.loads((tmp_path / f"0000{s}_stats.json").read_text())["count"] for s in range(3)] == [3, 3, 2]


def test_cc3m_default_keys_have_nine_digits(source: Path, tmp_path: Path) -> None:
    shard_dataset(source, tmp_path, "cc3m", progress=False)  # img2dataset's 10,000 a shard
    assert sorted(_samples(_members(tmp_path / "00000.tar")))[:2] == ["000000000", "000000001"]


def test_reencoded_videos_decode_as_vtr_preprocess_writes_them(source: Path, tmp_path: Path) -> None:
    settings = Settings(short_side=80, fps=5, keyframe_every=4)
    shard_dataset(source, tmp_path / "shards", "webvid", 3, settings=settings, progress=False)
    samples = {}
    for shard in range(3):
        samples |= _samples(_members(tmp_path / "shards" / f"0000{shard}.tar"))
    videos = {key: m["mp4"] for key, m in samples.items() if "mp4" in m}
    assert len(videos) == 6
    for key, data in videos.items():
        i = int(key[-2]) * 3 + int(key[-1])
        reference = tmp_path / f"{key}.mp4"
        transcode(source / "webvid" / _video(source, i), reference, settings)
        assert torch.equal(
            read_video_full_decode(io.BytesIO(data), 4, "uniform"), read_video_full_decode(reference, 4, "uniform")
        )
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            assert min(stream.width, stream.height) <= 80 and stream.average_rate <= 5


@pytest.fixture(scope="module")
def corrupt_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_corrupt_videos(tmp_path_factory.mktemp("corrupt"))


def _decodes(path: Path) -> tuple[int, int]:
    """(frames, frames flagged corrupt) of a plain PyAV decode; raises where the decoder rejects a packet."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return len(frames), sum(frame.is_corrupt for frame in frames)


def test_the_corrupt_inputs_are_what_they_say(corrupt_videos: dict[str, Path]) -> None:
    """By a plain decode, independent of the checks under test."""
    assert _decodes(corrupt_videos["intact.mp4"]) == (60, 0)
    for name in ("rejected.mp4", "rejected.webm"):
        with pytest.raises(av.InvalidDataError):
            _decodes(corrupt_videos[name])
    assert _decodes(corrupt_videos["concealed.mp4"]) == (60, 1)
    assert _decodes(corrupt_videos["dropped.mp4"]) == (59, 0)


def test_locally_corrupt_videos_fail_and_stay_out_of_the_shard(corrupt_videos: dict[str, Path], tmp_path: Path) -> None:
    """D7: a copied video is decoded whole, so a damaged packet anywhere fails it on every run,
    not only the reads that reach it; the intact one beside them is copied."""
    rows = [Row(name, {"url": name}, path) for name, path in corrupt_videos.items()]
    spec = ShardSpec("video", len(rows))
    for run in ("first", "again"):
        summary = write_shards(rows, tmp_path / run, spec, progress=False)
        assert summary.failed == {"failed_to_subsample": len(CORRUPTIONS)}
        samples = _samples(_members(tmp_path / run / "00000.tar"))
        assert [key for key, members in samples.items() if "mp4" in members] == [spec.key(0, 0)]
        assert samples[spec.key(0, 0)]["mp4"] == corrupt_videos["intact.mp4"].read_bytes()
        lines = [line.split("\t") for line in (tmp_path / run / ERRORS_FILE).read_text().splitlines()]
        assert [(key, Path(media).name) for key, media, _ in lines] == [
            (f"00000/{spec.key(0, i)}", name) for i, name in enumerate(CORRUPTIONS, start=1)
        ]
        for (*_, reason), (*_, words) in zip(lines, CORRUPTIONS.values()):
            assert words in reason, reason


def test_clipped_rows_become_samples_key_00000_and_so_on(source: Path, tmp_path: Path) -> None:
    video = source / "webvid" / _video(source, 0)
    original = _frames(video)
    with av.open(str(video)) as container:
        rate = container.streams.video[0].average_rate
    end = len(original) / rate
    row = Row("a caption", {"url": "u"}, video, clips=((0.0, float(end / 2)), (float(end / 2), float(end))))
    summary = write_shards([row], tmp_path, ShardSpec("video", 1, keys_per_shard=1000), progress=False)
    assert summary.samples == 2
    samples = _samples(_members(tmp_path / "00000.tar"))
    assert list(samples) == ["00000000_00000", "00000000_00001"]
    clips = [_frames(samples[key]["mp4"]) for key in samples]
    first = math.ceil(len(original) / 2)  # frames i with i / rate < end / 2
    assert [len(c) for c in clips] == [first, len(original) - first]
    for clip, offset in zip(clips, (0, first)):
        for i, frame in enumerate(clip):
            assert np.abs(frame - original[offset + i]).mean() < 4  # the same picture, re-encoded
    metas = [json.loads(samples[key]["json"]) for key in samples]
    assert [m["key"] for m in metas] == list(samples) and metas[1]["clips"] == [[float(end / 2), float(end)]]
    stats = json.loads((tmp_path / "00000_stats.json").read_text())
    assert (stats["count"], stats["successes"]) == (1, 1)  # video2dataset counts the row, not its clips


def test_finished_shards_are_kept_and_unfinished_ones_rewritten(source: Path, tmp_path: Path) -> None:
    shard_dataset(source, tmp_path, "webvid", 3, progress=False)
    first = _members(tmp_path / "00001.tar")
    for path in tmp_path.iterdir():
        os.utime(path, (OLD, OLD))
    # killed while writing shard 1 (a temporary file, nothing in place) and before shard 2's stats
    (tmp_path / "00001.tar").unlink()
    (tmp_path / "00001_stats.json").unlink()
    (tmp_path / ".00001.tar.partial").write_bytes(b"half a tar")
    (tmp_path / "00002_stats.json").unlink()
    summary = shard_dataset(source, tmp_path, "webvid", 3, progress=False)
    assert (summary.kept, summary.shards) == (1, 2)
    assert (tmp_path / "00000.tar").stat().st_mtime == (tmp_path / "00000_stats.json").stat().st_mtime == OLD
    for name in ("00001.tar", "00001_stats.json", "00002.tar", "00002_stats.json"):
        assert (tmp_path / name).stat().st_mtime > OLD, name
    assert not (tmp_path / ".00001.tar.partial").exists()
    again = _members(tmp_path / "00001.tar")
    assert again == first
    # the corrupt video of shard 0 (kept) and the missing one of shard 1 (rewritten) are both still listed
    assert [line.split("\t")[0] for line in (tmp_path / ERRORS_FILE).read_text().splitlines()] == [
        "00000/000002", "00001/000012",
    ]  # fmt: skip


def test_files_format_holds_the_same_members_in_folders(source: Path, tmp_path: Path) -> None:
    for output_format in ("webdataset", "files"):
        shard_dataset(source, tmp_path / output_format, "cc3m", 3, output_format, progress=False)
    for shard in ("00000", "00001", "00002"):
        folder = tmp_path / "files" / shard
        as_files = {p.name: p.read_bytes() for p in folder.iterdir()}
        in_tar = _members(tmp_path / "webdataset" / f"{shard}.tar")
        assert as_files.keys() == in_tar.keys() and len(as_files) >= 6
        for name, data in as_files.items():
            same = json.loads(data) == json.loads(in_tar[name]) if name.endswith(".json") else data == in_tar[name]
            assert same, name
        assert (tmp_path / "files" / f"{shard}_stats.json").is_file()
    assert not list((tmp_path / "files").glob(".*"))  # no temporary folder left


def test_bad_arguments_are_config_errors(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["shard", str(source), str(tmp_path), "--dataset", "cc3m", "--fps", "5"]) == 2
    assert main(["shard", str(source), str(tmp_path), "--dataset", "webvid", "--shard-size", "0"]) == 2
    assert "images are copied" in capsys.readouterr().err
