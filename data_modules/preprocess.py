"""``python -m vtr preprocess SRC_ROOT DST_ROOT``: re-encode a dataset root into clips that load fast.

Web video is stored for watching: full resolution, 25-60 fps and a keyframe every 5-10 s, so a
training clip of 4 frames decodes hundreds. The model sees 224 px frames sampled a few a
second; re-encoding once to a short side of 256 px, at most 10 fps and a keyframe every 10
frames makes every later read decode a handful of small frames instead.

The copy keeps the root's layout: every video file (``VIDEO_SUFFIXES``) is re-encoded to H.264 at
the same relative path and name (the extension stays, so annotation files still match), every
other file (annotations, images, tokenizer) is copied unchanged; ``DATA_ROOT=DST_ROOT`` then
works as the original root. Audio is dropped. Outputs are written to a temporary name and renamed,
so an interrupted run leaves whole files only, and a re-run skips every output that exists and is
newer than its source. Videos that do not decode whole (``checked_frames``: a damaged packet
anywhere, not only where a read would reach it) are skipped and listed in
``DST_ROOT/preprocess_errors.txt``; the loaders then count them as missing, as they would count
the corrupt originals.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av

from data_modules.video import checked_frames
from data_modules.video_stream import MediaError, frame_rate, open_video

Job = TypeVar("Job")
Result = TypeVar("Result")

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov"})
ERRORS_FILE = "preprocess_errors.txt"
# Muxer per extension; WebM admits only VP8/VP9/AV1, so .webm files get the Matroska container
# it is a subset of (readers probe the content, not the name).
_MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "matroska", ".avi": "avi"}


@dataclass(frozen=True)
class Settings:
    short_side: int = 256  # pixels; smaller videos keep their size (never upscaled)
    fps: int = 10  # at most; slower videos keep their rate
    keyframe_every: int = 10  # frames

    def __post_init__(self) -> None:
        for name in ("short_side", "fps", "keyframe_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"preprocess {name} must be at least 1, got {getattr(self, name)}")


@dataclass
class Summary:
    videos: int = 0  # re-encoded in this run
    copied: int = 0  # other files copied in this run
    up_to_date: int = 0  # outputs kept from an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # relative path -> reason
    bytes_before: int = 0  # all videos of the source root that were converted (this run or before)
    bytes_after: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        ratio = self.bytes_after / self.bytes_before if self.bytes_before else 0.0
        return (
            f"{self.videos} videos re-encoded, {self.copied} files copied, {self.up_to_date} up to date, "
            f"{len(self.failed)} failed; videos {self.bytes_before / 1e6:.1f} MB -> {self.bytes_after / 1e6:.1f} MB "
            f"({ratio:.0%}); {self.seconds:.1f} s"
        )


def _scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Short side at most ``short_side``, aspect kept, both sides even (as 4:2:0 H.264 needs)."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _kept_frames(frames: Iterator[av.VideoFrame], rate: Fraction, fps: int) -> Iterator[av.VideoFrame]:
    """Every frame if the video is at most ``fps``, else the first frame in each 1/``fps`` s slot."""
    if rate <= fps:
        yield from frames
        return
    next_slot = 0
    for i, frame in enumerate(frames):
        slot = i * fps // rate  # frame i is shown at i / rate seconds
        if slot >= next_slot:
            next_slot = slot + 1
            yield frame


def _in_window(frames: Iterator[av.VideoFrame], rate: Fraction, window: tuple[float, float]) -> Iterator[av.VideoFrame]:
    """The frames shown from ``start`` to before ``end`` seconds (frame i at i / rate)."""
    start, end = window
    for i, frame in enumerate(frames):
        if i >= end * rate:
            return
        if i >= start * rate:
            yield frame


def transcode(src: Path, dst: Path, settings: Settings, window: tuple[float, float] | None = None) -> None:
    """Re-encode ``src`` into ``dst`` (the source's extension picks the container), the whole video
    or the ``(start, end)`` seconds of ``window`` (a clip, as ``vtr shard`` cuts them). Raises ``MediaError``."""
    from data_modules.demo import h264_encoder  # the demo corpus's choice of encoder

    codec = h264_encoder()
    with open_video(src) as video, av.open(str(dst), "w", format=_MUXERS[src.suffix.lower()]) as out:
        rate = frame_rate(src, video.stream)
        out_rate = rate if rate <= settings.fps else Fraction(settings.fps)
        options = {"g": str(settings.keyframe_every)}
        if codec == "libx264":
            options |= {"preset": "veryfast", "crf": "23", "threads": "1"}
        if src.suffix.lower() == ".avi":
            options["bf"] = "0"  # AVI stores no presentation times to reorder B-frames by
        stream = out.add_stream(codec, rate=out_rate, options=options)
        width, height = _scaled_size(video.stream.width, video.stream.height, settings.short_side)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frames = checked_frames(video)  # a damaged file fails whole, not only where a read reaches it
        if window is not None:
            frames = _in_window(frames, rate, window)
        count = 0
        for count, frame in enumerate(_kept_frames(frames, rate, settings.fps), 1):
            small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
            small.pts, small.time_base = count - 1, 1 / out_rate
            if count == 1 and frame.rotation:  # frames are re-encoded as stored: keep how to show them
                stream.set_display_rotation(frame.rotation)
            out.mux(stream.encode(small))
        out.mux(stream.encode())
        if count == 0:
            raise MediaError(src, "no decodable frame")


def _up_to_date(src: Path, dst: Path) -> bool:
    return dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime


@dataclass(frozen=True)
class _Job:
    src: Path
    dst: Path
    relative: str
    is_video: bool
    settings: Settings


def _run_job(job: _Job) -> tuple[_Job, str, str]:
    """(job, "done" / "kept" / "failed", reason). Writes ``.name.partial`` and renames it."""
    if _up_to_date(job.src, job.dst):
        return job, "kept", ""
    job.dst.parent.mkdir(parents=True, exist_ok=True)
    partial = job.dst.with_name(f".{job.dst.name}.partial")
    try:
        if job.is_video:
            transcode(job.src, partial, job.settings)
        else:
            shutil.copy2(job.src, partial)
    except (MediaError, av.FFmpegError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        return job, "failed", str(err.reason if isinstance(err, MediaError) else f"{type(err).__name__}: {err}")
    os.replace(partial, job.dst)
    return job, "done", ""


def _jobs(src_root: Path, dst_root: Path, settings: Settings) -> list[_Job]:
    jobs = []
    for folder, _, names in sorted(os.walk(src_root)):
        for name in sorted(names):
            src = Path(folder) / name
            relative = src.relative_to(src_root)
            is_video = src.suffix.lower() in VIDEO_SUFFIXES
            jobs.append(_Job(src, dst_root / relative, relative.as_posix(), is_video, settings))
    return jobs


def preprocess(
    src_root: Path, dst_root: Path, settings: Settings = Settings(), workers: int = 1, progress: bool = True
) -> Summary:
    """Convert ``src_root`` into ``dst_root`` (see the module docstring); returns what was done."""
    src_root, dst_root = Path(src_root).resolve(), Path(dst_root).resolve()
    if not src_root.is_dir():
        raise FileNotFoundError(f"preprocess source root {src_root} is not a folder")
    if dst_root == src_root or src_root in dst_root.parents:
        raise ValueError(f"preprocess destination {dst_root} must not be inside the source root {src_root}")
    start = time.perf_counter()
    jobs = _jobs(src_root, dst_root, settings)
    summary = Summary()
    for job, status, reason in run_in_pool(_run_job, jobs, workers, progress, "preprocess"):
        if status == "failed":
            summary.failed[job.relative] = reason
        elif status == "kept":
            summary.up_to_date += 1
        elif job.is_video:
            summary.videos += 1
        else:
            summary.copied += 1
        if job.is_video and status != "failed":
            summary.bytes_before += job.src.stat().st_size
            summary.bytes_after += job.dst.stat().st_size
    errors = dst_root / ERRORS_FILE
    if summary.failed:
        dst_root.mkdir(parents=True, exist_ok=True)
        errors.write_text("".join(f"{path}\t{reason}\n" for path, reason in sorted(summary.failed.items())))
    else:
        errors.unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - start
    return summary


def run_in_pool(
    run: Callable[[Job], Result], jobs: Sequence[Job], workers: int, progress: bool, description: str
) -> Iterator[Result]:
    """``run(job)`` for every job, results as they finish, in a process pool when ``workers > 1``
    (fork, as the DataLoader does, so workers do not re-import torch), under a rich progress bar.
    ``run`` must be a module-level function where fork is missing and the pool spawns."""
    from rich.progress import track

    if workers > 1 and len(jobs) > 1:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
            yield from track(
                pool.imap_unordered(run, jobs), total=len(jobs), description=description, disable=not progress
            )
    else:
        yield from track(map(run, jobs), total=len(jobs), description=description, disable=not progress)
