"""Web-like test clips for the reader benchmarks: what a WebVid/MSR-VTT download decodes like.

A camera pans and zooms over a smooth random scene while a few blobs move across it, with film
grain on top: x264 then spends bits (and the decoder time) on motion and noise as on real video,
unlike the flat synthetic frames of the demo corpus. Encoded with libx264's defaults (preset
medium, B-frames with a pyramid, keyframe every 250 frames unless ``keyint`` says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ClipSpec:
    seconds: int
    fps: int
    width: int
    height: int
    keyint: int  # frames between keyframes (x264 default 250)
    group: str = ""  # rows of the benchmark table

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}_{self.fps}fps_{self.seconds}s_keyint{self.keyint}"


# 10-30 s at the sizes and rates web video is shared and stored at for these datasets: MSR-VTT-like
# 320x240 and 480x270 at both keyframe settings, and WebVid's 596x336 at 30 fps with x264's default.
SPECS = [
    ClipSpec(seconds, fps, width, height, keyint, f"keyint {keyint}")
    for keyint in (250, 30)
    for seconds, fps, width, height in ((10, 25, 320, 240), (20, 30, 480, 270), (30, 25, 320, 240), (15, 30, 480, 270))
] + [ClipSpec(seconds, 30, 596, 336, 250, "WebVid 596x336, keyint 250") for seconds in (10, 15, 20, 30)]


def _frames(spec: ClipSpec, seed: int):
    rng = np.random.default_rng(seed)
    w, h = spec.width, spec.height
    scene = np.asarray(
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize((w * 2, h * 2), Image.BICUBIC)
    ).astype(np.int16)
    blobs = rng.uniform(0, 1, (4, 4))  # x, y, vx, vy
    yy, xx = np.mgrid[0:h, 0:w]
    n = spec.seconds * spec.fps
    for i in range(n):
        t = i / n
        zoom = 1 + 0.3 * np.sin(2 * np.pi * t)
        cw, ch = int(w * zoom), int(h * zoom)
        x0 = int((w * 2 - cw) * (0.5 - 0.5 * np.cos(2 * np.pi * t)))
        y0 = int((h * 2 - ch) * (0.5 - 0.5 * np.cos(4 * np.pi * t)))
        crop = scene[y0 : y0 + ch, x0 : x0 + cw].astype(np.uint8)
        frame = np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR)).astype(np.int16)
        for bx, by, vx, vy in blobs:
            cx, cy = (bx + vx * t * 3) % 1 * w, (by + vy * t * 3) % 1 * h
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < (h / 8) ** 2
            frame[mask] = 255 - frame[mask]
        frame += rng.integers(-5, 6, frame.shape, dtype=np.int16)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def encode(spec: ClipSpec, folder: Path, seed: int = 0) -> Path:
    """``folder/<spec.name>.mp4``, encoded once (kept across runs)."""
    path = folder / f"{spec.name}.mp4"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=spec.fps, options={"g": str(spec.keyint)})
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        for array in _frames(spec, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path
