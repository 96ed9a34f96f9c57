"""Shards in video2dataset / img2dataset's layout, written here with ``tarfile`` from the format's
description (not with the project's writer), so the reader is tested against the format itself."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Item:
    """A sample to write: its media bytes (None: a failed download, written without media)."""

    media: bytes | None
    extension: str
    caption: str
    suffix: str = ""  # "_N" of a clipped video


def _add(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    tar.addfile(info, io.BytesIO(content))


def write_shards(
    folder: Path,
    shards: list[list[Item]],
    digits: int,
    *,
    unfinished: tuple[int, ...] = (),
    files_format: bool = False,
) -> list[list[str]]:
    """Write each list of items as shard ``NNNNN`` (its stats last, except for ``unfinished``);
    returns each shard's keys of the samples with media, in order. Keys are
    ``10**(digits - 5) * shard + row`` zero-padded to ``digits``, as the tools number them."""
    folder.mkdir(parents=True, exist_ok=True)
    keys_with_media = []
    for number, items in enumerate(shards):
        stem = f"{number:05d}"
        members = []
        for row, item in enumerate(items):
            key = f"{10 ** (digits - 5) * number + row:0{digits}d}{item.suffix}"
            status = "success" if item.media is not None else "failed_to_download"
            meta = {"key": key, "caption": item.caption, "status": status, "url": f"https://example.invalid/{key}"}
            if item.media is not None:
                members.append((f"{key}.{item.extension}", item.media))
            members += [(f"{key}.txt", item.caption.encode()), (f"{key}.json", json.dumps(meta).encode())]
        if files_format:
            (folder / stem).mkdir()
            for name, content in members:
                (folder / stem / name).write_bytes(content)
        else:
            with tarfile.open(folder / f"{stem}.tar", "w") as tar:
                for name, content in members:
                    _add(tar, name, content)
        with_media = [i for i in items if i.media is not None]
        keys_with_media.append(
            [
                f"{10 ** (digits - 5) * number + row:0{digits}d}{i.suffix}"
                for row, i in enumerate(items)
                if i.media is not None
            ]
        )
        if number not in unfinished:
            stats = {
                "count": len(items),
                "successes": len(with_media),
                "failed_to_download": len(items) - len(with_media),
                "failed_to_subsample": 0,
                "status_dict": {"success": len(with_media)},
            }
            (folder / f"{stem}_stats.json").write_text(json.dumps(stats))
    return keys_with_media


def shard_demo_train_sets(demo_root: Path, out: Path) -> dict[str, Path]:
    """The tiny demo's WebVid and CC3M training sets as shards (3 samples a shard, the last
    shorter, one failed download in WebVid's first), for runs that train from shards."""
    from data_modules.config import DataConfig
    from data_modules.readers import READERS

    folders = {}
    for name, extension, digits in (("webvid", "mp4", 8), ("cc3m", "jpg", 9)):
        records = READERS[name](demo_root / name, "train", DataConfig())
        items = [Item(record.path.read_bytes(), extension, record.captions[0]) for record in records]
        if name == "webvid":
            items.insert(1, Item(None, extension, "a failed download"))
        write_shards(out / name, [items[i : i + 3] for i in range(0, len(items), 3)], digits)
        folders[name] = out / name
    return folders
