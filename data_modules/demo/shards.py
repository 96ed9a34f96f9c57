"""The demo's WebVid- and CC3M-style training sets once more, as shards, the way video2dataset and
img2dataset leave them on users' disks, defects included, so the shard reader meets them in every run.

    shards/webvid/   video2dataset's webdataset output: 8-digit keys (its WebVid config's 1,000 a
                     shard), ``webvid_shard_size`` rows a shard, the last one short
    shards/cc3m/     img2dataset's: 9-digit keys (its 10,000 a shard), ``cc3m_shard_size`` rows a shard

What real downloads leave, where the shards are large enough to hold it:
    failed downloads  WebVid rows 1 of shard 0 and 3, 5 of shard 2 (``.txt`` + ``.json`` with
                      status failed_to_download, no ``.mp4``); CC3M row 2 of shard 1 (left out of
                      the tar, counted in its ``_stats.json``)
    clipped videos    WebVid rows 0 of shard 1 and 7 of shard 3, cut in two: keys ``{key}_00000``
                      and ``{key}_00001``; ``successes`` counts the row once, as video2dataset does
    a partial shard   the second-to-last WebVid shard (of three or more): its tar cut off inside
                      its middle member and no ``_stats.json``, as a killed download leaves it

The media are the per-file corpus's own files, copied (clips are re-encoded windows of them).
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from data_modules.config import DataConfig
from data_modules.shard_sources import cc3m_rows, webvid_rows
from data_modules.shard_writer import Row, ShardSpec, shard_name, stats_path, write_shards
from data_modules.video import video_duration

if TYPE_CHECKING:
    from data_modules.demo import DemoSizes

SHARDS_DIR = "shards"
WEBVID_FAILED = ((0, 1), (2, 3), (2, 5))  # (shard, row)
WEBVID_CLIPPED = ((1, 0), (3, 7))
CC3M_FAILED = ((1, 2),)
FAILED_DOWNLOAD = "HTTP Error 403: Forbidden"  # what the WebVid CDN answers for many of its old URLs


def _at(rows: list[Row], size: int, places: tuple[tuple[int, int], ...]) -> list[int]:
    """The row indices of (shard, row) ``places`` that exist in shards of ``size`` rows."""
    return [shard * size + row for shard, row in places if row < size and shard * size + row < len(rows)]


def _halves(path: Path) -> tuple[tuple[float, float], ...]:
    duration = video_duration(path)
    return (0.0, duration / 2), (duration / 2, duration)


def write_demo_shards(root: Path, sizes: DemoSizes, workers: int, progress: bool) -> None:
    """Write both shard sets under ``root/shards`` from the per-file train splits already written."""
    cfg = DataConfig()
    webvid = webvid_rows(root / "webvid", cfg)
    size = sizes.webvid_shard_size
    for i in _at(webvid, size, WEBVID_FAILED):
        webvid[i] = dataclasses.replace(webvid[i], error=FAILED_DOWNLOAD)
    for i in _at(webvid, size, WEBVID_CLIPPED):
        webvid[i] = dataclasses.replace(webvid[i], clips=_halves(webvid[i].media))
    out = root / SHARDS_DIR / "webvid"
    write_shards(webvid, out, ShardSpec("video", size, keys_per_shard=1000), workers, progress)
    n_shards = -(-len(webvid) // size)
    if n_shards >= 3:
        _leave_partial(out, n_shards - 2)

    cc3m = cc3m_rows(root / "cc3m", cfg)
    for i in _at(cc3m, sizes.cc3m_shard_size, CC3M_FAILED):
        cc3m[i] = dataclasses.replace(cc3m[i], error=FAILED_DOWNLOAD)
    spec = ShardSpec("image", sizes.cc3m_shard_size, keys_per_shard=10_000)
    write_shards(cc3m, root / SHARDS_DIR / "cc3m", spec, workers, progress)


def _leave_partial(folder: Path, shard_id: int) -> None:
    """Shard ``shard_id`` as a download killed half-way leaves it: no ``_stats.json``, and the tar
    cut off inside its middle member (so that reading it through fails, wherever the cut lands)."""
    stats_path(folder, shard_id).unlink()
    tar = folder / f"{shard_name(shard_id)}.tar"
    with tarfile.open(tar) as archive:
        members = archive.getmembers()
    middle = members[len(members) // 2]
    os.truncate(tar, middle.offset_data + middle.size // 2)
