"""Reading frames from videos and images, and the clip transforms of Frozen / MILES.

Decoding is the data pipeline's main cost: a web video holds hundreds of frames and a training
clip needs four. ``read_video`` therefore seeks to the keyframe before each wanted frame and
decodes only from there, skipping the frames nothing depends on (``video_stream.Decoder``);
``read_video_full_decode`` decodes everything and is kept as the
reference the seeking reader is tested and benchmarked against. Both raise ``MediaError``
rather than return placeholder frames, so a broken file is skipped, never trained on.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image
from torchvision.transforms import v2

from data_modules.video_stream import (
    Clock,
    Decoder,
    FrameClock,
    MediaError,
    OpenVideo,
    TableClock,
    VideoSource,
    counted_frames,
    frame_rate,
    open_video,
    quarter_turns,
    source_name,
    trusted_frame_count,
    write_rgb,
)

log = logging.getLogger("data_modules")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAMPLE_MODES = ("rand", "uniform", "released_uniform")
# A seek (flush the decoder, decode again from a keyframe) costs about as much as decoding 3-6
# frames on the benchmark's clips, so the reader seeks only when that skips more frames than this.
SEEK_MIN_SKIP = 8
Window = tuple[float, float]


def sample_frame_indices(num_total: int, num_frames: int, mode: str, rng: random.Random | None = None) -> list[int]:
    """Pick ``num_frames`` sorted indices from ``[0, num_total)``, one in each of equal segments.

    ``rand`` draws a random frame in each segment (training, a different clip every epoch);
    ``uniform`` takes each segment's middle (testing, deterministic). A video shorter than
    ``num_frames`` repeats its frames evenly in both modes. ``released_uniform`` gives the frames
    the released MSR-VTT evaluation decodes (see ``released_frame_indices``): fewer than
    ``num_frames`` for a video that short.
    """
    if mode not in SAMPLE_MODES:
        raise ValueError(f"frame sampling mode {mode!r} is not one of {', '.join(SAMPLE_MODES)}")
    if num_total < 1 or num_frames < 1:
        raise ValueError(f"need at least one frame, got num_total={num_total}, num_frames={num_frames}")
    if mode == "released_uniform":
        return released_frame_indices(num_total, num_frames)
    if num_total < num_frames:
        return [i * num_total // num_frames for i in range(num_frames)]
    rng = rng or random
    edges = [i * num_total // num_frames for i in range(num_frames + 1)]
    if mode == "rand":
        return [rng.randrange(start, end) for start, end in zip(edges, edges[1:])]
    return [(start + end - 1) // 2 for start, end in zip(edges, edges[1:])]


def released_frame_indices(num_total: int, num_frames: int) -> list[int]:
    """The frames the released evaluation decodes: ``min(num_frames, num_total)`` of them.

    Its ``uniform`` sampling splits ``numpy.linspace(0, n, k + 1).astype(int)`` into segments
    ``[start, end - 1]`` and takes ``(start + end - 1) // 2`` of each; its cv2 reader then seeks
    to ``index - 1`` before reading, so it decodes the frame before that. OpenCV's seek clamps a
    negative position to the first frame, hence ``max(index - 1, 0)``. A video of fewer than
    ``num_frames`` frames gives one index per frame; the release pads such clips with zeros
    after normalisation (``VideoTextDataset`` does the same for this mode).
    """
    count = min(num_frames, num_total)
    edges = np.linspace(0, num_total, count + 1).astype(int).tolist()
    return [max((start + end - 1) // 2 - 1, 0) for start, end in zip(edges, edges[1:])]


@dataclass(frozen=True)
class FrameTable:
    """What is known of a clip's frames before decoding: how many there are and, where the
    frame rate varies, each one's presentation timestamp (``None``: constant, index x rate)."""

    total: int
    times: list[int] | None = None

    def clock(self, video: OpenVideo, first_pts: int) -> Clock:
        return TableClock(self.times) if self.times else FrameClock(video, first_pts)


def frame_table(video: OpenVideo) -> FrameTable:
    """The clip's frames: counted (see ``counted_frames``) unless the container's count can be
    trusted and the index shows a constant rate (mp4 indexes every frame: no extra pass).

    Variable frame rates (phone and screen recordings, edited web video) are told from the
    timestamps: the rate is constant where every frame's timestamp rounds to its index at the
    average rate. Only then do indices map to times; otherwise each frame's timestamp is kept and
    frame ``k`` is the ``k``-th frame shown, as in a full decode."""
    total = trusted_frame_count(video)
    # an index that does not list every frame cannot tell a variable rate: taken as constant
    if total and (len(video.decode_times) != total or _constant_rate(video, video.decode_times)):
        return FrameTable(total)
    scan = counted_frames(video)
    if scan.total < 1:
        raise MediaError(video.path, "cannot tell how many frames the video has")
    if len(scan.keyframes) > len(video.keyframes):
        video.keyframes = scan.keyframes  # seeks can skip frames in Matroska and MPEG-TS too
    times = scan.times
    return FrameTable(scan.total, None if times is None or _constant_rate(video, times) else times)


def _constant_rate(video: OpenVideo, times: list[int]) -> bool:
    """Whether the ``k``-th of the ascending ``times`` is frame ``k`` at the average frame rate."""
    clock = FrameClock(video, times[0])
    return all(clock.index(pts) == k for k, pts in enumerate(times))


def _window_frames(video: OpenVideo, table: FrameTable, window: Window) -> tuple[int, int]:
    """The frames ``[first, stop)`` shown within ``window`` seconds of the clip's first frame.

    Frame ``i`` is shown at ``i / fps``, or at its own timestamp where the rate varies.
    Annotated segments (ActivityNet, DiDeMo) often end a little past the video's last frame, so
    the window is clipped to the clip; a window shorter than a frame gives the first frame at or
    after its start; one starting past the end, the last frame.
    """
    start_s, end_s = window
    if not 0 <= start_s <= end_s:
        raise ValueError(f"window {window!r} is not (start_s, end_s) with 0 <= start_s <= end_s")
    # decimal seconds as written (1.2, not the binary float 1.19999...) so 1.2 s x 25 fps is frame 30
    start, end = Fraction(repr(float(start_s))), Fraction(repr(float(end_s)))
    if table.times:
        shown = [(pts - table.times[0]) * video.stream.time_base for pts in table.times]
        first, stop = bisect.bisect_left(shown, start), bisect.bisect_left(shown, end)
    else:
        rate = frame_rate(video.path, video.stream)
        first, stop = math.ceil(start * rate), math.ceil(end * rate)
    first = min(first, table.total - 1)
    return first, max(min(stop, table.total), first + 1)


def _sample(
    video: OpenVideo, table: FrameTable, num_frames: int, mode: str, rng: random.Random | None, window: Window | None
) -> list[int]:
    """The frame indices to read (within ``window``, if given)."""
    if window is None:
        return sample_frame_indices(table.total, num_frames, mode, rng)
    first, stop = _window_frames(video, table, window)
    return [first + i for i in sample_frame_indices(stop - first, num_frames, mode, rng)]


def video_duration(path: VideoSource) -> float:
    """The video stream's length in seconds: its duration in the container, else frames / fps.

    For turning annotated segments into ``read_video`` windows, or checking them against the clip.
    """
    with open_video(path) as video:
        stream = video.stream
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if video.container.duration is not None:
            return video.container.duration / av.time_base
        return float(frame_table(video).total / frame_rate(video.path, stream))


def read_video(
    path: VideoSource, num_frames: int, mode: str, rng: random.Random | None = None, window: Window | None = None
) -> torch.Tensor:
    """Sample ``num_frames`` frames as uint8 (T, C, H, W), decoding only what they need.

    ``path`` is a file, or a seekable binary file object holding one (``io.BytesIO`` of a shard
    member: the same frames, no temporary file). ``window=(start_s, end_s)`` samples only among
    the frames shown in that time range (seconds from the first frame), e.g. an annotated segment
    of a long video. Frame ``k`` is the ``k``-th frame shown (``frame_table``: also at a variable
    frame rate), turned as the stream's display matrix says (a phone's portrait video comes out
    portrait); the sample aspect ratio is left as stored (non-square pixels are not resized).

    Decoding starts at the first frame. For each wanted frame the reader looks up, in the
    container's index, the keyframe a seek would land on; if that skips more than
    ``SEEK_MIN_SKIP`` frames past the one just decoded, it seeks there, else it keeps decoding.
    On the way to a wanted frame the frames nothing references are not decoded at all
    (``Decoder``), and only the wanted frames are converted to RGB. Frames are matched by
    timestamp, or counted out of the decoder from the keyframe landed on where timestamps are AVI
    chunk numbers, so the frames are exactly those of the full decode.

    A read that fails after the file has opened and its frames were counted (a packet the
    decoder rejects, as a locally corrupt file has) decodes the whole file instead: it then gives
    the frames of the full decode, or fails with the full decode's error, the same whichever
    frames were drawn (``VideoTextDataset`` then skips the file for the rest of the run). A read
    that never decodes the damaged packet still succeeds: damage is found when a read reaches
    it, as a full check of every file on every first read would cost a full decode each.
    """
    with open_video(path) as video:
        table = frame_table(video)
        indices = _sample(video, table, num_frames, mode, rng, window)
        try:
            return _read_seeking(video, table, indices)
        except (MediaError, av.FFmpegError) as err:
            # its message only: the traceback holds the decoder and its swscale threads, which a
            # DataLoader worker forked while they live would wait for forever
            failure = str(err)
    return _read_after_failure(path, table, indices, failure)


def _read_seeking(video: OpenVideo, table: FrameTable, indices: list[int]) -> torch.Tensor:
    """The frames ``indices``, decoded by seeking as ``read_video`` describes."""
    path = video.path
    decoder = Decoder(video)
    frames = decoder.frames()
    first = next(frames, None)
    if first is None or (first.pts is None and not decoder.counting):
        raise MediaError(path, "no decodable frame with a timestamp")
    # counted containers: the clock converts indices to the chunk numbers seeks and the index use
    clock = table.clock(video, decoder.first_dts if decoder.counting else first.pts)
    numbered = _numbered(decoder, clock, itertools.chain([first], frames), 0)
    last = 0
    wanted = sorted(set(indices))
    turns = quarter_turns(first)
    clip = _new_clip(len(wanted), first, turns)
    reformatter = VideoReformatter()
    for slot, target in enumerate(wanted):
        decoder.full_from = clock.first_pts(target)
        if _landing(video.keyframes, clock, target) - last > SEEK_MIN_SKIP:
            numbered = _seek(decoder, clock, target)
        for index, frame in numbered:
            last = index
            if index >= target:
                _write(path, frame, clip[slot], reformatter, turns)
                break
        else:
            raise MediaError(path, f"stream ended before frame {target} of {table.total}")
    return _in_order(clip, wanted, indices)


def _read_after_failure(source: VideoSource, table: FrameTable, indices: list[int], failure: str) -> torch.Tensor:
    """The frames of a full decode after the seeking read failed with ``failure``: the file's
    frames if it decodes whole (the seeking read's failure is then logged), else a MediaError
    that says the whole file was decoded, the same one on every read."""
    try:
        with open_video(source) as video:
            clip = _decode_all(video, table.total, indices)
    except MediaError as err:
        # not the seeking read's own error, which depends on the frames drawn
        raise MediaError(err.path, f"{err.reason} (decoding the whole file, after a read failed)") from None
    log.warning("%s: the seeking read failed (%s), a full decode gave the frames", source_name(source), failure)
    return clip


def _numbered(
    decoder: Decoder, clock: Clock, frames: Iterator[av.VideoFrame], start: int
) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` for frames decoded from one that is frame ``start``: by timestamp, or
    counted out of the decoder in containers whose timestamps are not presentation times."""
    if decoder.counting:
        yield from enumerate(frames, start)
        return
    for frame in frames:
        if frame.pts is None:
            raise MediaError(decoder.video.path, "decoded frame has no timestamp")
        yield clock.index(frame.pts), frame


def _landing(keyframes: list[int], clock: Clock, target: int) -> int:
    """The frame a seek to ``target`` lands on: the last keyframe at or before it, or ``target``
    itself when the container has no index. The index holds decode timestamps, which precede
    presentation by the codec's reordering delay: an estimate off by a frame or two, on the side
    of seeking less, that affects speed only, never which frame is returned."""
    if not keyframes:
        return target
    i = bisect.bisect_right(keyframes, clock.pts(target))
    return clock.index(keyframes[i - 1]) if i else 0


def _seek(decoder: Decoder, clock: Clock, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """Numbered frames decoded from a keyframe at or before ``target``, never one after it.

    Demuxers that seek by decode timestamps (AVI with B-frames) or by a search over the file's
    bytes (MPEG-TS, no index) can land on a keyframe shown after the target, or past the end (no
    frame at all); then seek further back, and as a last resort decode from the start.
    """
    at = target
    while at > 0:
        frames = decoder.seek(clock.pts(at))
        first = next(frames, None)
        landed = None if first is None else _landed(decoder, clock, first)
        if landed is not None and landed <= target:
            return _numbered(decoder, clock, itertools.chain([first], frames), landed)
        over = 0 if landed is None else landed - target
        at = max(0, target - max(2 * (target - at), 2 * over, SEEK_MIN_SKIP))
    return _rewind(decoder, clock)


def _landed(decoder: Decoder, clock: Clock, first: av.VideoFrame) -> int | None:
    """The index of the first frame after a seek, ``None`` if it cannot be told."""
    if decoder.counting:
        # only a keyframe out first is the keyframe landed on (its chunk number is its index)
        return clock.index(decoder.first_dts) if first.key_frame and decoder.first_dts is not None else None
    return None if first.pts is None else clock.index(first.pts)


def _rewind(decoder: Decoder, clock: Clock) -> Iterator[tuple[int, av.VideoFrame]]:
    """Numbered frames decoded from the first one (the stream's start is at or after 0)."""
    start = decoder.video.stream.start_time
    frames = decoder.seek(min(0, start) if start is not None else 0)
    first = next(frames, None)
    if first is None or _landed(decoder, clock, first) != 0:
        raise MediaError(decoder.video.path, "cannot seek back to the first frame")
    return _numbered(decoder, clock, itertools.chain([first], frames), 0)


def _new_clip(count: int, first: av.VideoFrame, turns: int) -> np.ndarray:
    """Room for ``count`` frames the size of ``first`` as shown after ``turns`` quarter turns."""
    height, width = (first.width, first.height) if turns % 2 else (first.height, first.width)
    return np.empty((count, 3, height, width), np.uint8)


def _write(path: Path, frame: av.VideoFrame, out: np.ndarray, reformatter: VideoReformatter, turns: int) -> None:
    shown = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
    if shown != out.shape[1:]:
        raise MediaError(path, f"frame size changes within the video: {out.shape[1:]} to {shown}")
    write_rgb(frame, out, reformatter, turns)


def _in_order(clip: np.ndarray, wanted: list[int], indices: list[int]) -> torch.Tensor:
    """The clip of ``indices`` from the decoded frames of ``wanted`` (its sorted distinct values)."""
    if wanted != indices:
        clip = clip[[wanted.index(i) for i in indices]]
    return torch.from_numpy(clip)


def read_video_full_decode(
    path: VideoSource, num_frames: int, mode: str, rng: random.Random | None = None, window: Window | None = None
) -> torch.Tensor:
    """Same contract and frames as ``read_video``, by decoding every frame of the clip.

    Frame ``i`` is simply the ``i``-th frame out of the decoder: the reference the seeking reader
    is tested against, and the baseline of the benchmarks.
    """
    with open_video(path) as video:
        table = frame_table(video)
        return _decode_all(video, table.total, _sample(video, table, num_frames, mode, rng, window))


def _decode_all(video: OpenVideo, total: int, indices: list[int]) -> torch.Tensor:
    """The frames ``indices`` of a decode of every frame; a MediaError unless all ``total`` decode."""
    wanted = sorted(set(indices))
    clip: np.ndarray | None = None
    reformatter = VideoReformatter()
    slot = count = turns = 0
    for count, frame in enumerate(video.container.decode(video.stream), start=1):
        if clip is None:
            turns = quarter_turns(frame)
            clip = _new_clip(len(wanted), frame, turns)
        if slot < len(wanted) and count - 1 == wanted[slot]:
            _write(video.path, frame, clip[slot], reformatter, turns)
            slot += 1
    if clip is None or count < total:
        raise MediaError(video.path, f"stream ended after {count} of {total} frames")
    return _in_order(clip, wanted, indices)


def checked_frames(video: OpenVideo) -> Iterator[av.VideoFrame]:
    """Every frame of the video stream, failing where the file is damaged: for ``vtr preprocess``
    and ``vtr shard``, which decode every frame anyway and so leave a locally corrupt file out on
    every run, where ``read_video`` finds the damage only when a draw reaches it.

    Damage is what the decoder rejects (an FFmpeg error, a MediaError once out of ``open_video``),
    conceals (a frame FFmpeg flags corrupt, patched from its neighbours) or drops (fewer frames
    than ``frame_table`` counts). Not ``err_detect=explode``: that also rejects intact stream
    copies cut mid-GOP, whose leading frames lack their reference."""
    total = frame_table(video).total
    count = 0
    for count, frame in enumerate(video.container.decode(video.stream), start=1):
        if frame.is_corrupt:
            raise MediaError(video.path, f"frame {count - 1} is corrupt (the decoder concealed damage)")
        yield frame
    if count < total:
        raise MediaError(video.path, f"stream ended after {count} of {total} frames")


def check_video(path: VideoSource) -> None:
    """Decode every frame (``checked_frames``; no RGB conversion): a MediaError naming the file
    unless it decodes whole."""
    with open_video(path) as video:
        for _ in checked_frames(video):
            pass


def read_image(path: VideoSource) -> torch.Tensor:
    """An image (a file, or a binary file object holding one) as a 1-frame uint8 clip (1, C, H, W), RGB."""
    name = source_name(path)
    if isinstance(path, str | Path) and not name.is_file():
        raise MediaError(name, "file not found")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(name, f"{type(err).__name__}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).contiguous()


def build_transform(
    input_res: int,
    train: bool,
    hflip: bool = True,
    crop_scale: tuple[float, float] = (0.5, 1.0),
    *,
    released: bool = False,
) -> v2.Compose:
    """Frozen's clip augmentation on a uint8 (T, C, H, W) tensor or ``tv_tensors.Video``.

    One call draws one crop and one flip and applies them to every frame, so a clip stays a
    consistent clip. Training: RandomResizedCrop(``crop_scale``) + horizontal flip (``hflip``; turn it
    off where captions say left or right, as the demo corpus's do). Testing: resize
    to 256/224 of the input size, centre crop, resize to the input size. Geometry runs on uint8
    (cheaper, antialiased), then float32 in [0, 1] and ImageNet normalisation.

    ``released`` (testing only): the released MSR-VTT evaluation's transform, which converts to
    float first and then resizes to 256, centre-crops 256 and resizes to ``input_res`` bilinearly
    without antialiasing (the tensor resize of the torchvision it was written for).
    """
    if train and released:
        raise ValueError("the released transform is a test-time transform; training uses ours")
    to_float = [v2.ToDtype(torch.float32, scale=True)]
    normalize = [v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if released:
        geometry = [v2.Resize(256, antialias=False), v2.CenterCrop(256), v2.Resize(input_res, antialias=False)]
        return v2.Compose([*to_float, *geometry, *normalize])
    if train:
        geometry = [v2.RandomResizedCrop(input_res, scale=tuple(crop_scale), antialias=True)]
        geometry += [v2.RandomHorizontalFlip()] if hflip else []
    else:
        geometry = eval_geometry(input_res)
    return v2.Compose([*geometry, *to_float, *normalize])


def eval_geometry(input_res: int) -> list[v2.Transform]:
    """Our test-time geometry: resize to 256/224 of the input size, centre crop, resize to it.
    Apart from the transform so that a map of the same frame (what covers each pixel, for the
    probes of ``vtr.probes``) lands on the pixels the model sees."""
    outer = round(input_res * 256 / 224)
    return [v2.Resize(outer, antialias=True), v2.CenterCrop(outer), v2.Resize(input_res, antialias=True)]
