"""``python -m vtr preprocess``: a re-encoded copy of a dataset root that trains like the original."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.media import CORRUPTIONS, write_corrupt_videos
from helpers.runs import tiny_overrides

from data_modules.preprocess import ERRORS_FILE, VIDEO_SUFFIXES, Settings, preprocess, transcode
from data_modules.video import read_video
from vtr.cli import main
from vtr.config import load_config, resolve_run_dir

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Settings(short_side=80, fps=5, keyframe_every=4)  # the demo's clips: 64-128 px, 8-10 fps
CORRUPT = "msrvtt/videos/all/corrupt.mp4"


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def converted(tiny_demo_root, tmp_path_factory):
    """The tiny demo corpus plus one corrupt video, and its preprocessed copy."""
    src = tmp_path_factory.mktemp("src") / "root"
    shutil.copytree(tiny_demo_root, src)
    (src / CORRUPT).write_bytes(np.random.default_rng(0).bytes(5000))
    dst = tmp_path_factory.mktemp("dst") / "root"
    summary = preprocess(src, dst, SETTINGS, workers=2, progress=False)
    return src, dst, summary


@dataclass
class Decoded:
    codec: str
    rate: Fraction
    width: int
    height: int
    frames: list[av.VideoFrame]


def _decoded(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        s = container.streams.video[0]  # its fields are only valid while the file is open
        return Decoded(s.codec_context.name, s.average_rate, s.width, s.height, list(container.decode(s)))


def test_every_file_at_its_path_and_others_unchanged(converted):
    src, dst, summary = converted
    source, copy = _files(src), _files(dst)
    assert set(copy) == set(source) - {CORRUPT} | {ERRORS_FILE}
    videos = [name for name in source if Path(name).suffix in VIDEO_SUFFIXES and name != CORRUPT]
    assert len(videos) > 20 and {Path(n).suffix for n in videos} >= {".mp4", ".avi"}
    for name, path in source.items():
        if name not in videos and name != CORRUPT:
            assert copy[name].read_bytes() == path.read_bytes(), name
    assert summary.videos == len(videos) and summary.copied == len(source) - len(videos) - 1
    assert summary.up_to_date == 0 and summary.bytes_before == sum(source[n].stat().st_size for n in videos)


def test_corrupt_video_is_listed_and_skipped(converted):
    _, dst, summary = converted
    assert list(summary.failed) == [CORRUPT]
    lines = (dst / ERRORS_FILE).read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(CORRUPT + "\t") and len(lines[0]) > len(CORRUPT) + 1


def test_locally_corrupt_videos_are_listed_and_skipped(tmp_path):
    """D7: every frame is decoded, so damage the decoder rejects, conceals or drops fails the
    video, wherever it lies; the intact one beside them is converted."""
    src = tmp_path / "src"
    src.mkdir()
    for name, path in write_corrupt_videos(tmp_path).items():
        shutil.copy(path, src / name)
    summary = preprocess(src, tmp_path / "dst", SETTINGS, progress=False)
    assert sorted(summary.failed) == sorted(CORRUPTIONS) and summary.videos == 1
    assert set(_files(tmp_path / "dst")) == {ERRORS_FILE, "intact.mp4"}
    lines = [line.split("\t") for line in (tmp_path / "dst" / ERRORS_FILE).read_text().splitlines()]
    assert [name for name, _ in lines] == sorted(CORRUPTIONS)
    for name, reason in lines:
        assert CORRUPTIONS[name][3] in reason, reason


def test_videos_get_the_requested_size_rate_and_keyframes(converted):
    src, dst, _ = converted
    names = [n for n in _files(src) if Path(n).suffix in VIDEO_SUFFIXES and n != CORRUPT]
    sizes_kept = 0
    for name in names:
        original, stream = _decoded(src / name), _decoded(dst / name)
        source_frames, frames = original.frames, stream.frames
        assert stream.codec == "h264", name
        short = min(original.width, original.height)
        expected_short = min(short, SETTINGS.short_side)  # never upscaled
        sizes_kept += short <= SETTINGS.short_side
        assert min(stream.width, stream.height) == expected_short, name
        assert stream.width / stream.height == pytest.approx(original.width / original.height, abs=0.05)
        rate = original.rate
        assert stream.rate == min(rate, SETTINGS.fps), name
        # slots k / fps up to the last source frame's time, (n - 1) / rate
        assert len(frames) == math.floor((len(source_frames) - 1) * min(rate, SETTINGS.fps) / rate) + 1, name
        keys = [i for i, frame in enumerate(frames) if frame.key_frame]
        assert keys[0] == 0 and max(np.diff(keys + [len(frames)])) <= SETTINGS.keyframe_every, name
    assert 0 < sizes_kept < len(names)  # both cases occur


def test_output_frame_k_shows_the_source_at_k_over_fps(converted):
    src, dst, _ = converted
    moving = 0
    for name in [n for n in _files(src) if n.startswith("msrvtt/videos/all/") and n != CORRUPT][:4]:
        original, stream = _decoded(src / name), _decoded(dst / name)
        source_frames, frames = original.frames, stream.frames
        rate, (w, h) = original.rate, (stream.width, stream.height)
        small = [f.to_ndarray(format="rgb24", width=w, height=h).astype(float) for f in source_frames]
        for k, frame in enumerate(frames):
            distances = [np.abs(frame.to_ndarray(format="rgb24") - s).mean() for s in small]
            shown = math.ceil(k * rate / SETTINGS.fps)  # the first source frame at or after k / fps seconds
            assert distances[shown] <= min(distances) + 0.5, (name, k, shown, int(np.argmin(distances)))
            moving += sorted(distances)[1] > distances[shown] + 2  # the other frames look different
    assert moving > 5


def test_interrupted_run_resumes_without_redoing_finished_files(converted, tmp_path):
    src, first, _ = converted
    dst = tmp_path / "root"
    done = [n for n in _files(first) if n != ERRORS_FILE][::2]  # "finished before the interruption"
    for name in done:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(first / name, dst / name)
    before = {name: (dst / name).stat().st_mtime_ns for name in done}
    (dst / "msrvtt/videos/all/.half-written.mp4.partial").write_bytes(b"cut off")  # left by the interruption
    summary = main(["preprocess", str(src), str(dst), "--short-side", "80", "--fps", "5", "--keyframe-every", "4",
                    "--workers", "1"])  # fmt: skip
    assert summary == 0
    assert {name: (dst / name).stat().st_mtime_ns for name in done} == before  # not redone
    assert set(_files(dst)) - {"msrvtt/videos/all/.half-written.mp4.partial"} == set(_files(first))
    again = preprocess(src, dst, SETTINGS, workers=1, progress=False)
    assert again.videos == again.copied == 0 and again.up_to_date == len(_files(first)) - 1
    assert list(again.failed) == [CORRUPT]  # still listed (and still retried)


def test_bad_arguments(tmp_path, capsys):
    assert main(["preprocess", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert main(["preprocess", str(tmp_path), str(tmp_path / "inside")]) == 2
    assert main(["preprocess", str(tmp_path), str(tmp_path / "out"), "--fps", "0"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_preprocessed_root_trains_and_evaluates(converted, tmp_path):
    from vtr.build import run

    _, dst, _ = converted
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", tiny_overrides(dst, tmp_path, steps=2))
    results = run(cfg)
    metrics = json.loads((resolve_run_dir(cfg).parent / "version_0/metrics.json").read_text())
    assert metrics == json.loads(json.dumps(results))
    test = metrics["test"]["msrvtt"]
    assert test["num_videos"] > 0 and 0 <= test["t2v"]["R1"] <= test["t2v"]["R10"] <= 100


def test_a_rotated_video_keeps_its_rotation(tmp_path):
    """A phone's portrait video (stored 64x32, shown turned clockwise) is still shown portrait."""
    src = tmp_path / "phone.mp4"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)
        for i in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((32, 64, 3), 20 * i, np.uint8), format="rgb24")))
        out.mux(stream.encode())
    transcode(src, tmp_path / "small.mp4", Settings(short_side=32, fps=10, keyframe_every=10))
    assert (
        read_video(src, 2, "uniform").shape == read_video(tmp_path / "small.mp4", 2, "uniform").shape == (2, 3, 64, 32)
    )
