"""Frame sampling, the seeking and full-decode readers, and the clip transforms."""

from __future__ import annotations

import io
import random

import av
import numpy as np
import pytest
import torch
from av.video.frame import PictureType
from helpers.media import (
    frame_number,
    marked_frame,
    write_clip,
    write_clip_with_audio,
    write_faststart_clip,
    write_image,
)
from torchvision import tv_tensors

from data_modules import video
from data_modules.video import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MediaError,
    build_transform,
    read_image,
    read_video,
    read_video_full_decode,
    sample_frame_indices,
    video_duration,
)

# --- sampling ---------------------------------------------------------------------------------


def test_uniform_takes_segment_middles():
    assert sample_frame_indices(100, 4, "uniform") == [12, 37, 62, 87]
    assert sample_frame_indices(10, 3, "uniform") == [1, 4, 7]  # segments [0,3) [3,6) [6,10)


def test_rand_stays_in_its_segment_and_covers_it():
    rng = random.Random(0)
    seen: list[set[int]] = [set(), set(), set()]
    for _ in range(500):
        indices = sample_frame_indices(10, 3, "rand", rng)
        assert indices == sorted(indices)
        for k, index in enumerate(indices):
            seen[k].add(index)
    assert seen == [{0, 1, 2}, {3, 4, 5}, {6, 7, 8, 9}]


def test_rand_is_reproducible_with_a_seeded_rng():
    draws = [sample_frame_indices(1000, 8, "rand", random.Random(seed)) for seed in (1, 1, 2)]
    assert draws[0] == draws[1] != draws[2]


@pytest.mark.parametrize("mode", ["rand", "uniform"])
def test_short_videos_repeat_frames_evenly(mode):
    assert sample_frame_indices(3, 8, mode) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert sample_frame_indices(1, 4, mode) == [0, 0, 0, 0]
    assert sample_frame_indices(4, 4, mode) == [0, 1, 2, 3]


def test_bad_sampling_arguments():
    with pytest.raises(ValueError, match="rand"):
        sample_frame_indices(10, 2, "middle")
    with pytest.raises(ValueError):
        sample_frame_indices(0, 2, "uniform")


# --- readers ----------------------------------------------------------------------------------

CLIPS = {
    "h264-bframes.mp4": dict(codec="libx264", gop=8, b_frames=2),
    "mpeg4.avi": dict(codec="mpeg4", gop=8, b_frames=0),
    # AVI with B-frames seeks by decode time and its first frame is not at start_time
    "mpeg4-bframes.avi": dict(codec="mpeg4", gop=8, b_frames=2),
    "h264.mkv": dict(codec="libx264", gop=8, b_frames=0),  # no frame count in the header
    # x264's default long GOP (one keyframe here) and B-pyramid: most frames are decoded on the
    # way to a wanted one, with non-reference B-frames skipped
    "h264-longgop.mp4": dict(codec="libx264", gop=250, b_frames=3),
    "h264-bframes.mkv": dict(codec="libx264", gop=30, b_frames=3),
    # H.264 in AVI: decoded frames carry their chunk's number, not their presentation time
    "h264-bframes.avi": dict(codec="libx264", gop=25, b_frames=3),
    # MPEG-TS has no index: seeks search the file and can land after the target or past the end
    "h264.ts": dict(codec="libx264", gop=8, b_frames=2),
    "h264-bframes.ts": dict(codec="libx264", gop=25, b_frames=3),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {name: write_clip(folder / name, 60, **options) for name, options in CLIPS.items()}


@pytest.mark.parametrize("name", list(CLIPS))
def test_readers_return_the_sampled_frames(clips, name):
    for seed in range(12):
        for num_frames in (1, 4, 8, 16):
            expected = sample_frame_indices(60, num_frames, "rand", random.Random(seed))
            seek = read_video(clips[name], num_frames, "rand", random.Random(seed))
            full = read_video_full_decode(clips[name], num_frames, "rand", random.Random(seed))
            assert seek.dtype == torch.uint8 and seek.shape == (num_frames, 3, 32, marked_frame(0).shape[1])
            assert [frame_number(f.numpy()) for f in seek] == expected
            assert torch.equal(seek, full)


@pytest.mark.parametrize(("name", "codec"), [("h264.mkv", "libx264"), ("vp9.webm", "libvpx-vp9")])
@pytest.mark.parametrize("audio_s", [2.9, 4.4])
def test_a_longer_audio_track_does_not_promise_frames_past_the_video(tmp_path, name, codec, audio_s):
    """D1: mkv/webm keep no frame count and their duration is the longest stream's; the frames
    are counted from the video packets, so the last sampled frames exist."""
    path = write_clip_with_audio(tmp_path / name, 60, audio_s, codec)
    with av.open(str(path)) as container:
        assert container.duration / av.time_base > 2.4 + 0.4  # the audio's, past the video's 2.4 s
        assert sum(1 for _ in container.decode(video=0)) == 60
    draws = [("uniform", None)] + [("rand", seed) for seed in range(30)]
    for mode, seed in draws:
        seek = read_video(path, 8, mode, random.Random(seed) if seed is not None else None)
        full = read_video_full_decode(path, 8, mode, random.Random(seed) if seed is not None else None)
        expected = sample_frame_indices(60, 8, mode, random.Random(seed))
        assert [frame_number(f.numpy()) for f in seek] == expected
        assert torch.equal(seek, full)


def test_an_edit_list_that_cuts_frames_is_counted(tmp_path):
    """D1: an mp4 edit list cutting 5 of 60 frames leaves them in ``stream.frames``; the decoder
    drops them, so the clip has 55 frames, counted from the packets not marked discard."""
    path = write_clip(tmp_path / "cut.mp4", 60, first_pts=-5)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 60
        assert sum(1 for _ in container.decode(video=0)) == 55
    for mode, seed in [("uniform", None)] + [("rand", seed) for seed in range(30)]:
        seek = read_video(path, 8, mode, random.Random(seed) if seed is not None else None)
        full = read_video_full_decode(path, 8, mode, random.Random(seed) if seed is not None else None)
        expected = [5 + i for i in sample_frame_indices(55, 8, mode, random.Random(seed))]
        assert [frame_number(f.numpy()) for f in seek] == expected
        assert torch.equal(seek, full)


@pytest.mark.parametrize("name", ["h264-bframes.mp4", "h264-longgop.mp4"])
def test_an_mp4_frame_count_costs_no_extra_pass(clips, name, monkeypatch):
    def counted(video):
        raise AssertionError("demuxed the whole file to count frames")

    monkeypatch.setattr(video, "counted_frames", counted)
    assert read_video(clips[name], 4, "uniform").shape[0] == 4


@pytest.mark.parametrize("name", ["h264-bframes.mp4", "mpeg4-bframes.avi", "h264-bframes.mkv"])
def test_a_file_object_gives_the_frames_of_its_file(clips, name):
    """A shard member's bytes in memory read as the file does; errors name the object's name."""
    data = clips[name].read_bytes()
    for seed in range(4):
        member = io.BytesIO(data)
        member.name = f"shard.tar:{name}"
        from_bytes = read_video(member, 4, "rand", random.Random(seed))
        assert torch.equal(from_bytes, read_video(clips[name], 4, "rand", random.Random(seed)))
        assert torch.equal(read_video_full_decode(io.BytesIO(data), 4, "rand", random.Random(seed)), from_bytes)
    cut = io.BytesIO(data[: len(data) // 3])
    cut.name = "shard.tar:cut.mp4"
    with pytest.raises(MediaError, match="shard.tar:cut.mp4"):
        read_video(cut, 4, "uniform")


def test_an_image_file_object_reads_as_its_file(tmp_path):
    path = write_image(tmp_path / "a.jpg")
    assert torch.equal(read_image(io.BytesIO(path.read_bytes())), read_image(path))
    with pytest.raises(MediaError, match="<bytes>"):
        read_image(io.BytesIO(b"not an image"))


@pytest.mark.parametrize("name", ["h264-longgop.mp4", "h264-bframes.mkv"])
def test_frames_nothing_references_are_skipped_on_the_way(clips, name, monkeypatch):
    """Reading frame 57 decodes all reference frames before it, but not the disposable B-frames."""
    out: list[int] = []
    real_frames = video.Decoder.frames

    def counted(self):
        for frame in real_frames(self):
            out.append(frame.pts)
            yield frame

    monkeypatch.setattr(video.Decoder, "frames", counted)
    with av.open(str(clips[name])) as container:
        pict_types = [PictureType(frame.pict_type) for frame in container.decode(video=0)]
    assert pict_types.count(PictureType.B) > 10  # the clip does have B-frames to skip
    frames = read_video(clips[name], 1, "uniform", window=(57 / 25, 58 / 25))
    assert frame_number(frames[0].numpy()) == 57
    assert len(out) < 58 - 10  # fewer frames came out of the decoder than precede the target


def test_seeks_only_when_that_skips_frames(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "gop8.mp4", 120, gop=8)
    seeks: list[int] = []
    real_seek = video._seek
    monkeypatch.setattr(video, "_seek", lambda *args: seeks.append(args[-1]) or real_seek(*args))
    frames = read_video(path, 2, "uniform")  # frames 29 and 89, keyframes every 8 frames
    assert seeks == [29, 89] and [frame_number(f.numpy()) for f in frames] == [29, 89]
    seeks.clear()
    frames = read_video(path, 16, "uniform")  # a frame every 7-8: a seek would skip too little
    assert seeks == [] and [frame_number(f.numpy()) for f in frames] == sample_frame_indices(120, 16, "uniform")


def test_uniform_reading_and_padding(clips):
    path = write_clip(clips["mpeg4.avi"].parent / "short.mp4", 3)
    frames = read_video(path, 8, "uniform")
    assert [frame_number(f.numpy()) for f in frames] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert [frame_number(f.numpy()) for f in read_video(clips["h264.mkv"], 4, "uniform")] == [7, 22, 37, 52]


@pytest.mark.parametrize("name", list(CLIPS))
def test_window_samples_within_its_time_range(clips, name):
    # 25 fps: 1.0-2.0 s shows frames 25..49; uniform 5 frames = middles of 5-frame segments
    assert [frame_number(f.numpy()) for f in read_video(clips[name], 5, "uniform", window=(1.0, 2.0))] == [
        27, 32, 37, 42, 47
    ]  # fmt: skip
    for seed in range(8):
        for window, first, stop in [((1.0, 2.0), 25, 50), ((0.2, 1.2), 5, 30), ((1.9, 9.0), 48, 60)]:
            seek = read_video(clips[name], 4, "rand", random.Random(seed), window=window)
            full = read_video_full_decode(clips[name], 4, "rand", random.Random(seed), window=window)
            numbers = [frame_number(f.numpy()) for f in seek]
            segments = [(first + k * (stop - first) // 4, first + (k + 1) * (stop - first) // 4) for k in range(4)]
            assert all(lo <= n < hi for n, (lo, hi) in zip(numbers, segments)), (window, numbers)
            assert torch.equal(seek, full)


def test_degenerate_windows(clips):
    path = clips["h264-bframes.mp4"]
    numbers = lambda frames: [frame_number(f.numpy()) for f in frames]  # noqa: E731
    assert numbers(read_video(path, 3, "uniform", window=(1.0, 1.0))) == [25, 25, 25]  # shorter than a frame
    assert numbers(read_video(path, 2, "uniform", window=(0.5, 0.52))) == [13, 13]  # 12.5 -> first frame after
    assert numbers(read_video(path, 2, "rand", window=(30.0, 40.0))) == [59, 59]  # past the end: the last frame
    with pytest.raises(ValueError, match="window"):
        read_video(path, 2, "uniform", window=(2.0, 1.0))


@pytest.mark.parametrize("name", list(CLIPS))
def test_video_duration(clips, name):
    assert video_duration(clips[name]) == pytest.approx(60 / 25)


@pytest.fixture(scope="module")
def broken(tmp_path_factory, clips):
    folder = tmp_path_factory.mktemp("broken")
    whole = clips["h264-bframes.mp4"].read_bytes()
    faststart = write_faststart_clip(folder / "faststart.mp4").read_bytes()
    files = {
        "missing": folder / "missing.mp4",
        "empty": folder / "empty.mp4",
        "garbage": folder / "garbage.mp4",
        "index-at-end-truncated": folder / "cut.mp4",
        "index-first-truncated": folder / "cut-faststart.mp4",
        "avi-truncated": folder / "cut.avi",
    }
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(np.random.default_rng(0).bytes(4000))
    files["index-at-end-truncated"].write_bytes(whole[: len(whole) // 2])
    files["index-first-truncated"].write_bytes(faststart[: len(faststart) // 2])
    avi = clips["mpeg4.avi"].read_bytes()
    files["avi-truncated"].write_bytes(avi[: len(avi) // 2])
    return files


@pytest.mark.parametrize("reader", [read_video, read_video_full_decode])
@pytest.mark.parametrize(
    "case", ["missing", "empty", "garbage", "index-at-end-truncated", "index-first-truncated", "avi-truncated"]
)
def test_broken_videos_raise_media_error(broken, reader, case):
    with pytest.raises(MediaError) as info:
        reader(broken[case], 8, "uniform")
    assert info.value.path == str(broken[case]) and info.value.reason
    assert str(broken[case]) in str(info.value)


def test_read_image(tmp_path):
    image = read_image(write_image(tmp_path / "a.jpg", size=(40, 30)))
    assert image.dtype == torch.uint8 and image.shape == (1, 3, 30, 40)
    assert abs(int(image[0, 0].float().mean()) - 200) <= 3  # red channel of (200, 30, 90)
    grey = tmp_path / "grey.png"
    from PIL import Image

    Image.new("L", (8, 8), 77).save(grey)
    assert read_image(grey).shape == (1, 3, 8, 8)  # converted to RGB


def test_broken_images_raise_media_error(tmp_path):
    good = write_image(tmp_path / "good.jpg", size=(64, 64)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("missing.jpg", "cut.jpg", "text.jpg"):
        with pytest.raises(MediaError):
            read_image(tmp_path / name)


# --- transforms -------------------------------------------------------------------------------


def _textured_clip(num_frames: int, height: int = 90, width: int = 120) -> torch.Tensor:
    """Frame i = one asymmetric image + i: equal crops and flips keep frame i - frame 0 == i
    (resizing is linear); a crop or flip of its own for any frame breaks that."""
    base = torch.randint(0, 200, (1, 3, height, width), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return base + torch.arange(num_frames, dtype=torch.uint8).view(-1, 1, 1, 1)


def test_train_transform_applies_one_crop_and_flip_to_all_frames():
    transform = build_transform(48, train=True)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    clip = _textured_clip(5)
    outputs = []
    for seed in range(10):
        torch.manual_seed(seed)
        out = transform(clip)
        assert out.dtype == torch.float32 and out.shape == (5, 3, 48, 48)
        for i in range(5):
            # uint8 resizing rounds in fixed point: allow one grey level on the odd pixel
            error = (out[i] - out[0] - i / 255 / std).abs()
            assert (error <= 1.01 / 255 / std).all() and (error < 1e-5).float().mean() > 0.99
        outputs.append(out)
    assert not all(torch.equal(outputs[0], o) for o in outputs[1:])  # the augmentation is random


def test_train_transform_keeps_a_still_clip_still():
    still = _textured_clip(1).repeat(4, 1, 1, 1)
    out = build_transform(32, train=True)(tv_tensors.Video(still))
    assert all(torch.equal(out[0], out[i]) for i in range(4))


def test_test_transform_is_resize_centre_crop_and_normalises():
    transform = build_transform(64, train=False)
    clip = _textured_clip(3, height=90, width=160)
    out = transform(clip)
    assert out.shape == (3, 3, 64, 64) and out.dtype == torch.float32
    assert torch.equal(out, transform(clip))  # deterministic
    # A clip of the ImageNet mean colour maps to 0, white to (1 - mean) / std.
    mean_colour = torch.tensor([round(m * 255) for m in IMAGENET_MEAN], dtype=torch.uint8).view(1, 3, 1, 1)
    assert transform(mean_colour.expand(2, 3, 50, 70).contiguous()).abs().max() < 0.01
    white = transform(torch.full((1, 3, 50, 70), 255, dtype=torch.uint8))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(white[0, :, 5, 5], expected)
    # The centre crop keeps the middle: a wide clip whose left and right fifths differ from
    # its centre shows only the centre after the transform.
    wide = torch.zeros(1, 3, 100, 200, dtype=torch.uint8)
    wide[..., 40:160] = 255
    torch.testing.assert_close(transform(wide), expected.view(1, 3, 1, 1).expand(1, 3, 64, 64))


@pytest.mark.parametrize("size", [(72, 110), (110, 72), (64, 48)])
def test_frames_are_pyav_rgb24_of_the_decoded_frames_every_time(tmp_path, size):
    """Pixel values (not only frame identity) against PyAV's own RGB conversion, on frame sizes
    whose rows are padded in memory; read three times, as a planar fast path once varied between reads."""
    width, height = size
    path = tmp_path / f"{width}x{height}.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10, options={"bf": "2", "g": "10"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(25):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode())
    with av.open(str(path)) as container:
        reference = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    indices = sample_frame_indices(len(reference), 4, "uniform")
    expected = torch.from_numpy(np.stack([reference[i] for i in indices])).permute(0, 3, 1, 2)
    for _ in range(3):
        assert torch.equal(read_video(path, 4, "uniform"), expected)
        assert torch.equal(read_video_full_decode(path, 4, "uniform"), expected)


def test_a_forked_loader_worker_reads_after_the_parent_has(tmp_path):
    """The parent reads a clip, then forks a DataLoader worker that reads one: no converter state
    (and no swscale worker thread it would wait for) may cross the fork."""
    path = write_clip(tmp_path / "clip.mp4", 20)

    class Clips(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> torch.Tensor:
            return read_video(path, 2, "uniform")

    expected = read_video(path, 2, "uniform")
    loader = torch.utils.data.DataLoader(
        Clips(), batch_size=1, num_workers=1, multiprocessing_context="fork", timeout=60
    )
    for batch in loader:  # a hung worker raises after the timeout instead of blocking the test
        assert torch.equal(batch[0], expected)
