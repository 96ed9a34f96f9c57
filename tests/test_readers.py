"""The per-corpus readers (data_modules/readers/: WebVid, CC3M, MSR-VTT, LSMDC, ActivityNet, DiDeMo,
HMDB51, UCF101) on hand-written miniatures of their official files (and the quirks of the real
ones), ``data.video_dir`` and the video finder, shared caption ids in the collator, and the data
module on the demo corpus for each of the benchmark readers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.media import write_clip, write_image
from helpers.text import word_tokenizer
from transformers import AutoTokenizer

from data_modules.config import DataConfig
from data_modules.datamodule import RetrievalDataModule
from data_modules.dataset import Collator, VideoTextDataset
from data_modules.readers import READERS
from data_modules.readers.files import DatasetFileNotFoundError, VideoFinder
from data_modules.video import build_transform


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _touch(root: Path, *names: str) -> None:
    """Empty placeholder videos: the readers only resolve paths."""
    for name in names:
        _write(root / name, "")


# --- WebVid, CC3M, MSR-VTT -------------------------------------------------------------------


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
    real_listdir = os.listdir
    monkeypatch.setattr("data_modules.readers.files.os.listdir", lambda p: listed.append(p) or real_listdir(p))
    find = VideoFinder(tmp_path, ["a", "b"])
    assert find("x.avi") == tmp_path / "a/x.avi"  # the first folder wins
    assert find("y.avi") == tmp_path / "b/y.avi" and find("m1/z.avi") == tmp_path / "b/m1/z.avi"
    assert find("w.avi") is None
    assert sorted(map(str, listed)) == sorted(str(tmp_path / p) for p in ("a", "b", "b/m1"))


# --- LSMDC ------------------------------------------------------------------------------------

CLIP_A = "0001_American_Beauty_00.00.51.926-00.00.54.129"
CLIP_B = "0001_American_Beauty_00.00.54.500-00.00.57.000"
CLIP_C = "1004_Juno_00.01.02.000-00.01.05.250"


def _lsmdc_line(clip_id: str, *sentence: str) -> str:
    return "\t".join([clip_id, "00.00.51.926", "00.00.54.129", "00.00.51.000", "00.00.55.000", *sentence]) + "\r\n"


@pytest.fixture
def lsmdc(tmp_path: Path) -> Path:
    root = tmp_path / "lsmdc"
    # A sentence opening with a stray quote (a quoting CSV parser reads on into the next line) and a tab in one.
    train = _lsmdc_line(CLIP_A, '"SOMEONE looks up.') + _lsmdc_line(CLIP_B, "He smiles.") + "\n"
    _write(root / "LSMDC16_annos_training.csv", train + _lsmdc_line(CLIP_C, "She opens", "the door. "))
    _write(root / "LSMDC16_annos_val.csv", _lsmdc_line(CLIP_B, "val sentence") + _lsmdc_line(CLIP_B, "twice"))
    _write(root / "LSMDC16_challenge_1000_publictect.csv", _lsmdc_line(CLIP_C, "test sentence"))
    _touch(root, f"avi/0001_American_Beauty/{CLIP_A}.avi", f"avi/0001_American_Beauty/{CLIP_B}.avi")
    _touch(root, f"avi/1004_Juno/{CLIP_C}.mp4")  # converted: no avi
    return root


def test_lsmdc_reader(lsmdc):
    train = READERS["lsmdc"](lsmdc, "train", DataConfig())
    assert [r.video_id for r in train] == [CLIP_A, CLIP_B, CLIP_C]
    assert [r.captions for r in train] == [['"SOMEONE looks up.'], ["He smiles."], ["She opens the door."]]
    assert train[0].path == lsmdc / f"avi/0001_American_Beauty/{CLIP_A}.avi"
    assert train[2].path == lsmdc / f"avi/1004_Juno/{CLIP_C}.mp4" and train[0].caption_ids is None
    val = READERS["lsmdc"](lsmdc, "val", DataConfig())
    assert [(r.video_id, r.captions) for r in val] == [(CLIP_B, ["val sentence", "twice"])]  # ids stay unique
    assert [r.captions for r in READERS["lsmdc"](lsmdc, "test", DataConfig())] == [["test sentence"]]


def test_lsmdc_errors(lsmdc):
    (lsmdc / f"avi/1004_Juno/{CLIP_C}.mp4").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=rf"1 of 3 LSMDC .*{CLIP_C}\.avi or .*{CLIP_C}\.mp4.*avi"):
        READERS["lsmdc"](lsmdc, "train", DataConfig())
    (lsmdc / "LSMDC16_annos_val.csv").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=str(lsmdc / "LSMDC16_annos_val.csv")):
        READERS["lsmdc"](lsmdc, "val", DataConfig())
    _write(lsmdc / "LSMDC16_annos_val.csv", f"{CLIP_A}\tonly a sentence\n")
    with pytest.raises(ValueError, match=r"LSMDC16_annos_val.csv:1: expected 6"):
        READERS["lsmdc"](lsmdc, "val", DataConfig())
    with pytest.raises(ValueError, match="train, val, test"):
        READERS["lsmdc"](lsmdc, "dev", DataConfig())


def test_video_dir_is_searched_first(lsmdc, tmp_path):
    _touch(lsmdc, f"clips/1004_Juno/{CLIP_C}.avi")
    relative = READERS["lsmdc"](lsmdc, "test", DataConfig(video_dir="clips"))
    assert relative[0].path == lsmdc / f"clips/1004_Juno/{CLIP_C}.avi"
    _touch(tmp_path, f"disk2/0001_American_Beauty/{CLIP_B}.mp4")  # wins over the avi in avi/
    absolute = READERS["lsmdc"](lsmdc, "val", DataConfig(video_dir=str(tmp_path / "disk2")))
    assert absolute[0].path == tmp_path / f"disk2/0001_American_Beauty/{CLIP_B}.mp4"


def test_video_dir_for_msrvtt_and_webvid(tmp_path):
    msrvtt = tmp_path / "msrvtt"
    sentences = [{"caption": "a man sings", "video_id": "video7", "sen_id": 0}]
    _write(msrvtt / "MSRVTT_data.json", json.dumps({"sentences": sentences}))
    _write(msrvtt / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\nret0,msr7,video7,a man sings\n")
    _touch(tmp_path, "msrvtt/videos/all/video7.mp4", "mine/video7.mp4")
    assert READERS["msrvtt"](msrvtt, "test", DataConfig())[0].path == msrvtt / "videos/all/video7.mp4"
    moved = READERS["msrvtt"](msrvtt, "test", DataConfig(video_dir=str(tmp_path / "mine")))
    assert moved[0].path == tmp_path / "mine/video7.mp4"
    webvid = tmp_path / "webvid"
    header = "videoid,contentUrl,duration,page_dir,name\n"
    _write(webvid / "metadata/results_2M_val.csv", header + "7,u,PT10S,001_050,A cat\n")
    assert READERS["webvid"](webvid, "val", DataConfig(video_dir="/data/wv"))[0].path == Path("/data/wv/001_050/7.mp4")
    assert READERS["webvid"](webvid, "val", DataConfig(video_dir="mp4"))[0].path == webvid / "mp4/001_050/7.mp4"


# --- ActivityNet Captions ---------------------------------------------------------------------


@pytest.fixture
def activitynet(tmp_path: Path) -> Path:
    root = tmp_path / "activitynet"
    train = {
        "v_QOlSCBRmfWY": {"duration": 82.73, "timestamps": [[0.83, 19.86], [17.37, 60.81], [56.26, 79.42]],
                          "sentences": ["A young woman is seen standing in a room. ", " She then begins to dance.",
                                        " She ends by bowing."]},
        "v_ehGHCYKzyZ8": {"duration": 61.72, "timestamps": [[0, 20.0]], "sentences": ["A man plays drums."]},
    }  # fmt: skip
    _write(root / "train.json", json.dumps(train))
    _write(root / "val_1.json", json.dumps({"v_uqiMw7tQ1Cc": {"duration": 55.1, "timestamps": [[0, 5]],
                                                              "sentences": ["A weight lifter lifts."]}}))  # fmt: skip
    _touch(root, "videos/v_QOlSCBRmfWY.mp4", "videos/all/v_ehGHCYKzyZ8.mkv", "v_uqiMw7tQ1Cc.webm")
    return root


def test_activitynet_reader(activitynet):
    train = READERS["activitynet"](activitynet, "train", DataConfig())
    assert [r.video_id for r in train] == ["v_QOlSCBRmfWY", "v_ehGHCYKzyZ8"]
    assert train[0].captions == [
        "A young woman is seen standing in a room. She then begins to dance. She ends by bowing."
    ]
    assert train[0].path == activitynet / "videos/v_QOlSCBRmfWY.mp4"
    assert train[1].path == activitynet / "videos/all/v_ehGHCYKzyZ8.mkv"
    for split in ("val", "test"):  # both are val_1, the standard protocol's evaluation set
        (record,) = READERS["activitynet"](activitynet, split, DataConfig())
        assert record.video_id == "v_uqiMw7tQ1Cc" and record.path == activitynet / "v_uqiMw7tQ1Cc.webm"


def test_activitynet_errors(activitynet):
    (activitynet / "videos/all/v_ehGHCYKzyZ8.mkv").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=r"1 of 2 ActivityNet .*v_ehGHCYKzyZ8\.mp4"):
        READERS["activitynet"](activitynet, "train", DataConfig())
    (activitynet / "val_1.json").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=str(activitynet / "val_1.json")):
        READERS["activitynet"](activitynet, "test", DataConfig())


# --- DiDeMo -----------------------------------------------------------------------------------


STEM_A, STEM_B = "10015567@N08_3655084291_d8b58466fa", "54322086@N00_2408598493_86d9b6a6e2"  # Flickr names


def _moment(video: str, description: str) -> dict:
    return {"annotation_id": 0, "description": description, "video": video, "times": [[0, 0]] * 4,
            "num_segments": 6, "dl_link": "https://example.com"}  # fmt: skip


@pytest.fixture
def didemo(tmp_path: Path) -> Path:
    root = tmp_path / "didemo"
    a, b, c = f"{STEM_A}.mov", f"{STEM_B}.avi", "1_2_3"
    moments = [_moment(a, "a girl runs "), _moment(b, "camera pans left"), _moment(a, "she falls down"),
               _moment(c, "a dog barks"), _moment(a, "she gets up")]  # fmt: skip
    _write(root / "train_data.json", json.dumps(moments))
    _write(root / "test_data.json", json.dumps([_moment(b, "only")]))
    # On disk: a as given, b converted to mp4, c (no extension in the json) as a 3gp.
    _touch(root, f"videos/{a}", f"videos/{STEM_B}.mp4", "1_2_3.3gp")
    return root


def test_didemo_reader(didemo):
    train = READERS["didemo"](didemo, "train", DataConfig())
    assert [r.video_id for r in train] == [STEM_A, STEM_B, "1_2_3"]
    assert [r.captions for r in train] == [
        ["a girl runs she falls down she gets up"],
        ["camera pans left"],
        ["a dog barks"],
    ]  # descriptions joined in file order
    assert [r.path.relative_to(didemo).as_posix() for r in train] == [
        f"videos/{STEM_A}.mov",
        f"videos/{STEM_B}.mp4",
        "1_2_3.3gp",
    ]
    assert [r.video_id for r in READERS["didemo"](didemo, "test", DataConfig())] == [STEM_B]
    with pytest.raises(DatasetFileNotFoundError, match=str(didemo / "val_data.json")):
        READERS["didemo"](didemo, "val", DataConfig())
    (didemo / "1_2_3.3gp").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=r"1 of 3 DiDeMo videos not found \(first: 1_2_3 or 1_2_3\.mp4"):
        READERS["didemo"](didemo, "train", DataConfig())


# --- HMDB51 and UCF101 ------------------------------------------------------------------------


@pytest.fixture
def hmdb51(tmp_path: Path) -> Path:
    root = tmp_path / "hmdb51"
    _write(root / "splits/brush_hair_test_split1.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
           "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 2 \n"
           "brushing_hair_2_brush_hair_h_nm_np2_le_goo_0.avi 0 \n")  # fmt: skip
    _write(root / "splits/shoot_ball_test_split1.txt", "shoot_ball_1_shoot_ball_f_cm_np1_ba_med_0.avi 2 \n"
           "shoot_ball_2_shoot_ball_f_cm_np1_fr_med_1.avi 1 \n")  # fmt: skip
    _touch(root, "videos/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
           "videos/brush_hair/Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi",
           "shoot_ball/shoot_ball_1_shoot_ball_f_cm_np1_ba_med_0.avi",  # a class folder in the root itself
           "shoot_ball/shoot_ball_2_shoot_ball_f_cm_np1_fr_med_1.avi")  # fmt: skip
    return root


def test_hmdb51_reader(hmdb51):
    test = READERS["hmdb51"](hmdb51, "test", DataConfig())
    assert [r.video_id for r in test] == ["Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0",
                                          "shoot_ball_1_shoot_ball_f_cm_np1_ba_med_0"]  # fmt: skip
    assert [(r.captions, r.caption_ids) for r in test] == [
        (["a person brush hair"], ["brush_hair"]),
        (["a person shoot ball"], ["shoot_ball"]),
    ]
    assert test[1].path == hmdb51 / "shoot_ball/shoot_ball_1_shoot_ball_f_cm_np1_ba_med_0.avi"
    train = READERS["hmdb51"](hmdb51, "train", DataConfig(prompt_template="a video of {}"))
    assert [(r.video_id, r.captions) for r in train] == [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0", ["a video of brush hair"]),
        ("shoot_ball_2_shoot_ball_f_cm_np1_fr_med_1", ["a video of shoot ball"]),
    ]  # label 0 (unused) is in neither split
    assert [r.video_id for r in READERS["hmdb51"](hmdb51, "val", DataConfig())] == [r.video_id for r in test]


def test_hmdb51_errors(hmdb51):
    with pytest.raises(DatasetFileNotFoundError, match=rf"{hmdb51 / 'splits'}/{{class}}_test_split2\.txt"):
        READERS["hmdb51"](hmdb51, "test", DataConfig(action_split=2))
    with pytest.raises(ValueError, match="action_split must be 1, 2 or 3"):
        READERS["hmdb51"](hmdb51, "test", DataConfig(action_split=4))
    with pytest.raises(ValueError, match="prompt_template"):
        READERS["hmdb51"](hmdb51, "test", DataConfig(prompt_template="a person"))
    (hmdb51 / "shoot_ball/shoot_ball_1_shoot_ball_f_cm_np1_ba_med_0.avi").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=r"1 of 2 HMDB51 .*shoot_ball/shoot_ball_1_shoot_ball_f_cm"):
        READERS["hmdb51"](hmdb51, "test", DataConfig())


@pytest.fixture
def ucf101(tmp_path: Path) -> Path:
    root = tmp_path / "ucf101"
    lists = root / "ucfTrainTestlist"
    _write(lists / "classInd.txt", "1 ApplyEyeMakeup\r\n37 HandstandPushups\r\n101 YoYo\r\n")
    _write(lists / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
           "HandstandPushups/v_HandStandPushups_g08_c01.avi 37\r\n")  # fmt: skip
    # The real lists name HandstandPushups' files v_HandStandPushups_*: the list's path is taken as is.
    _write(lists / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
           "YoYo/v_YoYo_g01_c01.avi\r\nHandstandPushups/v_HandStandPushups_g01_c01.avi\r\n")  # fmt: skip
    for video in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
                  "HandstandPushups/v_HandStandPushups_g08_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c01.avi",
                  "YoYo/v_YoYo_g01_c01.avi"):  # fmt: skip
        _touch(root / "UCF-101", video)
    return root


def test_ucf101_reader(ucf101):
    test = READERS["ucf101"](ucf101, "test", DataConfig())
    assert [(r.video_id, r.captions, r.caption_ids) for r in test] == [
        ("v_ApplyEyeMakeup_g01_c01", ["a person apply eye makeup"], ["ApplyEyeMakeup"]),
        ("v_YoYo_g01_c01", ["a person yo yo"], ["YoYo"]),
        ("v_HandStandPushups_g01_c01", ["a person handstand pushups"], ["HandstandPushups"]),
    ]
    assert test[2].path == ucf101 / "UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi"
    train = READERS["ucf101"](ucf101, "train", DataConfig())
    assert [r.video_id for r in train] == ["v_ApplyEyeMakeup_g08_c01", "v_HandStandPushups_g08_c01"]
    assert READERS["ucf101"](ucf101, "val", DataConfig())[1].video_id == "v_YoYo_g01_c01"


def test_ucf101_errors(ucf101):
    with pytest.raises(DatasetFileNotFoundError, match=str(ucf101 / "ucfTrainTestlist/testlist02.txt")):
        READERS["ucf101"](ucf101, "test", DataConfig(action_split=2))
    _write(ucf101 / "ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\n37 HandstandPushups\n")
    with pytest.raises(ValueError, match=r"class\(es\) YoYo not in .*classInd.txt"):
        READERS["ucf101"](ucf101, "test", DataConfig())
    (ucf101 / "ucfTrainTestlist/classInd.txt").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=str(ucf101 / "ucfTrainTestlist/classInd.txt")):
        READERS["ucf101"](ucf101, "test", DataConfig())


# --- shared caption ids through the dataset and the collator -----------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return word_tokenizer(tmp_path_factory.mktemp("tok"), ["a", "person", "yo", "apply"])


def test_collator_uses_class_caption_ids(ucf101, tokenizer):
    clip = write_clip(ucf101 / "UCF-101/YoYo/v_YoYo_g01_c01.avi", 8, codec="mpeg4")
    records = READERS["ucf101"](ucf101, "test", DataConfig())
    assert records[1].path == clip
    item = VideoTextDataset(records[1:2], 2, build_transform(32, train=False), train=False)[0]
    assert item["caption_ids"] == ["YoYo"]
    other = dict(item, video_id="v_YoYo_g02_c01")  # a second clip of the class shares its caption id
    plain = {"video": item["video"], "video_id": "v9", "captions": ["a", "a person"]}
    batch = Collator(tokenizer, max_length=8)([item, None, other, plain])
    assert batch["caption_id"] == ["YoYo", "YoYo", "v9#0", "v9#1"]
    assert batch["caption_video_id"] == ["v_YoYo_g01_c01", "v_YoYo_g02_c01", "v9", "v9"]
    assert batch["text"]["input_ids"].shape[0] == 4 and batch["num_skipped"] == 1


# --- the data module on the demo corpus --------------------------------------------------------


@pytest.mark.parametrize("name", ["lsmdc", "activitynet", "didemo", "hmdb51", "ucf101"])
def test_data_module_reads_each_dataset_of_the_demo_corpus(tiny_demo_root, name):
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer")
    cfg = DataConfig(root=str(tiny_demo_root), train=[name], val=[], test=[name], num_frames=2, input_res=32,
                     batch_size=2, eval_batch_size=4, num_workers=0, prompt_template="a video of {}")  # fmt: skip
    dm = RetrievalDataModule(cfg, tokenizer)
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.train_sets[name]) >= 2
    (loader,) = dm.test_dataloader()
    batch = next(iter(loader))
    assert batch["num_skipped"] == 0 and batch["video"].shape == (4, 2, 3, 32, 32)
    assert len(batch["caption_id"]) == batch["text"]["input_ids"].shape[0] == len(batch["caption_video_id"])
    assert not (batch["text"]["input_ids"] == tokenizer.unk_token_id).any()
    if name in ("hmdb51", "ucf101"):
        classes = {r.caption_ids[0] for r in dm.test_sets[name].records}
        assert set(batch["caption_id"]) <= classes and len(classes) == 8  # the demo's eight motions
    else:
        assert batch["caption_id"] == [f"{v}#0" for v in batch["video_id"]]
