"""Reading frames from videos and images, and the clip transforms of Frozen / MILES.

Decoding is the data pipeline's main cost: a web video holds hundreds of frames and a training
clip needs four. ``read_video`` therefore seeks to the keyframe before each wanted frame and
decodes only from there; ``read_video_full_decode`` decodes everything and is kept as the
reference the seeking reader is tested and benchmarked against. Both raise ``MediaError``
rather than return placeholder frames, so a broken file is skipped, never trained on.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAMPLE_MODES = ("rand", "uniform", "released_uniform")
# A seek (flush the decoder, decode again from a keyframe) costs about as much as decoding 3-6
# frames on the benchmark's clips, so the reader seeks only when that skips more frames than this.
SEEK_MIN_SKIP = 8
Window = tuple[float, float]


class MediaError(Exception):
    """A video or image that cannot give the frames asked for (missing, empty, truncated, undecodable)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def sample_frame_indices(
    num_total: int, num_frames: int, mode: str, rng: random.Random | None = None
) -> list[int]:
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


class _FrameClock:
    """Converts between frame indices and presentation timestamps of a constant-rate stream.

    Frame 0 is the first decoded frame, not ``stream.start_time``: in AVI files with B-frames the
    two differ by the reordering delay.
    """

    def __init__(self, stream: av.video.stream.VideoStream, first_pts: int, path: Path) -> None:
        rate = stream.average_rate or stream.guessed_rate
        if not rate or stream.time_base is None:
            raise MediaError(path, "stream has no frame rate or time base")
        self.start = first_pts
        self.ticks_per_frame = 1 / (Fraction(rate) * stream.time_base)

    def pts(self, index: int) -> int:
        return self.start + round(index * self.ticks_per_frame)

    def index(self, pts: int) -> int:
        return round((pts - self.start) / self.ticks_per_frame)


def _frame_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """The container's frame count, else duration x frame rate (rounded down, so it never overshoots)."""
    if stream.frames > 0:
        return stream.frames
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration is not None and stream.time_base is not None:
        seconds = stream.duration * stream.time_base
    elif container.duration is not None:
        seconds = Fraction(container.duration, av.time_base)
    else:
        return 0
    return int(seconds * Fraction(rate)) if rate else 0


@contextmanager
def _open_video(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open the first video stream; any FFmpeg failure, now or while decoding, becomes a MediaError."""
    if not path.is_file():
        raise MediaError(path, "file not found")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            _check_complete(path, stream)
            stream.thread_type = "AUTO"
            yield container, stream
    except av.FFmpegError as err:
        raise MediaError(path, f"{type(err).__name__}: {err}") from err


def _check_complete(path: Path, stream: av.video.stream.VideoStream) -> None:
    """A file shorter than its own index says is truncated, and unreadable as a whole.

    A truncated mp4 whose index comes first (as web video's does) still opens, and the frames
    before the cut still decode: whether a clip could be read would then depend on which frames
    were sampled (a different answer each epoch in training, a partly decoded last frame at the
    cut). So any truncation the index reveals makes the file unreadable, whichever frames are
    asked for. Files without an index are read as far as the sampled frames need; a frame past
    the end is a ``MediaError`` too.
    """
    end = max((e.pos + e.size for e in stream.index_entries if e.pos >= 0), default=0)
    size = path.stat().st_size
    if end > size:
        raise MediaError(path, f"truncated: {size} bytes, but the index refers to bytes up to {end}")


def _rgb(frame: av.VideoFrame, reformatter: VideoReformatter) -> np.ndarray:
    """RGB pixels of a frame. One reformatter per clip keeps its colour converter (swscale) set
    up across frames: ``frame.to_ndarray`` builds one per frame, which can cost more than decoding it."""
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def _to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def _frame_rate(path: Path, stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise MediaError(path, "stream has no frame rate")
    return Fraction(rate)


def _window_frames(path: Path, stream: av.video.stream.VideoStream, total: int, window: Window) -> tuple[int, int]:
    """The frames ``[first, stop)`` shown within ``window`` seconds of the clip's first frame.

    Frame ``i`` is shown at ``i / fps``. Annotated segments (ActivityNet, DiDeMo) often end a
    little past the video's last frame, so the window is clipped to the clip; a window shorter
    than a frame gives the first frame at or after its start; one starting past the end, the last frame.
    """
    start_s, end_s = window
    if not 0 <= start_s <= end_s:
        raise ValueError(f"window {window!r} is not (start_s, end_s) with 0 <= start_s <= end_s")
    rate = _frame_rate(path, stream)
    # decimal seconds as written (1.2, not the binary float 1.19999...) so 1.2 s x 25 fps is frame 30
    first = min(math.ceil(Fraction(repr(float(start_s))) * rate), total - 1)
    stop = min(math.ceil(Fraction(repr(float(end_s))) * rate), total)
    return first, max(stop, first + 1)


def _sample(
    path: Path,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    num_frames: int,
    mode: str,
    rng: random.Random | None,
    window: Window | None,
) -> tuple[int, list[int]]:
    """The clip's frame count and the frame indices to read (within ``window``, if given)."""
    total = _frame_count(container, stream)
    if total < 1:
        raise MediaError(path, "cannot tell how many frames the video has")
    if window is None:
        return total, sample_frame_indices(total, num_frames, mode, rng)
    first, stop = _window_frames(path, stream, total, window)
    return total, [first + i for i in sample_frame_indices(stop - first, num_frames, mode, rng)]


def video_duration(path: str | Path) -> float:
    """The video stream's length in seconds: its duration in the container, else frames / fps.

    For turning annotated segments into ``read_video`` windows, or checking them against the clip.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
        total = _frame_count(container, stream)
        if total < 1:
            raise MediaError(path, "cannot tell how long the video is")
        return float(total / _frame_rate(path, stream))


def read_video(
    path: str | Path, num_frames: int, mode: str, rng: random.Random | None = None, window: Window | None = None
) -> torch.Tensor:
    """Sample ``num_frames`` frames as uint8 (T, C, H, W), decoding only what they need.

    ``window=(start_s, end_s)`` samples only among the frames shown in that time range (seconds
    from the first frame), e.g. an annotated segment of a long video.

    Decoding starts at the first frame. For each wanted frame the reader looks up, in the
    container's index, the keyframe a seek would land on; if that skips more than
    ``SEEK_MIN_SKIP`` frames past the one just decoded, it seeks there, else it keeps decoding
    (the wanted frame is then within the frames being decoded anyway). Frames are matched by
    timestamp, so a constant-rate stream gives exactly the frames of the full decode.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        total, indices = _sample(path, container, stream, num_frames, mode, rng, window)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is None or first.pts is None:
            raise MediaError(path, "no decodable frame with a timestamp")
        clock = _FrameClock(stream, first.pts, path)
        frames = itertools.chain([first], frames)
        keyframes = [entry.timestamp for entry in stream.index_entries if entry.is_keyframe]
        last_pts = first.pts
        reformatter = VideoReformatter()
        decoded: dict[int, np.ndarray] = {}
        for target in sorted(set(indices)):
            if _landing(keyframes, clock, target) - clock.index(last_pts) > SEEK_MIN_SKIP:
                frames = _seek(container, stream, clock, target)
            for frame in frames:
                if frame.pts is None:
                    raise MediaError(path, "decoded frame has no timestamp")
                last_pts = frame.pts
                if clock.index(frame.pts) >= target:
                    decoded[target] = _rgb(frame, reformatter)
                    break
            else:
                raise MediaError(path, f"stream ended before frame {target} of {total}")
    return _to_tensor([decoded[i] for i in indices])


def _landing(keyframes: list[int], clock: _FrameClock, target: int) -> int:
    """The frame a seek to ``target`` lands on: the last keyframe at or before it, or ``target``
    itself when the container has no index. The index holds decode timestamps, which precede
    presentation by the codec's reordering delay: an estimate off by a frame or two, on the side
    of seeking less, that affects speed only, never which frame is returned."""
    if not keyframes:
        return target
    i = bisect.bisect_right(keyframes, clock.pts(target))
    return clock.index(keyframes[i - 1]) if i else 0


def _seek(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, clock: _FrameClock, target: int
) -> Iterator[av.VideoFrame]:
    """Frames decoded from the keyframe at or before ``target``.

    Demuxers that seek by decode timestamps (AVI with B-frames) can land on a keyframe shown
    after the target; then seek further back until the first frame is not past it.
    """
    at = target
    while True:
        container.seek(clock.pts(at), backward=True, any_frame=False, stream=stream)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is None:
            return iter(())
        landed = clock.index(first.pts) if first.pts is not None else target
        if landed <= target or at == 0:
            return itertools.chain([first], frames)
        at = max(0, at - 2 * (landed - at))


def read_video_full_decode(
    path: str | Path, num_frames: int, mode: str, rng: random.Random | None = None, window: Window | None = None
) -> torch.Tensor:
    """Same contract and frames as ``read_video``, by decoding every frame of the clip.

    The baseline of ``benchmarks/bench_data_loading.py`` and the reference in the tests.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        total, indices = _sample(path, container, stream, num_frames, mode, rng, window)
        wanted = set(indices)
        reformatter = VideoReformatter()
        decoded: dict[int, np.ndarray] = {}
        count = 0
        for count, frame in enumerate(container.decode(stream), start=1):
            if count - 1 in wanted:
                decoded[count - 1] = _rgb(frame, reformatter)
    if len(decoded) < len(wanted):
        raise MediaError(path, f"stream ended after {count} of {total} frames")
    return _to_tensor([decoded[i] for i in indices])


def read_image(path: str | Path) -> torch.Tensor:
    """An image as a 1-frame uint8 clip (1, C, H, W), RGB."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(path, f"{type(err).__name__}: {err}") from err
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
        outer = round(input_res * 256 / 224)
        geometry = [v2.Resize(outer, antialias=True), v2.CenterCrop(outer), v2.Resize(input_res, antialias=True)]
    return v2.Compose([*geometry, *to_float, *normalize])
