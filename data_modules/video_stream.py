"""Low-level access to one video stream with PyAV: opening, timestamps, decoding, RGB conversion.

The readers in ``data_modules.video`` decide which frames to read; this module decodes as
little as it can to get them. Decoding is single-threaded: a DataLoader already runs one reader
per core, and FFmpeg's frame threads would only add start-up and flush latency to every seek.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, NamedTuple

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
EBML_HEADER, MATROSKA_SEGMENT = 0x1A45DFA3, 0x18538067  # element IDs opening every Matroska file
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
    # decode timestamps of every index entry: every frame in mp4, only keyframes in Matroska's cues
    decode_times: list[int]
    starts_on_key: bool  # the index's first entry is a keyframe (not a stream copy cut mid-GOP)


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
    end = matroska_end(_head(source))
    if end is not None and end > size:
        raise MediaError(path, f"truncated: {size} bytes, but the Matroska segment ends at byte {end}")
    try:
        with av.open(str(source) if isinstance(source, Path) else source) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            yield OpenVideo(path, container, stream, *_read_index(path, size, stream))
    except av.FFmpegError as err:
        raise MediaError(path, f"{type(err).__name__}: {err}") from err


def _head(source: VideoSource, count: int = 1024) -> bytes:
    """The first ``count`` bytes of a file, or of a file object (its position is left at 0)."""
    if isinstance(source, str | Path):
        with open(source, "rb") as file:
            return file.read(count)
    head = source.read(count)
    source.seek(0)
    return head


def matroska_end(head: bytes) -> int | None:
    """Where a Matroska/WebM file ends by its own Segment header (``head``: its first bytes);
    ``None`` for other files and for a Segment of unknown size (written to a pipe or live).

    Matroska keeps no index a cut would contradict until its end (the cues come last, and a
    cut file just has none), but a muxer that can seek back writes the Segment's size: a
    file shorter than that is truncated, and unreadable as a whole like a cut mp4."""
    try:
        ident, pos = _vint(head, 0, marker=True)
        if ident != EBML_HEADER:
            return None
        size, pos = _vint(head, pos)
        ident, pos = _vint(head, pos + size, marker=True)
        if ident != MATROSKA_SEGMENT:
            return None
        size, data = _vint(head, pos)
    except (IndexError, ValueError):
        return None
    return None if size == (1 << 7 * (data - pos)) - 1 else data + size


def _vint(data: bytes, pos: int, marker: bool = False) -> tuple[int, int]:
    """The EBML variable-length integer at ``pos`` (with its length marker: element IDs keep
    it) and the position after it."""
    length = 9 - data[pos].bit_length()
    if length > 8:
        raise ValueError("not an EBML integer")
    value = int.from_bytes(data[pos : pos + length], "big")
    return (value if marker else value & ((1 << 7 * length) - 1)), pos + length


def _read_index(path: Path, size: int, stream: av.video.stream.VideoStream) -> tuple[list[int], list[int], bool]:
    """The keyframes' and all entries' timestamps and whether the first entry is a keyframe,
    from one walk over the index that also checks the file is whole.

    A file shorter than its own index says is truncated, and unreadable as a whole. A truncated
    mp4 whose index comes first (as web video's does) still opens, and the frames before the cut
    still decode: whether a clip could be read would then depend on which frames were sampled (a
    different answer each epoch in training, a partly decoded last frame at the cut). So any
    truncation the index reveals makes the file unreadable, whichever frames are asked for.
    Files without an index are read as far as the sampled frames need; a frame past the end is
    a ``MediaError`` too.
    """
    keyframes, decode_times, first_is_key, end = [], [], None, 0
    for entry in stream.index_entries:
        if entry.pos >= 0:
            end = max(end, entry.pos + entry.size)
        if first_is_key is None:
            first_is_key = bool(entry.is_keyframe)
        if entry.is_keyframe:
            keyframes.append(entry.timestamp)
        decode_times.append(entry.timestamp)
    if end > size:
        raise MediaError(path, f"truncated: {size} bytes, but the index refers to bytes up to {end}")
    return keyframes, decode_times, first_is_key is not False


def frame_rate(path: Path, stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise MediaError(path, "stream has no frame rate")
    return Fraction(rate)


class FrameClock:
    """Converts between frame indices and presentation timestamps of a constant-rate stream.

    Frame 0 is the first decoded frame, not ``stream.start_time``: in AVI files with B-frames the
    two differ by the reordering delay. Frame ``i`` is the first frame whose timestamp is at
    least ``first_pts(i)``, half a frame before its nominal time, so timestamps rounded to the
    container's clock (Matroska's milliseconds: 33, 33, 34 at 30 fps) still find their frame.
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
        # integer arithmetic: frame_table checks every frame of a file with it
        ticks, per = self.ticks_per_frame.numerator, self.ticks_per_frame.denominator
        return (2 * (pts - self.start) * per + ticks) // (2 * ticks)


class TableClock:
    """Frame indices and presentation timestamps of a variable-rate stream: frame ``i`` is the
    ``i``-th timestamp of ``times`` (the decodable frames' in presentation order), so indices
    count frames, as a full decode does, rather than stepping through time at the average rate."""

    def __init__(self, times: list[int]) -> None:
        self.times = times
        self.start = times[0]

    def pts(self, index: int) -> int:
        return self.times[index]

    def first_pts(self, index: int) -> int:
        return self.times[index]

    def index(self, pts: int) -> int:
        """The frame shown at ``pts``: the last one starting at or before it (-1 before frame 0)."""
        return bisect.bisect_right(self.times, pts) - 1


Clock = FrameClock | TableClock


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


def trusted_frame_count(video: OpenVideo) -> int:
    """``stream.frames`` where it counts decodable frames, else 0.

    An mp4 edit list that cuts frames leaves them in ``stream.frames`` but not in the stream's
    duration (so the two must agree, to the nearest frame); a stream copy cut mid-GOP starts with
    frames the decoder cannot show, before the first keyframe (so the index must start on one)."""
    stream = video.stream
    if stream.frames <= 0 or not video.starts_on_key:
        return 0
    if stream.duration is None or stream.time_base is None:
        return stream.frames
    shown = round(stream.duration * stream.time_base * frame_rate(video.path, stream))
    return stream.frames if shown == stream.frames else 0


class PacketScan(NamedTuple):
    """What one demux of the video packets tells: ``counted_frames``."""

    total: int  # decodable frames
    times: list[int] | None  # their presentation timestamps in order, None if some packet has none
    keyframes: list[int]  # decode timestamps of the keyframes


def counted_frames(video: OpenVideo) -> PacketScan:
    """The decodable frames counted from the video packets (demuxed, not decoded), then rewound.

    For containers that keep no frame count: their duration is often the longest stream's (an
    audio track running past the video), so duration x frame rate would promise frames that do
    not exist; Matroska written to a pipe has no duration at all. And for an mp4 whose edit list
    cuts frames (its ``stream.frames`` counts them, the decoder drops them: their packets are
    marked discard). Decoding starts at the first keyframe: the packets before it (a stream copy
    cut mid-GOP) and those shown before it (their references are missing) give no frame; the
    keyframe itself may be one the edit list cuts, decoded but not shown. Every other non-empty
    packet of the codecs read here is one frame out of the decoder.

    The keyframes are those of the packets: FFmpeg reads Matroska's cues only at the first seek,
    so at opening its index holds one keyframe, and MPEG-TS has none.
    """
    packets = [(p.pts, p.dts, p.is_keyframe, p.is_discard) for p in video.container.demux(video.stream) if p.size]
    rewind(video)
    keyframes = [dts for _, dts, key, _ in packets if key and dts is not None]
    first = next((i for i, (_, _, key, _) in enumerate(packets) if key), 0)
    shown = [pts for pts, _, _, discard in packets[first:] if not discard]
    start = packets[first][0] if packets else None
    if start is None or None in shown:
        return PacketScan(len(shown), None, keyframes)
    times = sorted(pts for pts in shown if pts >= start)
    return PacketScan(len(times), times, keyframes)


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (0-3) that show ``frame`` as its display matrix says
    (phone videos: rotate=90 in ffmpeg's metadata is -90 here, a clockwise turn), as players and
    ffmpeg do. The matrix is the stream's (FFmpeg attaches it to every decoded frame); a rotation
    other than a multiple of 90 degrees, and the mirroring a matrix can add, are not applied."""
    rotation = frame.rotation
    return rotation // 90 % 4 if rotation % 90 == 0 else 0


def write_rgb(frame: av.VideoFrame, out: np.ndarray, reformatter: VideoReformatter, turns: int = 0) -> None:
    """Write a frame's RGB pixels, turned ``turns`` quarter turns counter-clockwise, into ``out``,
    a (3, H, W) uint8 array.

    The caller keeps one ``reformatter`` per clip: ``frame.to_ndarray`` would set up swscale's
    converter for every frame, which can cost more than decoding the frame. It lives no longer
    than the clip on purpose: swscale runs worker threads, and a converter inherited by a forked
    DataLoader worker waits for them forever. Packed ``rgb24`` it is: PyAV's planar ``gbrp``
    output, which would skip the transpose, came out wrong on some frame sizes.
    """
    rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
    out[:] = (np.rot90(rgb, turns) if turns else rgb).transpose(2, 0, 1)
