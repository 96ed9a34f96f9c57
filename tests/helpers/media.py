"""Small media files for the data tests, written with PyAV and PIL.

Frame ``i`` of a clip shows ``i`` in binary as black/white vertical bars (bit b = bar b), which
survives lossy coding, so a test can read back which frame a reader returned.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

BITS = 7  # frames 0..127 can be told apart
BAR = 8  # pixels per bar, aligned with the codecs' 8x8 blocks
HEIGHT, WIDTH = 32, BITS * BAR + 8


def marked_frame(i: int) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        if i >> bit & 1:
            image[:, bit * BAR : (bit + 1) * BAR] = 255
    return image


def frame_number(frame: np.ndarray) -> int:
    """Reads back ``i`` from a (C, H, W) or (H, W, C) uint8 frame made by ``marked_frame``."""
    if frame.shape[0] == 3:
        frame = frame.transpose(1, 2, 0)
    return sum(1 << bit for bit in range(BITS) if frame[:, bit * BAR + 2 : bit * BAR + 6].mean() > 128)


def write_clip(
    path: Path, num_frames: int, codec: str = "libx264", gop: int = 8, b_frames: int = 2, first_pts: int = 0
) -> Path:
    """A 25 fps clip of marked frames with a keyframe every ``gop`` frames and ``b_frames`` B-frames
    between reference frames (x264 would otherwise decide that still bars need none). A negative
    ``first_pts`` in an mp4 gives an edit list that cuts the first ``-first_pts`` frames."""
    options = {"g": str(gop), "bf": str(b_frames)} | ({"b_strategy": "0"} if codec == "libx264" else {})
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(marked_frame(i), format="rgb24")
            frame.pts = first_pts + i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, size: tuple[int, int] = (40, 30), colour: tuple[int, int, int] = (200, 30, 90)) -> Path:
    Image.new("RGB", size, colour).save(path, format="JPEG")
    return path


def write_faststart_clip(path: Path, num_frames: int = 60) -> Path:
    """A 64x64 mp4 of noise frames with its index first, as web video is: a truncated copy still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "8"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        noise = np.random.default_rng(0)
        for _ in range(num_frames):
            frame = av.VideoFrame.from_ndarray(noise.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_clip_with_audio(path: Path, num_frames: int, audio_s: float, codec: str = "libx264") -> Path:
    """A clip of ``num_frames`` marked 25 fps frames and a silent Opus track of ``audio_s`` seconds:
    in mkv/webm the container's duration is then the audio's, longer than the video."""
    options = {"g": "8"} | ({"bf": "2", "b_strategy": "0"} if codec == "libx264" else {})
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=25, options=options)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("libopus", rate=48000, layout="mono")
        for i in range(num_frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(marked_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = round(audio_s * 48000)
        for start in range(0, samples, 960):
            chunk = av.AudioFrame.from_ndarray(
                np.zeros((1, min(960, samples - start)), np.int16), format="s16", layout="mono"
            )
            chunk.sample_rate, chunk.pts = 48000, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def corrupt_packet(src: Path, dst: Path, packet: int, start: float = 0.25) -> Path:
    """``src`` with the payload of one video packet (decode order) overwritten with noise from
    ``start`` (a fraction of the packet) to its end: a locally corrupt file. Where the noise
    begins decides what the decoder makes of it (it rejects the packet, conceals the damage, or
    drops the frame), which a test must check on the file it writes."""
    with av.open(str(src)) as container:
        sizes = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, size = sizes[packet]
    data = bytearray(src.read_bytes())
    begin = pos + int(size * start)
    data[begin : pos + size] = np.random.default_rng(packet).bytes(pos + size - begin)
    dst.write_bytes(bytes(data))
    return dst


# locally corrupt copies of a 60-frame clip: name -> (source, packet, where the noise starts,
# words of the reason a full check gives); what the decoder makes of each is checked in test_shard_writer
CORRUPTIONS = {
    "rejected.mp4": ("mp4", 30, 0.25, "InvalidDataError"),  # the decoder rejects the packet
    "rejected.webm": ("webm", 30, 0.25, "InvalidDataError"),
    "concealed.mp4": ("mp4", 5, 0.6, "is corrupt"),  # FFmpeg patches the frame and flags it
    "dropped.mp4": ("mp4", 5, 0.25, "ended after 59 of 60 frames"),  # the decoder drops the frame
}


def write_corrupt_videos(folder: Path) -> dict[str, Path]:
    """``intact.mp4`` (H.264, 60 marked frames) first, then the ``CORRUPTIONS`` of it and of a
    VP9 WebM twin, all in ``folder`` (the twin in ``folder/sources``)."""
    (folder / "sources").mkdir()
    clips = {
        "mp4": write_clip(folder / "intact.mp4", 60, gop=12),
        "webm": write_clip(folder / "sources" / "intact.webm", 60, "libvpx-vp9", gop=12, b_frames=0),
    }
    files = {"intact.mp4": clips["mp4"]}
    for name, (clip, packet, start, _) in CORRUPTIONS.items():
        files[name] = corrupt_packet(clips[clip], folder / name, packet, start)
    return files
