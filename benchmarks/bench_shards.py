"""Training data from shards vs from one file a clip: loader throughput, start-up, resume cost.

* **Throughput**: clips/s through the training dataset (``rand`` frames, the training
  transform, a caption) and a DataLoader with 0 / 1 / 2 workers, in the order training draws
  them (``ShardSampler`` for shards, ``ResumableSampler`` for files), on the demo's WebVid
  training clips and on a larger set of 20,000 clips (copies of the demo's, so per-file and
  sharded hold the same bytes). The page cache is warm in both: on a local disk this measures
  the reading path's own cost, not the small-file penalty of a cluster filesystem.
* **Start-up**: a set of 5,000 shards, from nothing to the first batch: finding the shards and
  reading their ``_stats.json``, the pass order, the first batch (whose shards are indexed on
  first touch), then again with the indexes cached.
* **Resume**: the skip-ahead of a resumed run is building the pass order and slicing it; timed at
  WebVid-2M's size (2,500 shards of 1,000) next to the per-file permutation.

    python benchmarks/bench_shards.py [--root data/demo] [--clips 20000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from data_modules.config import DataConfig
from data_modules.dataset import Collator, VideoRecord, VideoTextDataset
from data_modules.demo import generate_demo_corpus
from data_modules.readers import READERS
from data_modules.resumable import ResumableLoader, ResumableSampler
from data_modules.shard_writer import Row, ShardSpec, write_shards
from data_modules.shards import ShardRecords, ShardSampler, find_shards, index_folder
from data_modules.video import build_transform

ROOT = Path(__file__).resolve().parents[1]
WORKERS = (0, 1, 2)
BATCH = 16
FRAMES = 4
INPUT_RES = 64  # the demo model's


class _Tokenizer:
    """Captions are not what is measured: a fixed one-token encoding."""

    def __call__(self, captions: list[str], **_: object) -> dict[str, torch.Tensor]:
        ones = torch.ones(len(captions), 1, dtype=torch.long)
        return {"input_ids": ones, "attention_mask": ones}


def _loader(records, workers: int) -> ResumableLoader:
    dataset = VideoTextDataset(records, FRAMES, build_transform(INPUT_RES, train=True), train=True)
    if isinstance(records, ShardRecords):
        sampler: ResumableSampler = ShardSampler(dataset, records.counts, 8, seed=0)
    else:
        sampler = ResumableSampler(dataset, seed=0)
    collate = Collator(_Tokenizer(), 8)
    return ResumableLoader(
        dataset, sampler, BATCH, num_workers=workers, persistent_workers=workers > 0, collate_fn=collate
    )


def clips_per_second(records, workers: int, items: int, repeats: int) -> float:
    """Best of ``repeats`` timed runs of ``items`` clips after a warm-up run of as many."""
    loader = _loader(records, workers)
    stream = iter(loader)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(items // BATCH):
            next(stream)
        times.append(time.perf_counter() - start)
    return items / min(times[1:])


def throughput(name: str, files: list[VideoRecord], shards: ShardRecords, items: int, repeats: int) -> list[dict]:
    rows = []
    for workers in WORKERS:
        rates = {
            "files": clips_per_second(files, workers, items, repeats),
            "shards": clips_per_second(shards, workers, items, repeats),
        }
        for layout, rate in rates.items():
            per_worker, vs_files = round(rate / max(workers, 1), 1), round(rate / rates["files"], 2)
            rows.append(dict(set=name, layout=layout, workers=workers, clips_per_s=round(rate, 1),
                             per_worker=per_worker, vs_files=vs_files))  # fmt: skip
    return rows


def larger_set(demo: list[VideoRecord], clips: int, folder: Path) -> tuple[list[VideoRecord], ShardRecords]:
    """``clips`` copies of the demo's clips, as files and as 1,000-clip shards."""
    records = []
    for i in range(clips):
        source = demo[i % len(demo)]
        path = folder / "files" / f"{i // 1000:03d}" / f"{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.path, path)
        records.append(VideoRecord(str(i), path, source.captions))
    rows = [Row(r.captions[0], {"url": r.path.as_uri()}, r.path) for r in records]
    write_shards(rows, folder / "shards", ShardSpec("video", 1000), workers=2, progress=False)
    return records, _shards(folder / "shards")


def _shards(folder: Path) -> ShardRecords:
    return ShardRecords(folder, index_folder(folder, None), find_shards(folder))


def startup(folder: Path, shards: int) -> dict:
    """From nothing to the first batch over ``shards`` two-image shards, cold and with cached indexes."""
    image = folder / "image.jpg"
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (90, 30, 200)).save(image)
    rows = [Row(f"caption {i}", {"url": image.as_uri()}, image) for i in range(2 * shards)]
    write_shards(rows, folder / "shards", ShardSpec("image", 2, keys_per_shard=10_000), workers=2, progress=False)
    result = {"shards": shards}
    for state in ("cold", "cached"):
        start = time.perf_counter()
        records = _shards(folder / "shards")
        found = time.perf_counter()
        next(iter(_loader(records, 0)))
        result[f"{state}_find_s"] = round(found - start, 3)
        result[f"{state}_first_batch_s"] = round(time.perf_counter() - start, 3)
    return result


def resume_cost(shards: int, per_shard: int) -> dict:
    """Seconds to start a pass at its beginning and halfway (what a resume does), at this size."""

    class _Sized(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return shards * per_shard

    dataset = _Sized()
    result = {"samples": shards * per_shard}
    for name, sampler in (
        ("files", ResumableSampler(dataset, seed=0)),
        ("shards", ShardSampler(dataset, [per_shard] * shards, 8, seed=0)),
    ):
        for skip in (0, len(dataset) // 2):
            sampler.skip = skip
            start = time.perf_counter()
            next(iter(sampler))
            result[f"{name}_skip{'0' if skip == 0 else '_half'}_s"] = round(time.perf_counter() - start, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT / "data/demo")
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=256, help="clips per timed run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--startup-shards", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/shards.json")
    args = parser.parse_args()
    generate_demo_corpus(args.root)
    torch.set_num_threads(1)
    demo_files = READERS["webvid"](args.root / "webvid", "train", DataConfig())
    rows = throughput("demo webvid", demo_files, _shards(args.root / "shards/webvid"), args.items, args.repeats)
    with tempfile.TemporaryDirectory(dir=ROOT / "data") as tmp:
        files, shards = larger_set(demo_files, args.clips, Path(tmp) / "large")
        rows += throughput(f"{args.clips} clips", files, shards, args.items, args.repeats)
        start = startup(Path(tmp) / "startup", args.startup_shards)
    resume = resume_cost(2500, 1000)
    print("| set | layout | workers | clips/s | per worker | vs files |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            "| "
            + " | ".join(str(r[k]) for k in ("set", "layout", "workers", "clips_per_s", "per_worker", "vs_files"))
            + " |"
        )
    print(f"\nstart-up over {start['shards']} shards: {json.dumps(start)}")
    print(f"pass order at {resume['samples']:,} samples: {json.dumps(resume)}")
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "throughput": rows,
                "startup": start,
                "resume": resume,
            },
            indent=1,
        )
        + "\n"  # fmt: skip
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
