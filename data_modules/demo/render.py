"""Rendering planned scenes to files: frames drawn with PIL, video encoded with PyAV, in parallel.

mp4: H.264 (the first of libx264 / h264 / libopenh264 the PyAV wheel has, else MPEG-4 part 2),
yuv420p, a keyframe every second (``g`` = fps) like web video, so seek-based frame reading
behaves as on real data. avi (LSMDC, HMDB51, UCF101): MPEG-4 part 2, like the DivX/Xvid files
of the real sets. jpg (CC3M): the first frame as a still. Every file is written to
``<name>.part`` and renamed once complete, so an interrupted run leaves no half files.
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from data_modules.demo.world import COLOURS, SUPERSAMPLE, UNIT_POLYGONS, Keyframe, Part, Scene, State

REST: State = (0.0, 0.0, 1.0, 0.0)  # where a shape that does not move stays: unmoved, nominal size, unturned


@dataclass(frozen=True)
class Job:
    """One media file to render: `kind` is mp4, avi or jpg."""

    path: Path
    kind: str
    scene: Scene


def state_at(keyframes: tuple[Keyframe, ...], t: int) -> State:
    for (f0, *s0), (f1, *s1) in zip(keyframes, keyframes[1:]):
        if t <= f1:
            p = (t - f0) / (f1 - f0)
            return tuple(a + p * (b - a) for a, b in zip(s0, s1))  # type: ignore[return-value]
    return tuple(keyframes[-1][1:])  # type: ignore[return-value]


def _polygon(shape: str, cx: float, cy: float, r: float, angle_deg: float) -> list[tuple[float, float]]:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in UNIT_POLYGONS[shape]]


def _placed(scene: Scene, state: State) -> Iterator[tuple[Part, float, float, float, float]]:
    """Each shape's part, centre (x, y), circumradius and angle at SUPERSAMPLE x resolution, in drawing order."""
    ss = SUPERSAMPLE
    for (x, y), angle, part in zip(scene.centres, scene.angles, scene.shape_parts):
        dx, dy, scale, turn = state if part.moves else REST
        yield part, (x + dx) * ss, (y + dy) * ss, scene.radius * scale * ss, angle + turn


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=fill)


def draw_frame(scene: Scene, state: State) -> Image.Image:
    """Draw at SUPERSAMPLE x resolution and box-downsample, for anti-aliased edges."""
    ss, canvas = SUPERSAMPLE, scene.canvas
    image = Image.new("RGB", (canvas.width * ss, canvas.height * ss), canvas.bg_rgb)
    draw = ImageDraw.Draw(image)
    for part, cx, cy, r, angle in _placed(scene, state):
        _draw_shape(draw, part.shape, cx, cy, r, angle, COLOURS[part.colour])
    return image.reduce(ss)


def draw_coverage(scene: Scene, state: State) -> np.ndarray:
    """(1 + shapes, H, W) float32: the fraction of each pixel that the background (channel 0) and
    each shape (channel 1 + i, in ``scene.shape_parts`` order) cover in ``draw_frame``'s picture.

    The same outlines at the same supersampled resolution, box-averaged the same way, and a shape
    drawn later hides those under it as it does there: what a probe needs to label a patch by
    the scene rather than by a model."""
    ss, canvas = SUPERSAMPLE, scene.canvas
    size = (canvas.width * ss, canvas.height * ss)
    masks = []
    for part, cx, cy, r, angle in _placed(scene, state):
        image = Image.new("1", size, 0)
        _draw_shape(ImageDraw.Draw(image), part.shape, cx, cy, r, angle, 1)
        masks.append(np.asarray(image, dtype=np.float32))
    visible = np.stack(masks) if masks else np.zeros((0, size[1], size[0]), np.float32)
    for i in range(len(masks) - 1):
        visible[i] *= 1.0 - np.max(visible[i + 1 :], axis=0)
    full = np.concatenate([1.0 - visible.sum(0, keepdims=True), visible])
    return full.reshape(len(full), canvas.height, ss, canvas.width, ss).mean(axis=(2, 4))


@functools.cache
def h264_encoder() -> str:
    """The H.264 encoder this PyAV build has, else MPEG-4 part 2 as a fallback."""
    for name in ("libx264", "h264", "libopenh264"):
        try:
            return av.codec.Codec(name, "w").name  # "h264" resolves to the encoder behind it
        except Exception:  # noqa: BLE001 - PyAV raises different types across versions
            continue
    return "mpeg4"


def _encoder(kind: str, fps: int) -> tuple[str, dict[str, str]]:
    """Codec and options; `g` = fps gives a keyframe every second, as in web video.

    Quality is set high (x264 crf 18; MPEG-4 part 2 quantiser at most 4) because small
    shapes whose edges differ from the background mostly in chroma otherwise flicker from
    one keyframe interval to the next, and a static clip would look as if it moved.
    Files stay a few KB.
    """
    codec = h264_encoder() if kind == "mp4" else "mpeg4"
    options = {"g": str(fps)}
    if codec == "libx264":
        options |= {"preset": "veryfast", "crf": "18", "threads": "1"}
    elif codec == "mpeg4":
        options |= {"qmax": "4"}
    return codec, options


def _write_video(job: Job) -> None:
    """Encode frame by frame into `<name>.part`, renamed once complete."""
    scene, canvas = job.scene, job.scene.canvas
    codec, options = _encoder(job.kind, canvas.fps)
    tmp = job.path.with_name(job.path.name + ".part")
    with av.open(str(tmp), "w", format=job.kind) as container:
        stream = container.add_stream(codec, rate=canvas.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = canvas.width, canvas.height, "yuv420p"
        stream.codec_context.thread_count = 1
        for t in range(scene.n_frames):
            frame = av.VideoFrame.from_image(draw_frame(scene, state_at(scene.keyframes, t)))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    os.replace(tmp, job.path)


def _render_job(job: Job) -> None:
    """Worker entry point; writes atomically so an interrupted run leaves no half files."""
    job.path.parent.mkdir(parents=True, exist_ok=True)
    if job.kind == "jpg":
        tmp = job.path.with_name(job.path.name + ".part")
        draw_frame(job.scene, state_at(job.scene.keyframes, 0)).save(tmp, format="JPEG", quality=90)
        os.replace(tmp, job.path)
    else:
        _write_video(job)


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    """Yield an `advance()` callback: a rich progress bar, or nothing when disabled."""
    if not enabled:
        yield lambda: None
        return
    from rich import progress as rp

    columns = (rp.TextColumn("demo corpus"), rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeElapsedColumn())
    with rp.Progress(*columns, rp.TimeRemainingColumn()) as bar:
        task = bar.add_task("render", total=total)
        yield lambda: bar.advance(task)


def render_all(jobs: list[Job], workers: int, progress: bool) -> None:
    """Render in a process pool. Fork where available (as torch's DataLoader does), since a
    spawned worker would re-import the `data_modules` package and with it torch; the pool
    starts before the progress bar's refresh thread, so no thread is forked mid-lock."""
    if workers <= 1:
        with _progress_bar(len(jobs), progress) as advance:
            for job in jobs:
                _render_job(job)
                advance()
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool, _progress_bar(len(jobs), progress) as advance:
        for _ in pool.imap_unordered(_render_job, jobs, chunksize=16):
            advance()
