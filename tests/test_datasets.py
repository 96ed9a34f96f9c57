"""Dataset items, the collator, and the data module end to end on the demo corpus (the per-corpus
readers are tested in test_readers.py)."""

from __future__ import annotations

import functools
import logging
import os
import pickle
import random

import pytest
import torch
from helpers.media import frame_number, write_clip, write_image
from helpers.text import word_tokenizer
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import SequentialSampler
from transformers import AutoTokenizer

from data_modules.config import DataConfig
from data_modules.datamodule import RetrievalDataModule, WorkerInit
from data_modules.dataset import Collator, VideoRecord, VideoTextDataset
from data_modules.resumable import ResumableSampler
from data_modules.video import build_transform

WORDS = "a the red blue circle square moves left right video of small big".split()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return word_tokenizer(tmp_path_factory.mktemp("tok"), WORDS)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    return {
        "clip": write_clip(folder / "clip.mp4", 40),
        "image": write_image(folder / "image.jpg"),
        "broken": folder / "broken.mp4",
    }


def _records(media) -> list[VideoRecord]:
    return [
        VideoRecord("v0", media["clip"], ["a red circle moves left", "the red circle"]),
        VideoRecord("img", media["image"], ["a blue square"], is_image=True),
        VideoRecord("bad", media["broken"], ["a big video"]),
    ]


# --- dataset and collator ---------------------------------------------------------------------


def test_train_items(media):
    data = VideoTextDataset(_records(media), 4, build_transform(32, train=True), train=True)
    clip, image = data[0], data[1]
    assert clip["video"].shape == (4, 3, 32, 32) and clip["video"].dtype == torch.float32
    assert clip["caption"] in _records(media)[0].captions and clip["video_id"] == "v0"
    assert image["video"].shape == (1, 3, 32, 32) and image["caption"] == "a blue square"
    assert {data[0]["caption"] for _ in range(30)} == set(_records(media)[0].captions)


def test_eval_items_use_uniform_frames_and_all_captions(media):
    identity = lambda clip: clip  # noqa: E731 (keeps uint8 frames to read their numbers)
    data = VideoTextDataset(_records(media), 4, identity, train=False)
    item = data[0]
    assert item["captions"] == _records(media)[0].captions and "caption" not in item
    assert [frame_number(f.numpy()) for f in item["video"]] == [4, 14, 24, 34]  # segment middles of 40 frames
    assert torch.equal(data[0]["video"], item["video"])


def test_unreadable_media_are_logged_and_dropped(media, caplog):
    data = VideoTextDataset(_records(media), 4, build_transform(32, train=True), train=True)
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        assert data[2] is None
    assert str(media["broken"]) in caplog.text and "file not found" in caplog.text


def test_collator_training_batch(media, tokenizer):
    data = VideoTextDataset(_records(media)[:1] * 2 + _records(media)[2:], 4, build_transform(32, True), True)
    batch = Collator(tokenizer, max_length=4)([data[0], data[2], data[1]])
    assert batch["num_skipped"] == 1 and batch["video_id"] == ["v0", "v0"]
    assert batch["video"].shape == (2, 4, 3, 32, 32)
    ids, mask = batch["text"]["input_ids"], batch["text"]["attention_mask"]
    assert ids.shape[0] == 2 and ids.shape == mask.shape and ids.shape[1] <= 4  # truncated to max_length
    assert "caption_id" not in batch


def test_collator_eval_batch_flattens_captions(media, tokenizer):
    data = VideoTextDataset(_records(media), 4, build_transform(32, False), False)
    clips = [data[0], data[2], VideoTextDataset(_records(media)[:1], 4, build_transform(32, False), False)[0]]
    clips[2]["video_id"] = "v1"
    batch = Collator(tokenizer, max_length=16)(clips)
    assert batch["num_skipped"] == 1 and batch["video"].shape == (2, 4, 3, 32, 32)
    assert batch["caption_video_id"] == ["v0", "v0", "v1", "v1"]
    assert batch["caption_id"] == ["v0#0", "v0#1", "v1#0", "v1#1"]
    expected = tokenizer(["a red circle moves left", "the red circle"] * 2, padding="longest", return_tensors="pt")
    assert torch.equal(batch["text"]["input_ids"], expected["input_ids"])
    assert torch.equal(batch["text"]["attention_mask"], expected["attention_mask"])


def test_collator_all_dropped_batch_and_pickling(tokenizer):
    collate = pickle.loads(pickle.dumps(Collator(tokenizer, 8)))  # DataLoader workers get a copy
    batch = collate([None, None])
    assert batch["num_skipped"] == 2 and batch["video"].shape[0] == 0 and batch["video_id"] == []
    assert batch["text"]["input_ids"].shape == (0, 0) and batch["caption_id"] == batch["caption_video_id"] == []


# --- data module ------------------------------------------------------------------------------


def test_data_module_on_the_demo_corpus(tiny_demo_root):
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer")
    cfg = DataConfig(
        root=str(tiny_demo_root), train=["webvid", "cc3m"], val=["webvid", "msrvtt"], test=["msrvtt"],
        num_frames=4, eval_num_frames=3, input_res=32, batch_size=2, eval_batch_size=3, num_workers=0,
    )  # fmt: skip
    dm = RetrievalDataModule(cfg, tokenizer)
    dm.setup("fit")
    dm.setup("test")
    combined = dm.train_dataloader()
    for loader in combined.iterables.values():
        assert loader.drop_last and isinstance(loader.sampler, ResumableSampler) and loader.batch_size == 2
    batch, _, _ = next(iter(combined))  # CombinedLoader yields (batch, batch_idx, loader_idx)
    assert set(batch) == {"webvid", "cc3m"}
    assert batch["webvid"]["video"].shape == (2, 4, 3, 32, 32) and batch["webvid"]["video"].dtype == torch.float32
    assert batch["cc3m"]["video"].shape == (2, 1, 3, 32, 32)
    for part in batch.values():
        assert part["num_skipped"] == 0 and part["text"]["input_ids"].shape[0] == 2
        assert part["text"]["input_ids"].dtype == torch.long
    assert dm.val_names == ["webvid", "msrvtt"] and dm.test_names == ["msrvtt"]
    for loaders in (dm.val_dataloader(), dm.test_dataloader()):
        for loader in loaders:
            assert isinstance(loader.sampler, SequentialSampler) and not loader.drop_last
            eval_batch = next(iter(loader))
            assert eval_batch["video"].shape == (3, 3, 3, 32, 32)
            assert len(eval_batch["caption_id"]) == eval_batch["text"]["input_ids"].shape[0] >= 3
            assert set(eval_batch["caption_video_id"]) == set(eval_batch["video_id"])


def test_data_module_subsets_and_unknown_names(tiny_demo_root):
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer")
    cfg = DataConfig(root=str(tiny_demo_root), input_res=32, train=["webvid"], val=["msrvtt"], max_train_samples=3,
                     max_eval_samples=2, batch_size=2, num_workers=1)  # fmt: skip
    dm = RetrievalDataModule(cfg, tokenizer)
    dm.setup("fit")
    assert len(dm.train_sets["webvid"]) == 3 and len(dm.val_sets["msrvtt"]) == 2
    (val_loader,) = dm.val_dataloader()
    assert val_loader.persistent_workers
    assert next(iter(val_loader))["video_id"] == [r.video_id for r in dm.val_sets["msrvtt"].records]  # via a worker
    small = RetrievalDataModule(
        DataConfig(root=str(tiny_demo_root), input_res=32, train=["webvid"], val=[], max_train_samples=1, batch_size=2),
        tokenizer,
    )
    small.setup("fit")
    with pytest.raises(ValueError, match="webvid has 1 items, fewer than data.batch_size=2"):
        small.train_dataloader()
    with pytest.raises(ValueError, match="unknown dataset 'kinetics'"):
        RetrievalDataModule(DataConfig(root=str(tiny_demo_root), input_res=32, train=["kinetics"]), tokenizer).setup(
            "fit"
        )


class _WorkerProbe(torch.utils.data.Dataset):
    """What a loader worker sees: its niceness and the first draws of its global RNGs."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple[int, float, float]:
        return os.getpriority(os.PRIO_PROCESS, 0), random.random(), torch.rand(()).item()


def _first_item_of_a_worker(init) -> tuple[int, float, float]:
    loader = torch.utils.data.DataLoader(
        _WorkerProbe(), batch_size=None, num_workers=1, worker_init_fn=init, generator=torch.Generator().manual_seed(3)
    )
    return next(iter(loader))


def test_loader_workers_yield_the_cpu_and_are_seeded_as_lightning_seeds_them(tiny_demo_root, monkeypatch):
    monkeypatch.setenv("PL_SEED_WORKERS", "1")  # as seed_everything(workers=True) sets it
    base = os.getpriority(os.PRIO_PROCESS, 0)
    nice, *draws = _first_item_of_a_worker(WorkerInit(19, rank=0))
    assert nice == min(base + 19, 19)
    lightning_nice, *lightning_draws = _first_item_of_a_worker(functools.partial(pl_worker_init_function, rank=0))
    assert draws == lightning_draws and lightning_nice == base
    assert _first_item_of_a_worker(WorkerInit(0, rank=0))[0] == base
    # data.worker_nice=null: 19 for a model on the CPU (no trainer attached: no GPU here)
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer")
    auto = RetrievalDataModule(DataConfig(root=str(tiny_demo_root), input_res=32), tokenizer)
    assert auto.cfg.worker_nice is None and auto._worker_init().nice == (0 if torch.cuda.is_available() else 19)
