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
