"""Low-level access to one video stream with PyAV: opening, timestamps, decoding, RGB conversion.

The readers in ``data_modules.video`` decide which frames to read; this module decodes as
little as it can to get them. Decoding is single-threaded: a DataLoader already runs one reader
per core, and FFmpeg's frame threads would only add start-up and flush latency to every seek.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# A video is a file, or a seekable binary file object holding one (a shard member's bytes in an
# ``io.BytesIO``: no temporary file). Errors name a file object by its ``name`` attribute.
VideoSource = str | Path | BinaryIO

# Demuxers whose packets carry presentation timestamps (not just decode order), so a packet can
# be told to belong to a frame before the wanted one while it is still undecoded. AVI cannot.
PTS_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
# Demuxers whose timestamps may not be presentation times. AVI stores one chunk per frame in
# decode order and FFmpeg numbers the chunks; for some codecs (MPEG-4 Part 2) it works out the
# presentation times, for others (H.264) a packet's pts is its chunk number plus a constant, and
# with B-frames a decoded frame carries its chunk's number (frames 0, 1, 2, 3 of an H.264 AVI came
# out with pts 1, 4, 3, 5). Then a frame's index is counted out of the decoder from a known
# anchor: the keyframe a seek lands on, whose chunk number is its index (a closed GOP shows
# exactly the frames it holds).
COUNTED_FORMATS = frozenset({"avi"})
# packets looked at to tell chunk numbers from presentation times: several GOPs' worth of reordering
CHUNK_PROBE_PACKETS = 64


class MediaError(Exception):
    """A video or image that cannot give the frames asked for (missing, empty, truncated, undecodable)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class OpenVideo:
    path: Path  # the file, or the file object's name (what errors name)
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    keyframes: list[int]  # decode timestamps of the index's keyframes, ascending; [] without an index


def source_name(source: VideoSource) -> Path:
    """What errors call ``source``: its path, or a file object's ``name`` (``<bytes>`` without one)."""
    if isinstance(source, str | Path):
        return Path(source)
    return Path(str(getattr(source, "name", "<bytes>")))


def _source_size(source: VideoSource) -> int:
    """The size in bytes of a file, or of a seekable file object (its position is left at 0)."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise MediaError(path, "file not found")
        return path.stat().st_size
    size = source.seek(0, 2)
    source.seek(0)
    return size


@contextmanager
def open_video(source: VideoSource) -> Iterator[OpenVideo]:
    """Open the first video stream; any FFmpeg failure, now or while decoding, becomes a MediaError."""
    path = source_name(source)
    size = _source_size(source)
    if size == 0:
        raise MediaError(path, "empty file")
    try:
        with av.open(str(source) if isinstance(source, Path) else source) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            yield OpenVideo(path, container, stream, _read_index(path, size, stream))
    except av.FFmpegError as err:
        raise MediaError(path, f"{type(err).__name__}: {err}") from err


def _read_index(path: Path, size: int, stream: av.video.stream.VideoStream) -> list[int]:
    """The keyframes' timestamps, from one walk over the index that also checks the file is whole.

    A file shorter than its own index says is truncated, and unreadable as a whole. A truncated
    mp4 whose index comes first (as web video's does) still opens, and the frames before the cut
    still decode: whether a clip could be read would then depend on which frames were sampled (a
    different answer each epoch in training, a partly decoded last frame at the cut). So any
    truncation the index reveals makes the file unreadable, whichever frames are asked for.
    Files without an index are read as far as the sampled frames need; a frame past the end is
    a ``MediaError`` too.
    """
    keyframes, end = [], 0
    for entry in stream.index_entries:
        if entry.pos >= 0:
            end = max(end, entry.pos + entry.size)
        if entry.is_keyframe:
            keyframes.append(entry.timestamp)
    if end > size:
        raise MediaError(path, f"truncated: {size} bytes, but the index refers to bytes up to {end}")
    return keyframes


def frame_rate(path: Path, stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise MediaError(path, "stream has no frame rate")
    return Fraction(rate)


def frame_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
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


class FrameClock:
    """Converts between frame indices and presentation timestamps of a constant-rate stream.

    Frame 0 is the first decoded frame, not ``stream.start_time``: in AVI files with B-frames the
    two differ by the reordering delay. Frame ``i`` is the first frame whose timestamp is at
    least ``first_pts(i)``, half a frame before its nominal time.
    """

    def __init__(self, video: OpenVideo, first_pts: int) -> None:
        if video.stream.time_base is None:
            raise MediaError(video.path, "stream has no time base")
        self.start = first_pts
        self.ticks_per_frame = 1 / (frame_rate(video.path, video.stream) * video.stream.time_base)

    def pts(self, index: int) -> int:
        return self.start + round(index * self.ticks_per_frame)

    def first_pts(self, index: int) -> int:
        return self.start + math.ceil((index - Fraction(1, 2)) * self.ticks_per_frame)

    def index(self, pts: int) -> int:
        return math.floor((pts - self.start) / self.ticks_per_frame + Fraction(1, 2))


class Decoder:
    """Decodes a stream packet by packet, skipping what no wanted frame needs.

    Frames before ``full_from`` (a presentation timestamp) are not wanted: their packets are
    decoded with ``skip_frame = NONREF``, so the decoder drops the frames that no other frame
    references (in H.264 web video about half of them, B-frames, the cheap half) and still
    decodes every reference frame, which is why the wanted frame comes out exactly as in a full
    decode. Packets from ``full_from`` on, and any packet without a timestamp, are decoded in
    full; so is everything in containers whose packets do not carry presentation times.
    """

    def __init__(self, video: OpenVideo) -> None:
        self.video = video
        self.context = video.stream.codec_context
        self.can_skip = video.container.format.name in PTS_FORMATS
        self.counting = video.container.format.name in COUNTED_FORMATS and _chunk_numbered(video)
        self.full_from: int | None = None
        self.first_dts: int | None = None  # of the first packet since the start or the last seek
        self._skipping = False

    def frames(self) -> Iterator[av.VideoFrame]:
        """Frames from the current position (the start, or the last seek) in presentation order."""
        self.first_dts = None
        for packet in self.video.container.demux(self.video.stream):
            if self.first_dts is None and packet.size:
                self.first_dts = packet.dts
            skip = (
                self.can_skip and self.full_from is not None and packet.pts is not None and packet.pts < self.full_from
            )
            if skip != self._skipping:
                self.context.skip_frame = "NONREF" if skip else "DEFAULT"
                self._skipping = skip
            yield from self.context.decode(packet)

    def seek(self, pts: int) -> Iterator[av.VideoFrame]:
        """Frames from the keyframe at or before ``pts`` (by the demuxer's idea of time)."""
        self.video.container.seek(pts, backward=True, any_frame=False, stream=self.video.stream)
        return self.frames()


def _chunk_numbered(video: OpenVideo) -> bool:
    """Whether the first packets' pts are their decode order plus a constant (no reordering seen),
    read from the start, which it seeks back to. Without B-frames that is also presentation order,
    so counting frames is right either way."""
    offsets = set()
    for count, packet in enumerate(video.container.demux(video.stream), start=1):
        if packet.size and packet.pts is not None and packet.dts is not None:
            offsets.add(packet.pts - packet.dts)
        if len(offsets) > 1 or packet.size == 0 or count >= CHUNK_PROBE_PACKETS:
            break
    rewind(video)
    return len(offsets) == 1


def rewind(video: OpenVideo) -> None:
    """Seek back to the first packet. A time at or before the stream's start, not the start
    itself: MPEG-TS has no index, and a seek to its ``start_time`` landed 16 frames in."""
    start = video.stream.start_time
    video.container.seek(min(0, start) if start is not None else 0, stream=video.stream)


def trusted_frame_count(path: Path, stream: av.video.stream.VideoStream) -> int:
    """``stream.frames`` where the stream's duration agrees with it (to the nearest frame), else 0.

    An mp4 edit list that cuts frames leaves them in ``stream.frames`` but not in the duration."""
    if stream.frames <= 0:
        return 0
    if stream.duration is None or stream.time_base is None:
        return stream.frames
    shown = round(stream.duration * stream.time_base * frame_rate(path, stream))
    return stream.frames if shown == stream.frames else 0


def counted_frames(video: OpenVideo) -> int:
    """The video stream's frames, counted from its packets (demuxed, not decoded), then rewound.

    For containers that keep no frame count: their duration is often the longest stream's (an
    audio track running past the video), so duration x frame rate would promise frames that do
    not exist; and for an mp4 whose edit list cuts frames (its ``stream.frames`` counts them, the
    decoder drops them: their packets are marked discard). Every other non-empty packet of the
    codecs read here is one frame out of the decoder.
    """
    count = sum(1 for packet in video.container.demux(video.stream) if packet.size and not packet.is_discard)
    rewind(video)
    return count


def write_rgb(frame: av.VideoFrame, out: np.ndarray, reformatter: VideoReformatter) -> None:
    """Write a frame's RGB pixels into ``out``, a (3, H, W) uint8 array.

    The caller keeps one ``reformatter`` per clip: ``frame.to_ndarray`` would set up swscale's
    converter for every frame, which can cost more than decoding the frame. It lives no longer
    than the clip on purpose: swscale runs worker threads, and a converter inherited by a forked
    DataLoader worker waits for them forever. Packed ``rgb24`` it is: PyAV's planar ``gbrp``
    output, which would skip the transpose, came out wrong on some frame sizes.
    """
    out[:] = reformatter.reformat(frame, format="rgb24").to_ndarray().transpose(2, 0, 1)
