"""Dataset items, the collator, the per-corpus readers on miniatures of their official files,
and the data module end to end on the demo corpus."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
from helpers.media import frame_number, write_clip, write_image
from torch.utils.data import SequentialSampler
from transformers import AutoTokenizer, BertTokenizerFast

from data_modules.config import DataConfig
from data_modules.datamodule import RetrievalDataModule
from data_modules.dataset import Collator, VideoRecord, VideoTextDataset
from data_modules.readers import READERS
from data_modules.readers.files import DatasetFileNotFoundError, VideoFinder
from data_modules.resumable import ResumableSampler
from data_modules.video import build_transform

WORDS = "a the red blue circle square moves left right video of small big".split()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("tok") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab))


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


# --- readers ----------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_webvid_reader(tmp_path):
    root = tmp_path / "webvid"
    header = "videoid,contentUrl,duration,page_dir,name\n"
    _write(
        root / "metadata/results_2M_train.csv",
        header + '21179416,https://x/a.mp4,PT00H00M11S,006001_006050,"Aerial shot, winter forest"\n'
        "5629994,https://x/b.mp4,PT00H00M29S,001001_001050,Young woman smiling\n",
    )
    _write(root / "metadata/results_2M_val.csv", header + "1066662,https://x/c.mp4,PT00H00M10S,001_050,A cat\n")
    train = READERS["webvid"](root, "train", DataConfig())
    assert [r.video_id for r in train] == ["21179416", "5629994"]
    assert train[0].path == root / "videos/006001_006050/21179416.mp4"
    assert train[0].captions == ["Aerial shot, winter forest"] and not train[0].is_image
    for split in ("val", "test"):
        assert [r.video_id for r in READERS["webvid"](root, split, DataConfig())] == ["1066662"]
    with pytest.raises(ValueError, match="train, val, test"):
        READERS["webvid"](root, "dev", DataConfig())
    with pytest.raises(DatasetFileNotFoundError, match=str(tmp_path / "elsewhere/metadata/results_2M_val.csv")):
        READERS["webvid"](tmp_path / "elsewhere", "val", DataConfig())


def test_cc3m_reader(tmp_path):
    root = tmp_path / "cc3m"
    elsewhere = write_image(tmp_path / "abs.jpg")
    _write(root / "cc3m_train.csv", f'caption,path\n"a dog, running",training/123\nsunset,{elsewhere}\n')
    records = READERS["cc3m"](root, "train", DataConfig())
    assert [r.path for r in records] == [root / "training/123", elsewhere]
    assert records[0].captions == ["a dog, running"] and all(r.is_image for r in records)
    assert len({r.video_id for r in records}) == 2
    with pytest.raises(ValueError, match="train, val"):
        READERS["cc3m"](root, "test", DataConfig())
    with pytest.raises(DatasetFileNotFoundError, match="cc3m_val.csv"):
        READERS["cc3m"](root, "val", DataConfig())
    _write(root / "cc3m_val.csv", "text,file\nx,y\n")
    with pytest.raises(ValueError, match="caption, path"):
        READERS["cc3m"](root, "val", DataConfig())


@pytest.fixture
def msrvtt(tmp_path):
    root = tmp_path / "msrvtt"
    sentences = [
        {"caption": f"caption {k} of video{v}", "video_id": f"video{v}", "sen_id": 10 * v + k}
        for v in range(6)
        for k in (2, 0, 1)  # out of order on purpose
    ]
    _write(root / "MSRVTT_data.json", json.dumps({"info": {}, "videos": [], "sentences": sentences}))
    _write(root / "MSRVTT_train.9k.csv", "video_id\nvideo0\nvideo1\nvideo2\nvideo3\n")
    _write(root / "MSRVTT_train.7k.csv", "video_id\nvideo0\nvideo1\n")
    _write(root / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\nret0,msr4,video4,a man sings\n"
           "ret1,msr5,video5,a cat\n")  # fmt: skip
    for v, folder in enumerate(["videos/all", "videos/all", "videos/all", "videos", "", "videos/all"]):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"video{v}.mp4").write_bytes(b"")
    return root


def test_msrvtt_reader_train_lists(msrvtt):
    train = READERS["msrvtt"](msrvtt, "train", DataConfig())
    assert [r.video_id for r in train] == ["video0", "video1", "video2", "video3"]
    assert train[1].captions == ["caption 0 of video1", "caption 1 of video1", "caption 2 of video1"]
    assert train[3].path == msrvtt / "videos/video3.mp4" and train[0].path == msrvtt / "videos/all/video0.mp4"
    seven = READERS["msrvtt"](msrvtt, "train", DataConfig(msrvtt_train_list="7k"))
    assert [r.video_id for r in seven] == ["video0", "video1"]


def test_msrvtt_validation_list_is_held_out_of_training(msrvtt):
    with pytest.raises(DatasetFileNotFoundError, match=str(msrvtt / "MSRVTT_val.csv")):
        READERS["msrvtt"](msrvtt, "val", DataConfig())
    _write(msrvtt / "MSRVTT_val.csv", "video_id\nvideo2\n")
    val = READERS["msrvtt"](msrvtt, "val", DataConfig())
    assert [(r.video_id, len(r.captions)) for r in val] == [("video2", 3)]
    assert [r.video_id for r in READERS["msrvtt"](msrvtt, "train", DataConfig())] == ["video0", "video1", "video3"]


def test_msrvtt_test_captions(msrvtt):
    jsfusion = READERS["msrvtt"](msrvtt, "test", DataConfig())
    assert [(r.video_id, r.captions) for r in jsfusion] == [("video4", ["a man sings"]), ("video5", ["a cat"])]
    assert jsfusion[0].path == msrvtt / "video4.mp4"
    every = READERS["msrvtt"](msrvtt, "test", DataConfig(msrvtt_test_captions="all"))
    assert every[1].captions == ["caption 0 of video5", "caption 1 of video5", "caption 2 of video5"]


def test_msrvtt_missing_videos_and_files(msrvtt):
    (msrvtt / "videos/all/video1.mp4").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=r"1 of 4 .*video1\.mp4.*videos/all"):
        READERS["msrvtt"](msrvtt, "train", DataConfig())
    (msrvtt / "MSRVTT_data.json").unlink()
    with pytest.raises(DatasetFileNotFoundError, match="MSRVTT_data.json"):
        READERS["msrvtt"](msrvtt, "test", DataConfig(msrvtt_test_captions="all"))


def test_video_finder_lists_each_folder_once(tmp_path, monkeypatch):
    for rel in ("a/x.avi", "b/x.avi", "b/y.avi", "b/m1/z.avi"):
        _write(tmp_path / rel, "")
    listed = []
    real_listdir = __import__("os").listdir
    monkeypatch.setattr("data_modules.readers.files.os.listdir", lambda p: listed.append(p) or real_listdir(p))
    find = VideoFinder(tmp_path, ["a", "b"])
    assert find("x.avi") == tmp_path / "a/x.avi"  # the first folder wins
    assert find("y.avi") == tmp_path / "b/y.avi" and find("m1/z.avi") == tmp_path / "b/m1/z.avi"
    assert find("w.avi") is None
    assert sorted(map(str, listed)) == sorted(str(tmp_path / p) for p in ("a", "b", "b/m1"))


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
