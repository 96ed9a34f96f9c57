"""The seeking reader as it was before it skipped non-reference frames (kept for the "before" column
of ``bench_reader.py`` only): full decode from each keyframe, frame threads, packed RGB then transpose."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from data_modules.video import sample_frame_indices
from data_modules.video_stream import MediaError

SEEK_MIN_SKIP = 8


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


def _sample(
    path: Path,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    num_frames: int,
    mode: str,
    rng: random.Random | None,
) -> tuple[int, list[int]]:
    total = _frame_count(container, stream)
    if total < 1:
        raise MediaError(path, "cannot tell how many frames the video has")
    return total, sample_frame_indices(total, num_frames, mode, rng)


def read_video(path: str | Path, num_frames: int, mode: str, rng: random.Random | None = None) -> torch.Tensor:
    """Sample ``num_frames`` frames as uint8 (T, C, H, W), decoding only what they need.

    Decoding starts at the first frame. For each wanted frame the reader looks up, in the
    container's index, the keyframe a seek would land on; if that skips more than
    ``SEEK_MIN_SKIP`` frames past the one just decoded, it seeks there, else it keeps decoding
    (the wanted frame is then within the frames being decoded anyway). Frames are matched by
    timestamp, so a constant-rate stream gives exactly the frames of the full decode.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        total, indices = _sample(path, container, stream, num_frames, mode, rng)
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
