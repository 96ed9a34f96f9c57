"""Training sets read in place from video2dataset / img2dataset output.

Both tools write shards ``NNNNN`` as a tar (``--output_format webdataset``) or a folder (``files``)
of samples ``{key}.{mp4|jpg|...}`` + ``{key}.txt`` (the caption) + ``{key}.json``, and write
``NNNNN_stats.json`` last: a shard without it may be partial and is left out, with a warning
naming it. video2dataset also writes failed downloads, as ``.txt`` + ``.json`` without media;
they are not samples here (each shard's index counts them).

Two things are kept cheap at the scale of WebVid (2,500 shards) and CC3M (576):

* **The size without a scan.** A set's length is the sum of its shards' ``successes`` in
  ``_stats.json``, which is all a run reads of them before training. That count is the plan, and
  it never changes between runs (so a resumed run sees the same dataset); should a shard hold
  fewer samples than it says, the missing ones are skipped and counted like unreadable media,
  and more are left undrawn, with a warning either way.
* **Random access without small files.** The first read of a shard walks its tar headers once
  (``tarfile``: where each member's bytes lie, and the captions) and caches that as a small
  JSON index, beside the shards or in a cache folder when they are read-only; a sample is then
  one ``pread`` from an open tar. ``ShardSampler`` orders a pass so that ``data.shard_mix``
  shards are read at a time, each front to back.

Why not the ``webdataset`` pipeline: it streams shards, so a pass cannot start mid-shard and
ranks get as many samples as their shards hold (the unequal batches that hang DDP); here a pass is
an order over samples, padded and split by rank like ``DistributedSampler``, which makes equal
batches and exact resume the same machinery as for files (``ResumableSampler``). ``wids`` reads
tars by index too, but counts failed downloads as samples; the standard library's ``tarfile``
lists the members, which is all that is needed.

Remote shards (``pipe:`` / ``https://``) are not read: random access needs a seekable file
(mount an object store with a FUSE filesystem, or copy the shards to local or cluster storage).
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import json
import logging
import os
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import track
from torch.utils.data import Dataset

from data_modules.dataset import VideoRecord
from data_modules.resumable import ResumableSampler
from data_modules.video import MediaError

log = logging.getLogger("data_modules")

VIDEO_EXTENSIONS = frozenset({"mp4", "webm", "mkv", "avi", "mov", "m4v"})
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp"})
INDEX_VERSION = 1
OPEN_FILES = 64  # tars a process keeps open


@dataclass(frozen=True)
class Shard:
    """One finished shard: its data (``NNNNN.tar`` or ``NNNNN/``) and the samples its stats count."""

    name: str
    data: Path
    planned: int


@dataclass(frozen=True)
class Sample:
    """Where a sample's media lies in its shard (byte range in the tar, or a file), and its caption."""

    key: str
    extension: str
    offset: int  # -1 for a file of the files format
    size: int
    caption: str


def find_shards(folder: Path) -> list[Shard]:
    """The finished shards of a video2dataset / img2dataset output folder, in name order."""
    if not folder.is_dir():
        raise FileNotFoundError(f"shard folder {folder} does not exist")
    names = {entry.name for entry in os.scandir(folder)}
    shards, unfinished = [], []
    for name in sorted(names):
        stem, dot, ext = name.partition(".")
        is_data = (ext == "tar" or (not dot and (folder / name).is_dir())) and stem.isdigit()
        if not is_data:
            continue
        if f"{stem}_stats.json" not in names:
            unfinished.append(name)
            continue
        try:
            planned = int(json.loads((folder / f"{stem}_stats.json").read_text())["successes"])
        except (OSError, ValueError, KeyError, TypeError):  # half-written, or not the tools' stats
            unfinished.append(name)
            continue
        shards.append(Shard(stem, folder / name, planned))
    for name in unfinished:
        stem = name.partition(".")[0]
        log.warning(
            "leaving out shard %s: it has no readable %s_stats.json, so it may be incomplete", folder / name, stem
        )
    if not shards:
        raise FileNotFoundError(
            f"no finished shard (NNNNN.tar or NNNNN/ beside NNNNN_stats.json) in {folder}"
            + (f"; {len(unfinished)} without their _stats.json" if unfinished else "")
        )
    return shards


def _split_name(member: str) -> tuple[str, str]:
    """``dir/000010005.jpg`` -> (``dir/000010005``, ``jpg``): the webdataset convention, the key
    ends at the first dot of the file name."""
    folder, _, base = member.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def _group(
    members: Iterator[tuple[str, int, int]], read: Callable[[str, str, tuple[int, int]], bytes]
) -> tuple[list[Sample], int]:
    """Samples (with a media member) in order of first appearance, and the number without media."""
    entries: dict[str, dict[str, tuple[int, int]]] = {}
    for name, offset, size in members:
        key, extension = _split_name(name)
        entries.setdefault(key, {})[extension] = (offset, size)
    samples, failed = [], 0
    for key, parts in entries.items():
        media = [ext for ext in parts if ext in VIDEO_EXTENSIONS or ext in IMAGE_EXTENSIONS]
        if not media:
            failed += 1
            continue
        caption = read(key, "txt", parts["txt"]).decode("utf-8").strip() if "txt" in parts else ""
        offset, size = parts[media[0]]
        samples.append(Sample(key, media[0], offset, size, caption))
    return samples, failed


def index_shard(data: Path) -> tuple[list[Sample], int]:
    """Walk a shard once: its samples and how many failed ones (no media) it holds."""
    if data.is_dir():
        files = sorted(entry.name for entry in os.scandir(data) if entry.is_file())
        return _group(((name, -1, 0) for name in files), lambda key, ext, _: (data / f"{key}.{ext}").read_bytes())
    try:
        with tarfile.open(data, "r:") as tar:
            members = [(m.name, m.offset_data, m.size) for m in tar if m.isfile()]
            fd = tar.fileobj.fileno()  # type: ignore[union-attr]
            return _group(iter(members), lambda _k, _e, span: os.pread(fd, span[1], span[0]))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise MediaError(data, f"unreadable shard: {type(err).__name__}: {err}") from err


def index_folder(folder: Path, configured: str | None) -> Path:
    """Where a shard folder's indexes are cached: ``configured/<hash>``, else ``.vtr-index`` in the
    folder when it is writable, else ``~/.cache/vtr/shards/<hash>``."""
    digest = hashlib.blake2b(str(folder.resolve()).encode(), digest_size=8).hexdigest()
    if configured is not None:
        return Path(configured) / digest
    if os.access(folder, os.W_OK):
        return folder / ".vtr-index"
    return Path.home() / ".cache/vtr/shards" / digest


class ShardRecords:
    """The samples of a shard folder as a sequence of ``VideoRecord``s, resolved lazily.

    ``records[i]`` finds its shard from the planned counts, loads (or builds and caches) that
    shard's index, reads the media bytes and returns a record whose ``path`` is a named
    ``BytesIO`` (the reader decodes from it; errors name ``shard.tar:key.ext``). A sample the
    shard does not hold, or an unreadable shard, raises ``MediaError``."""

    def __init__(
        self,
        folder: Path,
        index_dir: Path,
        shards: list[Shard],
        counts: list[int] | None = None,
        by_index: bool = False,
    ) -> None:
        self.folder = folder
        self.index_dir = index_dir
        self.shards = shards
        self.counts = counts if counts is not None else [shard.planned for shard in shards]
        self.by_index = by_index  # counts from the indexes (``counted``), not from the stats
        self.starts = [0, *itertools.accumulate(self.counts)]
        self._indexes: dict[str, list[Sample]] = {}
        self._files: OrderedDict[Path, int] = OrderedDict()

    def __len__(self) -> int:
        return self.starts[-1]

    def head(self, n: int) -> ShardRecords:
        """The first ``n`` samples (``data.max_train_samples``), cutting the shard list there."""
        shards, counts, left = [], [], n
        for shard, count in zip(self.shards, self.counts):
            if left <= 0:
                break
            shards.append(shard)
            counts.append(min(count, left))
            left -= count
        return ShardRecords(self.folder, self.index_dir, shards, counts, self.by_index)

    def __getitem__(self, index: int) -> VideoRecord:
        if not 0 <= index < len(self):
            raise IndexError(index)
        number = bisect.bisect_right(self.starts, index) - 1
        shard, position = self.shards[number], index - self.starts[number]
        samples = self._samples(shard)
        if position >= len(samples):
            raise MediaError(shard.data, f"sample {position} is missing: the shard holds {len(samples)} samples")
        sample = samples[position]
        name = (
            f"{shard.data}:{sample.key}.{sample.extension}"
            if sample.offset >= 0
            else f"{shard.data / sample.key}.{sample.extension}"
        )
        media = io.BytesIO(self._read(shard.data, sample))
        media.name = name
        return VideoRecord(sample.key, media, [sample.caption], is_image=sample.extension in IMAGE_EXTENSIONS)  # type: ignore[arg-type]

    def _read(self, data: Path, sample: Sample) -> bytes:
        if sample.offset < 0:
            return (data / f"{sample.key}.{sample.extension}").read_bytes()
        fd = self._files.get(data)
        if fd is None:
            fd = os.open(data, os.O_RDONLY)
            self._files[data] = fd
            if len(self._files) > OPEN_FILES:
                os.close(self._files.popitem(last=False)[1])
        else:
            self._files.move_to_end(data)
        content = os.pread(fd, sample.size, sample.offset)
        if len(content) != sample.size:
            raise MediaError(f"{data}:{sample.key}.{sample.extension}", "the shard ends inside this member")
        return content

    def counted(self) -> ShardRecords:
        """The same shards with the counts of their indexes (built where not cached yet)."""
        indexing = ShardRecords(self.folder, self.index_dir, self.shards, by_index=True)  # no stats warning
        counts = []
        for shard in track(self.shards, description=f"indexing {self.folder}", transient=True):
            try:
                counts.append(len(indexing._samples(shard)))
            except MediaError as err:
                log.warning("leaving out shard %s: %s", shard.data, err.reason)
                counts.append(0)
        return ShardRecords(self.folder, self.index_dir, self.shards, counts, by_index=True)

    def _samples(self, shard: Shard) -> list[Sample]:
        samples = self._indexes.get(shard.name)
        if samples is None:
            samples = self._load_or_build(shard)
            self._indexes[shard.name] = samples
        return samples

    def _load_or_build(self, shard: Shard) -> list[Sample]:
        cached = self.index_dir / f"{shard.name}.json"
        stamp = _stamp(shard.data)
        try:
            content = json.loads(cached.read_text())
            if content["version"] == INDEX_VERSION and content["stamp"] == stamp:
                return [Sample(*fields) for fields in content["samples"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        samples, failed = index_shard(shard.data)
        if len(samples) != shard.planned and not self.by_index:
            log.warning(
                "shard %s holds %d samples with media (and %d failed), its _stats.json says %d: %s",
                shard.data,
                len(samples),
                failed,
                shard.planned,
                "the missing ones are skipped"
                if len(samples) < shard.planned
                else "the extra ones are not drawn (data.shard_counts=index draws them)",
            )
        rows = [[s.key, s.extension, s.offset, s.size, s.caption] for s in samples]
        _write_index(cached, {"version": INDEX_VERSION, "stamp": stamp, "failed": failed, "samples": rows})
        return samples

    def __getstate__(self) -> dict:
        # open descriptors do not travel to worker processes that are spawned, not forked
        return {**self.__dict__, "_files": OrderedDict()}


def _stamp(data: Path) -> list[int]:
    """What invalidates a cached index: the tar's (or folder's) size and modification time."""
    status = data.stat()
    return [status.st_size, status.st_mtime_ns]


def _write_index(path: Path, content: dict) -> None:
    """Atomically, and not at all where the cache folder cannot be written (the index is then rebuilt)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(content))
        os.replace(partial, path)
    except OSError as err:
        log.warning("could not cache the shard index %s: %s", path, err)


def shard_order(counts: list[int], mix: int, generator: torch.Generator) -> list[int]:
    """A pass over sharded samples that reads ``mix`` shards at a time, each front to back.

    Shards are taken in a random order, ``mix`` at a time; within such a group the samples of its
    shards are interleaved at random (a random merge of their sequences), so consecutive samples
    mix ``mix`` shards while every shard is still read in the order it was written."""
    starts = [0, *itertools.accumulate(counts)]
    shards = torch.randperm(len(counts), generator=generator).tolist()
    passes = []
    for first in range(0, len(shards), mix):
        group = sorted(shards[first : first + mix])
        owner = torch.repeat_interleave(torch.tensor(group), torch.tensor([counts[s] for s in group]))
        owner = owner[torch.randperm(len(owner), generator=generator)]
        # the k-th appearance of shard s in the merge is its sample k: a stable sort by shard
        # lines the appearances up in the order of ``group``, each shard's in merge order
        positions = torch.argsort(owner, stable=True)
        merged = torch.empty_like(owner)
        merged[positions] = torch.cat([torch.arange(starts[s], starts[s + 1]) for s in group])
        passes.append(merged)
    return torch.cat(passes).tolist() if passes else []


class ShardSampler(ResumableSampler):
    """``ResumableSampler`` with a shard-local pass (``shard_order``) instead of a full permutation."""

    def __init__(
        self, dataset: Dataset, counts: list[int], mix: int, seed: int, num_replicas: int = 1, rank: int = 0
    ) -> None:
        super().__init__(dataset, seed, num_replicas=num_replicas, rank=rank)
        self.counts = counts
        self.mix = mix

    def permutation(self, generator: torch.Generator) -> list[int]:
        return shard_order(self.counts, self.mix, generator)
