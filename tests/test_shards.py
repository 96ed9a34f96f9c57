"""Training sets read in place from video2dataset / img2dataset shards: what is a sample, what is
dropped and counted, the shard-local order, equal batches on every rank, and exact resume."""

from __future__ import annotations

import io
import logging
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.shards import Item, write_shards
from PIL import Image

from data_modules.config import DataConfig
from data_modules.dataset import Collator, VideoTextDataset
from data_modules.readers import READERS
from data_modules.resumable import ResumableLoader
from data_modules.shards import ShardRecords, ShardSampler, find_shards, index_folder, shard_order
from data_modules.video import MediaError, read_image, read_video


def _jpeg(value: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (value % 256, (7 * value) % 256, 40)).save(out, "JPEG", quality=95)
    return out.getvalue()


def _as_float(frames: torch.Tensor) -> torch.Tensor:
    return frames.float()


def _records(folder: Path) -> ShardRecords:
    return ShardRecords(folder, index_folder(folder, None), find_shards(folder))


@pytest.fixture
def image_shards(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    """Uneven CC3M-style shards (9-digit keys): 5, 2, 7 and 1 images, and a fifth left unfinished."""
    sizes = [5, 2, 7, 1, 3]
    shards = [[Item(_jpeg(10 * s + r), "jpg", f"image {s}-{r}") for r in range(n)] for s, n in enumerate(sizes)]
    keys = write_shards(tmp_path / "cc3m", shards, digits=9, unfinished=(4,))
    return tmp_path / "cc3m", keys[:4]


@pytest.fixture
def video_shards(tiny_demo_root: Path, tmp_path: Path) -> tuple[Path, list[Path], list[str]]:
    """WebVid-style shards (8-digit keys) of the tiny demo's videos, with two failed downloads and
    a clipped video's ``_N`` keys; returns the folder, the source file of each sample and its key."""
    records = READERS["webvid"](tiny_demo_root / "webvid", "train", DataConfig())[:6]
    items = [Item(r.path.read_bytes(), "mp4", r.captions[0]) for r in records]
    items.insert(1, Item(None, "mp4", "a video that did not download"))
    items[4].suffix, items[5].suffix = "_0", "_1"
    shards = [items[:4], [Item(None, "mp4", "another failure"), *items[4:]]]
    keys = write_shards(tmp_path / "webvid", shards, digits=8)
    return tmp_path / "webvid", [r.path for r in records], sum(keys, [])


def test_finished_shards_are_found_and_an_unfinished_one_is_left_out_with_a_warning(image_shards, caplog):
    folder, keys = image_shards
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        shards = find_shards(folder)
    assert [s.name for s in shards] == ["00000", "00001", "00002", "00003"]
    assert [s.planned for s in shards] == [5, 2, 7, 1]
    assert "00004.tar" in caplog.text and "_stats.json" in caplog.text
    records = _records(folder)
    assert len(records) == 15
    assert [records[i].video_id for i in range(15)] == sum(keys, [])
    assert keys[2][0] == "000020000"  # shard 2, row 0, 9 digits
    (folder / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no finished shard"):
        find_shards(folder / "empty")


def test_image_samples_are_the_written_bytes_and_captions(image_shards):
    folder, _ = image_shards
    records = _records(folder)
    record = records[5 + 2 + 3]  # shard 2, row 3
    assert record.is_image and record.captions == ["image 2-3"]
    expected = torch.from_numpy(np.asarray(Image.open(io.BytesIO(_jpeg(23))).convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(read_image(record.path)[0], expected)
    assert "00002.tar:000020003.jpg" in record.path.name


def test_video_samples_decode_to_the_source_files_frames_and_failures_are_no_samples(video_shards):
    folder, sources, keys = video_shards
    records = _records(folder)
    assert len(records) == len(sources) == 6  # the two failed downloads are not samples
    assert keys[:3] == ["00000000", "00000002", "00000003"]  # row 1 failed
    assert keys[3:] == ["00001001_0", "00001002_1", "00001003"]  # row 0 of shard 1 failed; clip suffixes kept
    assert [records[i].video_id for i in range(6)] == keys
    index = [c for c in (folder / ".vtr-index").iterdir() if c.name == "00001.json"]
    assert index and '"failed": 1' in index[0].read_text()
    for i, source in enumerate(sources):
        for seed in (0, 1):
            from_shard = read_video(records[i].path, 4, "rand", random.Random(seed))
            from_file = read_video(source, 4, "rand", random.Random(seed))
            assert torch.equal(from_shard, from_file)


def test_a_shard_holding_fewer_samples_than_its_stats_say_skips_and_counts_the_rest(image_shards, caplog):
    folder, _ = image_shards
    stats = folder / "00001_stats.json"
    stats.write_text(stats.read_text().replace('"successes": 2', '"successes": 4'))
    dataset = VideoTextDataset(_records(folder), 1, _as_float, train=True)
    assert len(dataset) == 17
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        items = [dataset[(i, i)] for i in range(5, 9)]  # shard 1: 2 held, 2 promised
    assert [item is None for item in items] == [False, False, True, True]
    assert "holds 2 samples" in caplog.text and "says 4" in caplog.text
    batch = Collator(_Tokenizer(), 8)(items)
    assert batch["num_skipped"] == 2 and len(batch["video_id"]) == 2


def test_a_corrupt_member_is_skipped_and_counted(image_shards):
    folder, _ = image_shards
    shards = [
        [Item(_jpeg(1), "jpg", "fine"), Item(b"not a jpeg at all", "jpg", "corrupt"), Item(_jpeg(3), "jpg", "ok")]
    ]
    write_shards(folder.parent / "bad", shards, digits=9)
    dataset = VideoTextDataset(_records(folder.parent / "bad"), 1, _as_float, train=True)
    batch = Collator(_Tokenizer(), 8)([dataset[(i, 0)] for i in range(3)])
    assert batch["num_skipped"] == 1 and batch["video_id"] == ["000000000", "000000002"]


def test_the_index_is_cached_reused_and_rebuilt_when_the_shard_changes(image_shards, monkeypatch, tmp_path):
    folder, _ = image_shards
    _records(folder)[0]
    assert sorted(p.name for p in (folder / ".vtr-index").iterdir()) == ["00000.json"]
    import data_modules.shards as shards_module

    calls = []
    real = shards_module.index_shard
    monkeypatch.setattr(shards_module, "index_shard", lambda data: calls.append(data.name) or real(data))
    assert _records(folder)[4].captions == ["image 0-4"]
    assert calls == []  # the cached index served
    write_shards(tmp_path / "new", [[Item(_jpeg(9), "jpg", "replaced")] * 5], digits=9)
    os.replace(tmp_path / "new/00000.tar", folder / "00000.tar")
    assert _records(folder)[4].captions == ["replaced"]
    assert calls == ["00000.tar"]
    configured = index_folder(folder, str(tmp_path / "cache"))
    assert configured.parent == tmp_path / "cache"
    ShardRecords(folder, configured, find_shards(folder))[6]
    assert (configured / "00001.json").is_file()


def test_the_files_format_reads_like_the_tars(tmp_path):
    shards = [[Item(_jpeg(r), "jpg", f"c{r}") for r in range(3)], [Item(None, "jpg", "x"), Item(_jpeg(7), "png", "p")]]
    write_shards(tmp_path / "tars", shards, digits=9)
    write_shards(tmp_path / "files", shards, digits=9, files_format=True)
    tars, files = _records(tmp_path / "tars"), _records(tmp_path / "files")
    assert len(tars) == len(files) == 4
    for i in range(4):
        assert tars[i].video_id == files[i].video_id and tars[i].captions == files[i].captions
        assert tars[i].path.getvalue() == files[i].path.getvalue()


def test_shard_order_reads_each_shard_front_to_back_a_few_shards_at_a_time():
    counts = [5, 0, 9, 3, 7, 2, 6]
    starts = [sum(counts[:i]) for i in range(len(counts) + 1)]
    shard_of = {i: s for s in range(len(counts)) for i in range(starts[s], starts[s + 1])}
    order = shard_order(counts, 2, torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(sum(counts)))
    for s in range(len(counts)):  # each shard in the order it was written
        mine = [i for i in order if shard_of[i] == s]
        assert mine == sorted(mine)
    # consecutive groups of shards: once a shard is done it never comes back, and no more than
    # two shards are open at any point of the pass
    open_at = []
    for position in range(len(order)):
        seen, left = set(shard_of[i] for i in order[: position + 1]), set(shard_of[i] for i in order[position:])
        open_at.append(len(seen & left))
    assert max(open_at) <= 2
    again = shard_order(counts, 2, torch.Generator().manual_seed(0))
    other = shard_order(counts, 2, torch.Generator().manual_seed(1))
    assert again == order and other != order


class _Tokenizer:
    def __call__(self, captions, **_):
        n = len(captions)
        return {"input_ids": torch.zeros(n, 1, dtype=torch.long), "attention_mask": torch.ones(n, 1, dtype=torch.long)}


def _epoch_worker(rank: int, world: int, init_file: str, folder: str, queue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    records = _records(Path(folder))
    dataset = VideoTextDataset(records, 1, _as_float, train=True)
    result = {}
    for workers in (0, 2):
        sampler = ShardSampler(dataset, records.counts, 2, seed=5, num_replicas=world, rank=rank)
        context = "fork" if workers else None  # quicker than spawning the workers too
        loader = ResumableLoader(
            dataset,
            sampler,
            2,
            num_workers=workers,
            collate_fn=Collator(_Tokenizer(), 8),
            multiprocessing_context=context,
        )
        stream = iter(loader)
        keys = [key for _ in range(len(loader)) for key in next(stream)["video_id"]]
        counts = [torch.zeros(1) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([float(len(loader))]))
        gathered: list = [None] * world
        dist.all_gather_object(gathered, keys)
        result[workers] = ([int(c) for c in counts], gathered)
    if rank == 0:
        queue.put(result)
    dist.destroy_process_group()


@pytest.mark.ddp
def test_every_rank_gets_the_same_batches_per_epoch_and_no_sample_twice(image_shards):
    folder, keys = image_shards  # 15 samples in uneven shards of 5, 2, 7, 1
    everything = sum(keys, [])
    for world in (1, 2, 3):
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        with tempfile.TemporaryDirectory() as tmp:
            mp.start_processes(
                _epoch_worker, args=(world, f"{tmp}/init", str(folder), queue), nprocs=world, start_method="spawn"
            )
            result = queue.get(timeout=60)
        per_rank = (15 + world - 1) // world // 2  # batches of 2 from each rank's padded share
        for workers in (0, 2):
            counts, drawn = result[workers]
            assert counts == [per_rank] * world, (world, workers)
            flat = sum(drawn, [])
            assert len(flat) == per_rank * 2 * world
            padding = per_rank * 2 * world - 15
            assert len(flat) - len(set(flat)) <= max(padding, 0), (world, workers)
            assert set(flat) <= set(everything)
        assert result[0] == result[2]  # the worker count does not change what is drawn


def test_a_changed_world_size_warns_and_starts_the_next_pass():
    from data_modules.resumable import ResumableSampler

    class _Keys(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 12

        def __getitem__(self, key):
            return key

    one = ResumableLoader(_Keys(), ResumableSampler(_Keys(), seed=3), 2, collate_fn=list)
    stream = iter(one)
    [next(stream) for _ in range(4)]  # pass 0, batch 4 of 6
    two = ResumableLoader(_Keys(), ResumableSampler(_Keys(), seed=3, num_replicas=2, rank=0), 2, collate_fn=list)
    with pytest.warns(UserWarning, match=r"num_replicas 1 -> 2.*pass 1"):
        two.load_state_dict(one.state_dict())
    first = next(iter(two))
    fresh = ResumableSampler(_Keys(), seed=3, num_replicas=2, rank=0)
    fresh.cycle = 1
    assert first == list(fresh)[:2]


def test_a_missing_folder_and_an_unreadable_shard_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_shards(tmp_path / "nowhere")
    write_shards(tmp_path / "s", [[Item(_jpeg(0), "jpg", "a")]], digits=9)
    (tmp_path / "s/00000.tar").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(MediaError, match="00000.tar"):
        _records(tmp_path / "s")[0]


def test_counts_from_the_indexes_draw_what_the_stats_do_not_count(tmp_path, caplog):
    """video2dataset counts a clipped video once in ``successes`` but writes each clip."""
    items = [Item(_jpeg(0), "jpg", "a"), Item(_jpeg(1), "jpg", "b", "_00000"), Item(_jpeg(2), "jpg", "b", "_00001")]
    write_shards(tmp_path / "s", [items, items[:1]], digits=9)
    stats = tmp_path / "s/00000_stats.json"
    stats.write_text(stats.read_text().replace('"successes": 3', '"successes": 2'))
    planned = _records(tmp_path / "s")
    assert len(planned) == 3  # 2 + 1, as the stats say
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        planned[0]
    assert "shard_counts=index" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        counted = ShardRecords(tmp_path / "s", tmp_path / "cache", planned.shards).counted()  # not cached there
        counted[3]
    assert "shard_counts=index" not in caplog.text  # counting by index is what the warning advises
    assert counted.counts == [3, 1] and len(counted) == 4
    assert counted[2].video_id == "000000002_00001" and counted[3].captions == ["a"]


@pytest.mark.parametrize("name", ["webvid", "cc3m"])
def test_vtr_shard_round_trip_reads_the_per_file_training_set(tiny_demo_root, tmp_path, name):
    """``vtr shard`` of a per-file split, read back: the same samples (caption and media) as the
    per-file reader gives, each once."""
    from vtr.cli import main

    assert main(["shard", str(tiny_demo_root), str(tmp_path / name), "--dataset", name, "--shard-size", "3"]) == 0
    files = READERS[name](tiny_demo_root / name, "train", DataConfig())
    shards = _records(tmp_path / name)
    assert len(shards) == len(files)
    read = read_image if name == "cc3m" else lambda source: read_video(source, 4, "uniform")
    expected = sorted((r.captions[0], read(r.path).numpy().tobytes()) for r in files)
    got = sorted((shards[i].captions[0], read(shards[i].path).numpy().tobytes()) for i in range(len(shards)))
    assert got == expected
