"""A per-file training set as shard rows: ``vtr shard``'s input, read with the project's readers.

Each dataset's rows carry the columns its tool writes into a sample's ``.json``: for WebVid,
video2dataset's WebVid recipe (``--url_col contentUrl --save_additional_columns
'[videoid,page_idx,page_dir,duration]'``; ``page_idx`` is null where the metadata CSV has no such
column, as the release's ``results_2M_*.csv`` has not); for CC3M, whose ``caption,path`` list
holds no url, the url is the image file's ``file://`` URI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data_modules.config import DataConfig
from data_modules.preprocess import Settings
from data_modules.readers import READERS
from data_modules.readers.files import read_csv
from data_modules.readers.webvid import SPLIT_CSV
from data_modules.shard_writer import Row, ShardSpec, Summary, write_shards

WEBVID_COLUMNS = ("videoid", "page_idx", "page_dir", "duration")


def webvid_rows(root: Path, cfg: DataConfig) -> list[Row]:
    """The train split's rows in CSV order; the reader's records give the caption and the file."""
    records = READERS["webvid"](root, "train", cfg)
    metadata = read_csv(root / "metadata" / SPLIT_CSV["train"], "WebVid train metadata", ("videoid", "contentUrl"))
    rows = []
    for record, columns in zip(records, metadata, strict=True):
        assert columns["videoid"] == record.video_id, "the reader and the CSV disagree on the row order"
        extra = {"url": columns["contentUrl"]} | {name: columns.get(name) for name in WEBVID_COLUMNS}
        rows.append(Row(record.captions[0], extra, record.path))
    return rows


def cc3m_rows(root: Path, cfg: DataConfig) -> list[Row]:
    """The train split's rows in list order."""
    records = READERS["cc3m"](root, "train", cfg)
    return [Row(r.captions[0], {"url": r.path.absolute().as_uri()}, r.path) for r in records]


# dataset -> (rows of its train split, the shard kind, the tool's default rows a shard)
SOURCES: dict[str, tuple[Callable[[Path, DataConfig], list[Row]], str, int]] = {
    "webvid": (webvid_rows, "video", 1000),
    "cc3m": (cc3m_rows, "image", 10_000),
}


def shard_dataset(
    src_root: Path,
    dst: Path,
    dataset: str,
    shard_size: int | None = None,
    output_format: str = "webdataset",
    settings: Settings | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Summary:
    """Write ``{src_root}/{dataset}``'s train split as shards in ``dst`` (the tools' output folder)."""
    if dataset not in SOURCES:
        raise ValueError(f"vtr shard reads {', '.join(SOURCES)}, not {dataset!r}")
    read, kind, default_size = SOURCES[dataset]
    if settings is not None and kind == "image":
        raise ValueError("re-encoding settings apply to videos; images are copied, as vtr preprocess copies them")
    spec = ShardSpec(
        kind, default_size if shard_size is None else shard_size, output_format=output_format, settings=settings
    )
    return write_shards(read(Path(src_root) / dataset, DataConfig()), Path(dst), spec, workers, progress)
