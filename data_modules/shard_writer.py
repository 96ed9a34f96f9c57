"""Writing samples as shards in the layout of video2dataset (videos) and img2dataset (images).

Why: users fetch WebVid with video2dataset and CC3M with img2dataset, so one shard reader
serves them all when per-file copies (``vtr shard``) and the demo corpus are written the same
way. The layout, as those tools write it (``--output_format webdataset`` or ``files``):

    NNNNN.tar                 shard NNNNN (5 digits), or the folder NNNNN/ in the files format,
                              holding per sample {key}.mp4 | {key}.jpg, {key}.txt (the caption)
                              and {key}.json (url, caption, key, status, error_message, ...)
    NNNNN_stats.json          count, successes, failed_to_download, failed_to_subsample (videos)
                              or failed_to_resize (images), duration, start_time, end_time,
                              status_dict (+ bytes_downloaded for videos); written last: a
                              shard without it may be partial

A key is ``10**ceil(log10(keys_per_shard)) * shard_id + row``, zero-padded to that many digits
plus 5 (8 digits at video2dataset's 1,000 a shard, 9 at img2dataset's 10,000); the clips of a
clipped video are ``{key}_{clip:05d}`` (video2dataset's ClippingSubsampler), and a shard's
``successes`` counts rows, not clips, as video2dataset counts them. A row whose media cannot be
had is ``failed_to_download``, one whose media is corrupt ``failed_to_subsample`` /
``failed_to_resize``: video samples keep their ``.txt`` + ``.json`` (no ``.mp4``) in the shard,
as video2dataset writes them; failed images are left out, as img2dataset does. The tools' per-shard
``.parquet`` is not written: it needs pyarrow, which this project does not install, and the
reader does not need it.

Resumable: a shard whose ``_stats.json`` exists is kept; a shard is written under a hidden
temporary name and renamed into place once complete, then its ``_stats.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
from PIL import Image

from data_modules.preprocess import Settings, run_in_pool, transcode
from data_modules.video import check_video
from data_modules.video_stream import MediaError

SHARD_DIGITS = 5  # both tools name shards 00000, 00001, ...
CLIP_DIGITS = 5  # video2dataset's oom_clip_count
FORMATS = ("webdataset", "files")
KINDS = {"video": "failed_to_subsample", "image": "failed_to_resize"}  # a kind's corrupt-media status
ERRORS_FILE = "shard_errors.txt"
_IMAGE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}  # kept as they are; others become JPEG


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its caption, the columns its ``.json`` carries beside the tools' own
    (``url``, and e.g. WebVid's ``videoid, page_idx, page_dir, duration``), and its media file.

    ``error`` marks media that could not be had (a failed download; ``media`` is then ignored);
    ``clips`` are ``(start, end)`` seconds to cut the video into, one sample each (video2dataset's
    ``--clip_col``), cut by re-encoding with the spec's settings, else ``Settings()``'s."""

    caption: str
    columns: dict[str, object]
    media: Path | None
    error: str = ""
    clips: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ShardSpec:
    """How rows become shards: ``shard_size`` rows a shard; keys spaced for ``keys_per_shard``
    rows (default ``shard_size``; the demo writes small shards with the tools' key widths)."""

    kind: str  # video | image
    shard_size: int = 1000
    keys_per_shard: int | None = None
    output_format: str = "webdataset"
    settings: Settings | None = None  # re-encode videos (as vtr preprocess does); None copies them

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"shard kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.output_format not in FORMATS:
            raise ValueError(f"shard format must be one of {', '.join(FORMATS)}, got {self.output_format!r}")
        if self.shard_size < 1 or (self.keys_per_shard or self.shard_size) < self.shard_size:
            raise ValueError(f"shard_size must be 1..keys_per_shard, got {self.shard_size} and {self.keys_per_shard}")

    @property
    def key_order(self) -> int:
        """ceil(log10(keys_per_shard)), in integers."""
        spacing = self.keys_per_shard or self.shard_size
        return len(str(spacing - 1)) if spacing > 1 else 0

    def key(self, shard_id: int, row: int) -> str:
        return f"{10**self.key_order * shard_id + row:0{self.key_order + SHARD_DIGITS}d}"


def shard_name(shard_id: int) -> str:
    return f"{shard_id:0{SHARD_DIGITS}d}"


def stats_path(dst: Path, shard_id: int) -> Path:
    return dst / f"{shard_name(shard_id)}_stats.json"


Sample = tuple[str, dict[str, bytes], dict[str, object]]  # key, media member (extension -> bytes), json


@dataclass
class ShardResult:
    shard_id: int
    stats: dict[str, object]
    failures: list[tuple[str, str, str]]  # key, media, reason


@dataclass
class Summary:
    shards: int = 0  # written in this run
    kept: int = 0  # finished in an earlier run
    rows: int = 0  # of the shards written in this run
    samples: int = 0  # media samples written (a clipped video gives several)
    failed: Counter[str] = field(default_factory=Counter)  # status -> rows
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # shard/key, media, reason
    seconds: float = 0.0

    def __str__(self) -> str:
        failed = ", ".join(f"{n} {status}" for status, n in sorted(self.failed.items())) or "none failed"
        lines = [
            f"{self.shards} shards written ({self.rows} rows, {self.samples} samples; {failed}), "
            f"{self.kept} kept from an earlier run; {self.seconds:.1f} s"
        ]
        lines += [f"  failed {key}: {media}: {reason}" for key, media, reason in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more (all in {ERRORS_FILE})")
        return "\n".join(lines)


def _video_bytes(row: Row, spec: ShardSpec, window: tuple[float, float] | None) -> bytes:
    """The sample's mp4: the file itself once every frame decodes (a corrupt packet would
    otherwise fail only the reads that reach it), else re-encoded (or cut)."""
    assert row.media is not None
    if spec.settings is None and window is None:
        check_video(row.media)
        return row.media.read_bytes()
    with tempfile.TemporaryDirectory(prefix="vtr-shard-") as tmp:
        out = Path(tmp) / row.media.name
        transcode(row.media, out, spec.settings or Settings(), window)
        return out.read_bytes()


def _image_sample(row: Row) -> tuple[str, bytes, dict[str, object]]:
    """(extension, bytes, img2dataset's size and hash columns) of an image that fully decodes."""
    assert row.media is not None
    data = row.media.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            ext = _IMAGE_EXTENSIONS.get(image.format or "")
            if ext is None:
                out = io.BytesIO()
                image.convert("RGB").save(out, format="JPEG", quality=95)
                ext, data = "jpg", out.getvalue()
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(row.media, f"{type(err).__name__}: {err}") from err
    size = {"width": width, "height": height, "original_width": width, "original_height": height}
    return ext, data, size | {"exif": None, "sha256": hashlib.sha256(data).hexdigest()}


class _Sink:
    """Where a shard's members go while it is written: a tar (webdataset's TarWriter layout:
    each sample's members in sorted extension order) or a folder, under a hidden temporary name."""

    def __init__(self, dst: Path, shard_id: int, output_format: str) -> None:
        suffix = ".tar" if output_format == "webdataset" else ""
        self.final = dst / f"{shard_name(shard_id)}{suffix}"
        self.partial = dst / f".{self.final.name}.partial"
        _remove(self.partial)
        self.tar = tarfile.open(self.partial, "w") if suffix else None
        if self.tar is None:
            self.partial.mkdir(parents=True)

    def write(self, key: str, members: dict[str, bytes]) -> None:
        for ext in sorted(members):
            name, data = f"{key}.{ext}", members[ext]
            if self.tar is None:
                (self.partial / name).write_bytes(data)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), time.time(), 0o444
            info.uname = info.gname = "bigdata"
            self.tar.addfile(info, io.BytesIO(data))

    def finish(self) -> None:
        if self.tar is not None:
            self.tar.close()
        _remove(self.final)
        os.replace(self.partial, self.final)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _samples(row: Row, spec: ShardSpec, key: str, meta: dict[str, object]) -> list[Sample]:
    """The row's samples (key, media member, json); raises ``MediaError`` where its media fails."""
    if spec.kind == "image":
        ext, data, columns = _image_sample(row)
        return [(key, {ext: data}, meta | columns)]
    if not row.clips:
        return [(key, {"mp4": _video_bytes(row, spec, None)}, meta)]
    keys = [f"{key}_{n:0{CLIP_DIGITS}d}" for n in range(len(row.clips))]
    return [
        (clip_key, {"mp4": _video_bytes(row, spec, clip)}, meta | {"key": clip_key, "clips": [list(clip)]})
        for clip_key, clip in zip(keys, row.clips)
    ]


def _write_rows(sink: _Sink, spec: ShardSpec, shard_id: int, rows: Sequence[Row], stats: Counter[str]) -> list:
    """Every row's samples into ``sink``; counts into ``stats``; returns the failures."""
    failures = []
    for i, row in enumerate(rows):
        key = spec.key(shard_id, i)
        meta = {"url": None, "caption": row.caption, "key": key, "status": "success", "error_message": None}
        meta |= row.columns
        missing = bool(row.error) or row.media is None or not row.media.is_file()
        status = "failed_to_download" if missing else KINDS[spec.kind]
        try:
            if missing:
                raise MediaError(row.media or "", row.error or "file not found")
            samples = _samples(row, spec, key, meta)
        except (MediaError, av.FFmpegError, OSError, ValueError) as err:
            reason = err.reason if isinstance(err, MediaError) else f"{type(err).__name__}: {err}"
            failures.append((key, str(row.media or ""), reason))
            stats[status] += 1
            stats[f"status:{reason}"] += 1
            if spec.kind == "video":  # video2dataset keeps a failed row's caption and metadata, no video
                failed = meta | {"status": status, "error_message": reason}
                sink.write(key, {"txt": row.caption.encode(), "json": _json(failed)})
            continue
        stats["successes"] += 1
        stats["status:success"] += 1
        if spec.kind == "video":
            stats["bytes_downloaded"] += row.media.stat().st_size
        for sample_key, media, sample_meta in samples:
            sink.write(sample_key, media | {"txt": row.caption.encode(), "json": _json(sample_meta)})
            stats["samples"] += 1
    return failures


def _json(meta: dict[str, object]) -> bytes:
    return json.dumps(meta, indent=4).encode()


@dataclass(frozen=True)
class _Job:
    dst: Path
    spec: ShardSpec
    shard_id: int
    rows: Sequence[Row]


def _write_shard(job: _Job) -> ShardResult:
    """One shard into place, then its ``_stats.json`` (written last, as the tools do)."""
    start = time.time()
    counts: Counter[str] = Counter()
    sink = _Sink(job.dst, job.shard_id, job.spec.output_format)
    failures = _write_rows(sink, job.spec, job.shard_id, job.rows, counts)
    sink.finish()
    end = time.time()
    stats: dict[str, object] = {
        "count": len(job.rows),
        "successes": counts["successes"],
        "failed_to_download": counts["failed_to_download"],
        KINDS[job.spec.kind]: counts[KINDS[job.spec.kind]],
        "duration": end - start,
        "start_time": start,
        "end_time": end,
        "status_dict": {k.removeprefix("status:"): v for k, v in counts.items() if k.startswith("status:")},
    }
    if job.spec.kind == "video":
        stats["bytes_downloaded"] = counts["bytes_downloaded"]
    path = stats_path(job.dst, job.shard_id)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(stats, indent=4))
    os.replace(partial, path)
    return ShardResult(job.shard_id, stats | {"samples": counts["samples"]}, failures)


def write_shards(rows: Sequence[Row], dst: Path, spec: ShardSpec, workers: int = 1, progress: bool = True) -> Summary:
    """Write ``rows`` as shards under ``dst``, keeping the finished ones (see the module docstring).

    The inputs whose media failed in this run are in the summary; ``dst/shard_errors.txt`` lists
    those of every shard (``shard/key``, media file, reason), the tools' ``status_dict`` only counts them."""
    started = time.perf_counter()
    dst.mkdir(parents=True, exist_ok=True)
    n_shards = -(-len(rows) // spec.shard_size)
    summary = Summary()
    jobs = []
    for shard_id in range(n_shards):
        if stats_path(dst, shard_id).is_file():
            summary.kept += 1
        else:
            jobs.append(_Job(dst, spec, shard_id, rows[shard_id * spec.shard_size : (shard_id + 1) * spec.shard_size]))
    for result in run_in_pool(_write_shard, jobs, workers, progress, "shards"):
        summary.shards += 1
        summary.rows += int(result.stats["count"])
        summary.samples += int(result.stats["samples"])
        for status in ("failed_to_download", KINDS[spec.kind]):
            summary.failed[status] += int(result.stats[status])
        name = shard_name(result.shard_id)
        summary.failures += [(f"{name}/{key}", media, reason) for key, media, reason in result.failures]
    summary.failed = +summary.failed
    summary.failures.sort()
    _update_errors(dst / ERRORS_FILE, {shard_name(job.shard_id) for job in jobs}, summary.failures)
    summary.seconds = time.perf_counter() - started
    return summary


def _update_errors(path: Path, rewritten: set[str], failures: list[tuple[str, str, str]]) -> None:
    """``path`` lists the failed inputs of every shard: the lines of the shards kept from earlier
    runs stay, those of the shards written now are replaced."""
    kept = (
        [line for line in path.read_text().splitlines() if line.split("/", 1)[0] not in rewritten]
        if path.is_file()
        else []
    )
    lines = sorted(kept + ["\t".join(failure) for failure in failures])
    if lines:
        path.write_text("".join(line + "\n" for line in lines))
    else:
        path.unlink(missing_ok=True)
