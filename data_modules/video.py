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
import math
import random
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image
from torchvision.transforms import v2

from data_modules.video_stream import (
    Decoder,
    FrameClock,
    MediaError,
    OpenVideo,
    VideoSource,
    counted_frames,
    frame_count,
    frame_rate,
    open_video,
    source_name,
    trusted_frame_count,
    write_rgb,
)

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


def _window_frames(video: OpenVideo, total: int, window: Window) -> tuple[int, int]:
    """The frames ``[first, stop)`` shown within ``window`` seconds of the clip's first frame.

    Frame ``i`` is shown at ``i / fps``. Annotated segments (ActivityNet, DiDeMo) often end a
    little past the video's last frame, so the window is clipped to the clip; a window shorter
    than a frame gives the first frame at or after its start; one starting past the end, the last frame.
    """
    start_s, end_s = window
    if not 0 <= start_s <= end_s:
        raise ValueError(f"window {window!r} is not (start_s, end_s) with 0 <= start_s <= end_s")
    rate = frame_rate(video.path, video.stream)
    # decimal seconds as written (1.2, not the binary float 1.19999...) so 1.2 s x 25 fps is frame 30
    first = min(math.ceil(Fraction(repr(float(start_s))) * rate), total - 1)
    stop = min(math.ceil(Fraction(repr(float(end_s))) * rate), total)
    return first, max(stop, first + 1)


def _sample(
    video: OpenVideo, num_frames: int, mode: str, rng: random.Random | None, window: Window | None
) -> tuple[int, list[int]]:
    """The clip's frame count and the frame indices to read (within ``window``, if given).

    The count is the container's where it keeps one that its duration confirms (mp4's
    ``stream.frames``: no extra pass over the file), else the video packets are counted (mkv,
    webm, MPEG-TS, an mp4 whose edit list cuts frames)."""
    total = trusted_frame_count(video.path, video.stream) or counted_frames(video)
    if total < 1:
        raise MediaError(video.path, "cannot tell how many frames the video has")
    if window is None:
        return total, sample_frame_indices(total, num_frames, mode, rng)
    first, stop = _window_frames(video, total, window)
    return total, [first + i for i in sample_frame_indices(stop - first, num_frames, mode, rng)]


def video_duration(path: VideoSource) -> float:
    """The video stream's length in seconds: its duration in the container, else frames / fps.

    For turning annotated segments into ``read_video`` windows, or checking them against the clip.
    """
    with open_video(path) as video:
        path, stream = video.path, video.stream
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if video.container.duration is not None:
            return video.container.duration / av.time_base
        total = frame_count(video.container, stream)
        if total < 1:
            raise MediaError(path, "cannot tell how long the video is")
        return float(total / frame_rate(path, stream))


def read_video(
    path: VideoSource, num_frames: int, mode: str, rng: random.Random | None = None, window: Window | None = None
) -> torch.Tensor:
    """Sample ``num_frames`` frames as uint8 (T, C, H, W), decoding only what they need.

    ``path`` is a file, or a seekable binary file object holding one (``io.BytesIO`` of a shard
    member: the same frames, no temporary file). ``window=(start_s, end_s)`` samples only among
    the frames shown in that time range (seconds from the first frame), e.g. an annotated segment
    of a long video.

    Decoding starts at the first frame. For each wanted frame the reader looks up, in the
    container's index, the keyframe a seek would land on; if that skips more than
    ``SEEK_MIN_SKIP`` frames past the one just decoded, it seeks there, else it keeps decoding.
    On the way to a wanted frame the frames nothing references are not decoded at all
    (``Decoder``), and only the wanted frames are converted to RGB. Frames are matched by
    timestamp, or counted out of the decoder from the keyframe landed on where timestamps are AVI
    chunk numbers, so a constant-rate stream gives exactly the frames of the full decode.
    """
    with open_video(path) as video:
        path = video.path
        total, indices = _sample(video, num_frames, mode, rng, window)
        decoder = Decoder(video)
        frames = decoder.frames()
        first = next(frames, None)
        if first is None or (first.pts is None and not decoder.counting):
            raise MediaError(path, "no decodable frame with a timestamp")
        # counted containers: the clock converts indices to the chunk numbers seeks and the index use
        clock = FrameClock(video, decoder.first_dts if decoder.counting else first.pts)
        numbered = _numbered(decoder, clock, itertools.chain([first], frames), 0)
        last = 0
        wanted = sorted(set(indices))
        clip = np.empty((len(wanted), 3, first.height, first.width), np.uint8)
        reformatter = VideoReformatter()
        for slot, target in enumerate(wanted):
            decoder.full_from = clock.first_pts(target)
            if _landing(video.keyframes, clock, target) - last > SEEK_MIN_SKIP:
                numbered = _seek(decoder, clock, target)
            for index, frame in numbered:
                last = index
                if index >= target:
                    _write(path, frame, clip[slot], reformatter)
                    break
            else:
                raise MediaError(path, f"stream ended before frame {target} of {total}")
    return _in_order(clip, wanted, indices)


def _numbered(
    decoder: Decoder, clock: FrameClock, frames: Iterator[av.VideoFrame], start: int
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


def _landing(keyframes: list[int], clock: FrameClock, target: int) -> int:
    """The frame a seek to ``target`` lands on: the last keyframe at or before it, or ``target``
    itself when the container has no index. The index holds decode timestamps, which precede
    presentation by the codec's reordering delay: an estimate off by a frame or two, on the side
    of seeking less, that affects speed only, never which frame is returned."""
    if not keyframes:
        return target
    i = bisect.bisect_right(keyframes, clock.pts(target))
    return clock.index(keyframes[i - 1]) if i else 0


def _seek(decoder: Decoder, clock: FrameClock, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
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


def _landed(decoder: Decoder, clock: FrameClock, first: av.VideoFrame) -> int | None:
    """The index of the first frame after a seek, ``None`` if it cannot be told."""
    if decoder.counting:
        # only a keyframe out first is the keyframe landed on (its chunk number is its index)
        return clock.index(decoder.first_dts) if first.key_frame and decoder.first_dts is not None else None
    return None if first.pts is None else clock.index(first.pts)


def _rewind(decoder: Decoder, clock: FrameClock) -> Iterator[tuple[int, av.VideoFrame]]:
    """Numbered frames decoded from the first one (the stream's start is at or after 0)."""
    start = decoder.video.stream.start_time
    frames = decoder.seek(min(0, start) if start is not None else 0)
    first = next(frames, None)
    if first is None or _landed(decoder, clock, first) != 0:
        raise MediaError(decoder.video.path, "cannot seek back to the first frame")
    return _numbered(decoder, clock, itertools.chain([first], frames), 0)


def _write(path: Path, frame: av.VideoFrame, out: np.ndarray, reformatter: VideoReformatter) -> None:
    if (frame.height, frame.width) != out.shape[1:]:
        raise MediaError(path, f"frame size changes within the video: {out.shape[1:]} to {(frame.height, frame.width)}")
    write_rgb(frame, out, reformatter)


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
        path = video.path
        total, indices = _sample(video, num_frames, mode, rng, window)
        wanted = sorted(set(indices))
        clip: np.ndarray | None = None
        reformatter = VideoReformatter()
        slot = count = 0
        for count, frame in enumerate(video.container.decode(video.stream), start=1):
            if slot < len(wanted) and count - 1 == wanted[slot]:
                if clip is None:
                    clip = np.empty((len(wanted), 3, frame.height, frame.width), np.uint8)
                _write(path, frame, clip[slot], reformatter)
                slot += 1
    if clip is None or slot < len(wanted):
        raise MediaError(path, f"stream ended after {count} of {total} frames")
    return _in_order(clip, wanted, indices)


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
