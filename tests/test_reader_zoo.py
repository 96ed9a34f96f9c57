"""The frame reader on a zoo of the files users download: every case checked against a full decode.

The files are made here with PyAV (nothing to download, no ffmpeg binary): H.264 in the
baseline, main, high, high 10 and 4:2:2 profiles with no, plain and pyramid B-frames, long,
intra-only and open GOPs; HEVC 8 and 10 bit (libx265); VP8 and VP9 (libvpx); AV1 (libsvtav1,
decoded by libdav1d); MPEG-4 Part 2 and MJPEG in AVI; in mp4, mkv, webm, MPEG-TS and AVI. Then
the awkward ones: an edit list trimming into a GOP (mp4's negative start: Matroska cannot store
a negative time, its muxer shifts it to 0), a stream starting at 10 s, stream copies cut mid-GOP,
variable frame rates, display-matrix rotations, sizes that are not multiples of 8 or 16, audio
running past the video, Matroska/WebM written to a pipe, truncations and a corrupt packet.
Every codec of the issue's zoo has an encoder in this PyAV build, so none is left out.

Frame ``i`` of every clip shows ``i`` in binary (``helpers.media.frame_number``). The reference
is this module's own decode of every frame with PyAV, turned by the rotation the test wrote:
frame ``k`` is the ``k``-th frame it yields, so a reader must return exactly
``reference[sample_frame_indices(len(reference), ...)]``, pixel for pixel.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.media import BAR, BITS, corrupt_packet, frame_number, write_faststart_clip

from data_modules.dataset import VideoRecord, VideoTextDataset
from data_modules.video import MediaError, read_video, read_video_full_decode, sample_frame_indices

NUM_FRAMES = 60
# frame durations of the variable-rate clips, in 1/100 s: 25, 12.5 and 50 fps stretches, a pause
VFR_STEPS = [4, 4, 4, 8, 8, 2, 2, 2, 4, 12]
X264_B = {"b_strategy": "0"}  # x264 would otherwise find still bars need no B-frames


@dataclass(frozen=True)
class Clip:
    """How one zoo file is encoded: codec, options, container and the oddities it carries."""

    codec: str = "libx264"
    options: dict[str, str] = field(default_factory=dict)
    pix_fmt: str = "yuv420p"
    size: tuple[int, int] = (64, 32)  # width, height
    format: str | None = None  # the muxer, where the suffix does not say it
    first_pts: int = 0  # in frames: negative in mp4 is an edit list that trims into the GOP
    vfr: bool = False
    rotation: int = 0  # display matrix, degrees counter-clockwise
    audio_s: float = 0.0  # an Opus track this long, running past the video
    pipe: bool = False  # written to a non-seekable stream: no duration, no cues
    drop_packets: int = 0  # a stream copy that starts this many packets in (mid-GOP)


H264 = {"g": "12", "bf": "2"} | X264_B
CLIPS: dict[str, Clip] = {
    "h264-baseline.mp4": Clip(options={"profile": "baseline", "g": "10"}),
    "h264-main-bframes.mp4": Clip(options={"profile": "main"} | H264),
    "h264-high-pyramid.mkv": Clip(options={"g": "30", "bf": "3", "b-pyramid": "normal"} | X264_B),
    "h264-high10.mp4": Clip(options=H264, pix_fmt="yuv420p10le"),
    "h264-422.mkv": Clip(options=H264, pix_fmt="yuv422p"),
    "h264-longgop.mp4": Clip(options={"g": "250", "bf": "3"} | X264_B),
    "h264-intra.mp4": Clip(options={"g": "1"}),
    "h264-opengop.mkv": Clip(options={"g": "12", "bf": "3", "x264-params": "open-gop=1"} | X264_B),
    "h264-bframes.avi": Clip(options={"g": "25", "bf": "3"} | X264_B),
    "h264-bframes.ts": Clip(options={"g": "25", "bf": "3"} | X264_B),
    "hevc.mp4": Clip("libx265", {"g": "12", "x265-params": "log-level=error:bframes=3"}),
    "hevc10.mkv": Clip("libx265", {"g": "12", "x265-params": "log-level=error"}, pix_fmt="yuv420p10le"),
    "vp8.webm": Clip("libvpx", {"g": "10"}),
    "vp9.webm": Clip("libvpx-vp9", {"g": "10", "deadline": "realtime", "cpu-used": "8"}),
    "av1.mkv": Clip("libsvtav1", {"g": "10", "preset": "12"}),
    "av1.mp4": Clip("libsvtav1", {"g": "16", "preset": "12"}),
    "mpeg4-bframes.avi": Clip("mpeg4", {"g": "8", "bf": "2"}),
    "mjpeg.avi": Clip("mjpeg", pix_fmt="yuvj420p"),
    # trims and offsets
    "h264-trimmed-into-gop.mp4": Clip(options=H264, first_pts=-5),
    "h264-starts-at-10s.mkv": Clip(options=H264, first_pts=250),
    "h264-starts-at-10s.ts": Clip(options=H264, first_pts=250),
    "h264-mid-gop.mkv": Clip(options={"g": "25", "bf": "3"} | X264_B, drop_packets=10),
    "h264-mid-gop.mp4": Clip(options={"g": "25", "bf": "3"} | X264_B, drop_packets=10),
    "h264-mid-gop.ts": Clip(options={"g": "25", "bf": "3"} | X264_B, drop_packets=10),
    # variable frame rate (D3)
    "h264-vfr.mp4": Clip(options=H264, vfr=True),
    "h264-vfr.mkv": Clip(options=H264, vfr=True),
    "h264-vfr.ts": Clip(options=H264, vfr=True),
    "vp9-vfr.webm": Clip("libvpx-vp9", {"g": "10", "deadline": "realtime"}, vfr=True),
    # rotation (D4): phones write -90 (ffmpeg's rotate=90) for portrait
    "h264-rotate-90.mp4": Clip(options=H264, rotation=-90),
    "h264-rotate-270.mp4": Clip(options=H264, rotation=90),
    "h264-rotate-180.mkv": Clip(options=H264, rotation=180),
    "vp9-rotate-90.webm": Clip("libvpx-vp9", {"g": "10", "deadline": "realtime"}, rotation=-90),
    # sizes that are not multiples of the codecs' blocks; VP9 and AV1 take odd sizes too
    "h264-70x34.mp4": Clip(options=H264, size=(70, 34)),
    "hevc-74x38.mkv": Clip("libx265", {"g": "12", "x265-params": "log-level=error"}, size=(74, 38)),
    "vp9-71x33.webm": Clip("libvpx-vp9", {"g": "10", "deadline": "realtime"}, size=(71, 33)),
    "av1-67x35.mkv": Clip("libsvtav1", {"g": "10", "preset": "12"}, size=(67, 35)),
    # audio past the video (D1), and Matroska/WebM from a pipe (D6)
    "vp9-long-audio.webm": Clip("libvpx-vp9", {"g": "10", "deadline": "realtime"}, audio_s=4.4),
    "h264-long-audio.mkv": Clip(options=H264, audio_s=2.52),
    "h264-pipe.mkv": Clip(options=H264, format="matroska", pipe=True),
    "vp9-pipe.webm": Clip("libvpx-vp9", {"g": "10", "deadline": "realtime"}, format="webm", pipe=True),
}


def marked(i: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``i`` at ``size``: bit b of ``i`` is a full-height white bar b, the rest black."""
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    for bit in range(BITS):
        if i >> bit & 1:
            image[:, bit * BAR : (bit + 1) * BAR] = 255
    return image


def frame_times(clip: Clip) -> tuple[Fraction, list[int]]:
    """The encoder's time base and each frame's pts: 1/25 s steps, or ``VFR_STEPS`` in 1/100 s."""
    if not clip.vfr:
        return Fraction(1, 25), [clip.first_pts + i for i in range(NUM_FRAMES)]
    steps = (VFR_STEPS * NUM_FRAMES)[:NUM_FRAMES]
    return Fraction(1, 100), [sum(steps[:i]) for i in range(NUM_FRAMES)]


class Pipe(io.RawIOBase):
    """A write-only, non-seekable sink: what a muxer writing to stdout sees."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def encode(path: Path, clip: Clip) -> Path:
    """Write ``clip`` to ``path`` (through a pipe if ``clip.pipe``)."""
    sink = Pipe() if clip.pipe else str(path)
    time_base, times = frame_times(clip)
    with av.open(sink, "w", format=clip.format) as container:
        stream = container.add_stream(clip.codec, rate=int(1 / time_base), options=clip.options)
        stream.width, stream.height = clip.size
        stream.pix_fmt = clip.pix_fmt
        if clip.rotation:
            stream.set_display_rotation(clip.rotation)
        audio = container.add_stream("libopus", rate=48000, layout="mono") if clip.audio_s else None
        for i, pts in enumerate(times):
            frame = av.VideoFrame.from_ndarray(marked(i, clip.size), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if audio is not None:
            _add_silence(container, audio, clip.audio_s)
    if clip.pipe:
        path.write_bytes(bytes(sink.data))
    return path


def _add_silence(container: av.container.OutputContainer, audio: av.audio.stream.AudioStream, seconds: float) -> None:
    samples = round(seconds * 48000)
    for start in range(0, samples, 960):
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, min(960, samples - start)), np.int16), format="s16")
        chunk.sample_rate, chunk.pts = 48000, start
        container.mux(audio.encode(chunk))
    container.mux(audio.encode())


def drop_packets(src: Path, dst: Path, count: int) -> Path:
    """A stream copy of ``src`` without its first ``count`` packets (decode order): ``ffmpeg -ss
    -c copy`` into a container without edit lists starts like this, on frames that need a
    keyframe that is not there."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for n, packet in enumerate(source.demux(source.streams.video[0])):
            if n >= count and packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def make(folder: Path, name: str) -> Path:
    clip = CLIPS[name]
    if not clip.drop_packets:
        return encode(folder / name, clip)
    whole = encode(folder / f"whole-{name}", Clip(**{**vars(clip), "drop_packets": 0}))
    return drop_packets(whole, folder / name, clip.drop_packets)


def reference(path: Path, rotation: int = 0) -> list[np.ndarray]:
    """Every frame PyAV decodes, in order, as (3, H, W) RGB turned ``rotation`` degrees
    counter-clockwise: the test's own full decode, independent of the reader."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return [np.ascontiguousarray(np.rot90(f, rotation // 90).transpose(2, 0, 1)) for f in frames]


def expected(frames: list[np.ndarray], num_frames: int, mode: str, seed: int | None) -> torch.Tensor:
    indices = sample_frame_indices(len(frames), num_frames, mode, random.Random(seed))
    return torch.from_numpy(np.stack([frames[i] for i in indices]))


DRAWS = [("uniform", None)] + [("rand", seed) for seed in range(6)]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, tuple[Path, list[np.ndarray]]]:
    folder = tmp_path_factory.mktemp("zoo")
    files = {name: make(folder, name) for name in CLIPS}
    return {name: (path, reference(path, CLIPS[name].rotation)) for name, path in files.items()}


def numbers(frames: list[np.ndarray], clip: Clip) -> list[int]:
    """The frame numbers of ``frames`` (turned back to the stored orientation)."""
    return [frame_number(np.rot90(f.transpose(1, 2, 0), -clip.rotation // 90)) for f in frames]


@pytest.mark.parametrize("name", list(CLIPS))
def test_intact_files_give_the_full_decodes_frames(zoo, name):
    path, frames = zoo[name]
    clip = CLIPS[name]
    shown = numbers(frames, clip)
    # the generated file is what it says: consecutive frames (from a keyframe, if cut mid-GOP)
    assert shown == list(range(shown[0], shown[0] + len(frames))) and len(frames) >= 40
    if clip.drop_packets:
        assert shown[0] > 0  # the frames before the first keyframe do not decode
    else:
        assert shown[0] == max(-clip.first_pts, 0)  # an edit list hides the first frames
    width, height = clip.size
    assert frames[0].shape == ((3, width, height) if clip.rotation % 180 else (3, height, width))
    for num_frames in (4, 8):
        for mode, seed in DRAWS:
            want = expected(frames, num_frames, mode, seed)
            assert torch.equal(read_video(path, num_frames, mode, random.Random(seed)), want), (num_frames, mode, seed)
            assert torch.equal(read_video_full_decode(path, num_frames, mode, random.Random(seed)), want)


@pytest.mark.parametrize("name", ["h264-vfr.mp4", "h264-vfr.mkv", "vp9-vfr.webm"])
def test_a_window_on_a_variable_rate_file_takes_the_frames_shown_in_it(zoo, name):
    """D3: frames shown at 0.5 s to 1.5 s by their own timestamps, not frames 12.5 to 37.5 of
    the average rate."""
    path, frames = zoo[name]
    _, times = frame_times(CLIPS[name])
    inside = [i for i, pts in enumerate(times) if Fraction(1, 2) <= Fraction(pts, 100) < Fraction(3, 2)]
    for mode, seed in DRAWS:
        indices = sample_frame_indices(len(inside), 4, mode, random.Random(seed))
        want = torch.from_numpy(np.stack([frames[inside[i]] for i in indices]))
        assert torch.equal(read_video(path, 4, mode, random.Random(seed), window=(0.5, 1.5)), want)


def test_rotation_is_the_display_matrix(zoo):
    """D4, independently of the reference's turn: a phone's portrait video (stored landscape,
    rotate=90 in ffmpeg's metadata) is returned portrait, its top row being the stored left column."""
    path, _ = zoo["h264-rotate-90.mp4"]
    clip = read_video(path, 1, "uniform")
    assert clip.shape == (1, 3, 64, 32)
    with av.open(str(path)) as container:
        middle = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][29]  # uniform 1 of 60
    clockwise = middle[::-1].transpose(1, 0, 2)
    assert torch.equal(clip[0].permute(1, 2, 0), torch.from_numpy(clockwise.copy()))


# --- broken files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken(zoo, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    faststart = write_faststart_clip(folder / "faststart.mp4")
    files = {}
    for name, source, keep in [
        ("truncated-index-at-end.mp4", zoo["h264-main-bframes.mp4"][0], 0.6),
        ("truncated-index-first.mp4", faststart, 0.6),
        ("truncated.avi", zoo["mpeg4-bframes.avi"][0], 0.6),
    ]:
        files[name] = folder / name
        files[name].write_bytes(source.read_bytes()[: int(source.stat().st_size * keep)])
    return files


@pytest.mark.parametrize("name", ["truncated-index-at-end.mp4", "truncated-index-first.mp4", "truncated.avi"])
def test_truncated_files_raise_media_error_naming_them(broken, name):
    for mode, seed in DRAWS:
        with pytest.raises(MediaError, match=name) as info:
            read_video(broken[name], 4, mode, random.Random(seed))
        assert info.value.path == str(broken[name])


@pytest.mark.parametrize("name", ["h264-high-pyramid.mkv", "vp9.webm", "h264-long-audio.mkv"])
@pytest.mark.parametrize("keep", [0.3, 0.7, 0.95])
def test_truncated_matroska_raises_media_error_naming_it(zoo, tmp_path, name, keep):
    """A Matroska/WebM file written by a muxer that could seek back says its own size."""
    source = zoo[name][0]
    cut = tmp_path / name
    cut.write_bytes(source.read_bytes()[: int(source.stat().st_size * keep)])
    for mode, seed in DRAWS:
        with pytest.raises(MediaError, match=f"{cut}: truncated"):
            read_video(cut, 4, mode, random.Random(seed))


@pytest.mark.parametrize("name", ["h264-bframes.ts", "h264-pipe.mkv", "vp9-pipe.webm"])
def test_truncated_ts_and_piped_matroska_read_as_the_clip_they_decode_to(zoo, tmp_path, name):
    """Nothing in the file reveals the cut: the packets that are there are counted, so the file
    reads as the shorter clip a full decode gives, whichever frames are drawn."""
    source = zoo[name][0]
    cut = tmp_path / name
    cut.write_bytes(source.read_bytes()[: int(source.stat().st_size * 0.7)])
    frames = reference(cut)
    assert 10 < len(frames) < NUM_FRAMES
    for mode, seed in DRAWS:
        assert torch.equal(read_video(cut, 4, mode, random.Random(seed)), expected(frames, 4, mode, seed))


@pytest.fixture(scope="module")
def corrupt(zoo, tmp_path_factory) -> dict[str, Path]:
    """A packet of a P-frame in the middle (frame 30-ish) overwritten with noise."""
    folder = tmp_path_factory.mktemp("corrupt")
    return {name: corrupt_packet(zoo[name][0], folder / name, 30) for name in ("h264-main-bframes.mp4", "vp9.webm")}


@pytest.mark.parametrize("name", ["h264-main-bframes.mp4", "vp9.webm"])
def test_a_corrupt_packet_fails_every_read_that_reaches_it_the_same_way(corrupt, name):
    """D7: the decoder rejects the packet; a read that needs it decodes the whole file, which
    fails there too, so every such read raises the same MediaError naming the file. A read that
    never decodes the packet (its frames before it, or after a later keyframe) gives its frames."""
    path = corrupt[name]
    with pytest.raises(av.InvalidDataError):  # the reference decode fails: the file is broken
        reference(path)
    reasons, read = set(), 0
    for mode, seed in DRAWS + [("rand", seed) for seed in range(6, 30)]:
        try:
            frames = read_video(path, 4, mode, random.Random(seed))
        except MediaError as err:
            assert err.path == str(path) and str(path) in str(err)
            reasons.add(err.reason)
            continue
        assert numbers(list(frames.numpy()), CLIPS[name]) == sample_frame_indices(60, 4, mode, random.Random(seed))
        read += 1
    assert len(reasons) == 1 and "whole file" in reasons.pop()
    assert read < 30  # the h264 file reads when no frame needs the packet, the VP9 one never


def identity(clip: torch.Tensor) -> torch.Tensor:
    return clip


def dataset(paths: list[Path]) -> VideoTextDataset:
    records = [VideoRecord(path.name, path, ["a caption"]) for path in paths]
    return VideoTextDataset(records, 4, identity, train=True)


def test_the_dataset_skips_a_corrupt_file_for_the_rest_of_the_run_once_a_read_fails(corrupt):
    """D7: after its first failed read the record is skipped on every draw, even those whose
    frames the seeking reader could have decoded."""
    data = dataset([corrupt["h264-main-bframes.mp4"]])
    items = [data[(0, seed)] for seed in range(30)]
    first_failure = next(k for k, item in enumerate(items) if item is None)
    assert all(item is None for item in items[first_failure:])
    assert any(read_video(corrupt["h264-main-bframes.mp4"], 4, "rand", random.Random(s)) is not None for s in range(30))


@pytest.mark.parametrize("workers", [0, 2])
def test_the_dataset_drops_no_intact_file(zoo, workers):
    """Every intact zoo file through ``VideoTextDataset`` and a DataLoader: no item dropped, each
    the reference's frames for its seed."""
    names = list(CLIPS)
    keys = [(i, seed) for seed in range(2) for i in range(len(names))]
    loader = torch.utils.data.DataLoader(
        dataset([zoo[n][0] for n in names]), sampler=keys, batch_size=4, num_workers=workers, collate_fn=list
    )
    items = [item for batch in loader for item in batch]
    assert all(item is not None for item in items)
    for (i, seed), item in zip(keys, items):
        assert item["video_id"] == names[i]
        assert torch.equal(item["video"], expected(zoo[names[i]][1], 4, "rand", seed)), names[i]
