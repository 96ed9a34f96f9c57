"""The synthetic demo corpus: real file formats, decodable media, captions that match the
pixels, determinism, and the DONE marker."""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
import time
import zlib
from dataclasses import asdict, fields
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from transformers import AutoTokenizer

from data_modules.demo import COLOURS, DIDEMO_SEGMENT_SECONDS, DemoSizes, generate_demo_corpus, h264_encoder

# Independent of the generator's grammar: which caption words name which motion.
MOTION_WORDS = {
    "move_left": r"\bleft(ward)?\b",
    "move_right": r"\bright(ward)?\b",
    "move_up": r"\b(up|upward|rises?|rising)\b",
    "move_down": r"\b(down|downward|falls?|falling|sinks?|sinking)\b",
    "grow": r"\b(grows?|growing|bigger|expands?|expanding)\b",
    "shrink": r"\b(shrinks?|shrinking|smaller|contracts?|contracting)\b",
    "rotate": r"\b(rotates?|rotating|spins?|spinning|turns? around|turning around)\b",
    "stay_still": r"\b(still|static|not move|not moving)\b",
}
UCF_MOTIONS = {"".join(w.capitalize() for w in m.split("_")): m for m in MOTION_WORDS}
MINIMAL = DemoSizes(**{f.name: 2 for f in fields(DemoSizes)})


def motion_of(text: str) -> str:
    found = [m for m, pattern in MOTION_WORDS.items() if re.search(pattern, text.lower())]
    assert len(found) == 1, f"{text!r} names motions {found}"
    return found[0]


def colour_of(text: str) -> str:
    found = [c for c in COLOURS if re.search(rf"\b{c}\b", text.lower())]
    assert len(found) == 1, f"{text!r} names colours {found}"
    return found[0]


def read_csv(path: Path, header: list[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == header, path
        return list(reader)


def decode(path: Path) -> tuple[list[np.ndarray], float, list[bool], str]:
    """All frames (RGB), frame rate, keyframe flags and codec name of a video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, keys = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24").astype(np.int16))
            keys.append(bool(frame.key_frame))
        return frames, float(stream.average_rate), keys, stream.codec_context.name


def shape_mask(frame: np.ndarray) -> np.ndarray:
    """Pixels far from the background; shapes never touch the outermost pixel ring."""
    ring = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    return np.abs(frame - np.median(ring, axis=0)).max(-1) > 60


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def assert_motion(frames: list[np.ndarray], motion: str, what: str) -> None:
    """The decoded pixels show `motion` between the first and the last of `frames`."""
    masks = [shape_mask(f) for f in frames]
    assert all(m.any() for m in masks), f"{what}: no shape visible"
    height, width = masks[0].shape
    shift = centroid(masks[-1]) - centroid(masks[0])
    area = masks[-1].sum() / masks[0].sum()
    direction = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}.get(motion)
    if direction:
        axis = 0 if direction[0] else 1
        travel = shift[axis] * sum(direction) / (width, height)[axis]
        assert travel > 0.2, f"{what}: {motion} but centroid moved by {shift}"
        assert abs(shift[1 - axis]) < 3, f"{what}: {motion} but centroid drifted by {shift}"
    elif motion == "grow":
        assert area > 1.5, f"{what}: grows but area ratio {area:.2f}"
    elif motion == "shrink":
        assert area < 1 / 1.5, f"{what}: shrinks but area ratio {area:.2f}"
    else:  # a small rotated polygon covers a few pixels more or less once thresholded
        low, high = (0.6, 1.6) if motion == "rotate" else (0.85, 1.15)
        assert np.abs(shift).max() < 2.5 and low < area < high, f"{what}: {motion} but shift {shift}, area {area:.2f}"
        overlap = min(iou(masks[0], m) for m in masks)
        assert (overlap < 0.85) if motion == "rotate" else (overlap > 0.85), (
            f"{what}: {motion} but min IoU {overlap:.2f}"
        )


def assert_colour(frame: np.ndarray, colour: str, what: str) -> None:
    median = np.median(frame[shape_mask(frame)], axis=0)
    nearest = min(COLOURS, key=lambda c: np.linalg.norm(median - np.array(COLOURS[c])))
    assert nearest == colour, f"{what}: caption says {colour}, pixels look {nearest} ({median})"


def assert_video(path: Path, seconds: tuple[float, float]) -> list[np.ndarray]:
    """Decodes; frame size, rate, duration and keyframe interval as designed."""
    assert path.is_file(), path
    frames, fps, keys, codec = decode(path)
    height, width = frames[0].shape[:2]
    assert 64 <= width <= 128 and 64 <= height <= 128 and width % 2 == 0 and height % 2 == 0, (path, width, height)
    assert 8 <= fps <= 10, (path, fps)
    assert seconds[0] - 0.1 <= len(frames) / fps <= seconds[1] + 0.2, (path, len(frames) / fps)
    key_at = [i for i, k in enumerate(keys) if k]
    assert key_at[0] == 0 and max(np.diff(key_at + [len(keys)])) <= round(fps), (path, key_at)
    expected = "mpeg4" if path.suffix == ".avi" or h264_encoder() == "mpeg4" else "h264"
    assert codec == expected, (path, codec)
    return frames


def single_motion_items(root: Path) -> list[tuple[Path, str, str | None]]:
    """(video, text naming the motion, caption or None) for every one-motion clip, read
    through each dataset's own annotation format."""
    items = []
    for split in ("train", "val"):
        header = ["videoid", "contentUrl", "duration", "page_dir", "name"]
        for row in read_csv(root / f"webvid/metadata/results_2M_{split}.csv", header):
            items.append((root / "webvid/videos" / row["page_dir"] / f"{row['videoid']}.mp4", row["name"], row["name"]))
    data = json.loads((root / "msrvtt/MSRVTT_data.json").read_text())
    for sentence in data["sentences"]:
        items.append((root / f"msrvtt/videos/all/{sentence['video_id']}.mp4", sentence["caption"], sentence["caption"]))
    for name in ("LSMDC16_annos_training.csv", "LSMDC16_annos_val.csv", "LSMDC16_challenge_1000_publictect.csv"):
        for line in (root / "lsmdc" / name).read_text().splitlines():
            clip_id, *_, sentence = line.split("\t")
            items.append((root / "lsmdc/avi" / clip_id.rsplit("_", 1)[0] / f"{clip_id}.avi", sentence, sentence))
    items += [(p, p.parent.name.replace("_", " "), None) for p in (root / "hmdb51/videos").glob("*/*.avi")]
    for path in (root / "ucf101/UCF-101").glob("*/*.avi"):
        items.append((path, UCF_MOTIONS[path.parent.name].replace("_", " "), None))
    return items


def test_every_single_motion_clip_shows_what_its_caption_says(tiny_demo_root: Path) -> None:
    items = single_motion_items(tiny_demo_root)
    assert len({path for path, _, _ in items}) == 14 + 18 + 18 + 2 * 8 * 4
    seen: dict[Path, tuple[str, str | None]] = {}
    for path, text, caption in items:
        motion, colour = motion_of(text), caption and colour_of(caption)
        if path in seen:  # another caption of the same clip must tell the same story
            assert seen[path] == (motion, colour), (path, text)
            continue
        seen[path] = (motion, colour)
        frames = assert_video(path, (2.0, 4.0))
        assert_motion(frames, motion, f"{path.name}: {text}")
        if colour is not None:
            assert_colour(frames[0], colour, f"{path.name}: {caption}")


def test_webvid_metadata(tiny_demo_root: Path) -> None:
    header = ["videoid", "contentUrl", "duration", "page_dir", "name"]
    ids = []
    for split, n in (("train", 8), ("val", 6)):
        rows = read_csv(tiny_demo_root / f"webvid/metadata/results_2M_{split}.csv", header)
        assert len(rows) == n
        for row in rows:
            assert row["videoid"].isdigit() and row["contentUrl"].startswith("https://")
            assert re.fullmatch(r"PT00H00M0[2-4]S", row["duration"]), row["duration"]
            assert re.fullmatch(r"\d{6}_\d{6}", row["page_dir"])
            ids.append(row["videoid"])
    assert len(set(ids)) == len(ids)


def test_cc3m_lists_and_images(tiny_demo_root: Path) -> None:
    cc3m = tiny_demo_root / "cc3m"
    for split, folder, tsv in (
        ("train", "training", "Train_GCC-training.tsv"),
        ("val", "validation", "Validation_GCC-1.1.0-Validation.tsv"),
    ):
        rows = read_csv(cc3m / f"cc3m_{split}.csv", ["caption", "path"])
        pairs = [line.split("\t") for line in (cc3m / tsv).read_text().splitlines()]
        assert [len(p) for p in pairs] == [2] * len(rows)
        for row, (caption, url) in zip(rows, pairs):
            assert row["caption"] == caption and row["path"] == f"{folder}/{zlib.crc32(url.encode()) & 0xFFFFFFFF}"
            assert motion_of(caption + " stays still") == "stay_still"  # no motion word of its own
            with Image.open(cc3m / row["path"]) as image:
                assert image.format == "JPEG" and 64 <= min(image.size) and max(image.size) <= 128
                assert_colour(np.asarray(image.convert("RGB")).astype(np.int16), colour_of(caption), row["path"])


def _tar_samples(path: Path) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes} of a shard, read with the standard library."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            key, ext = member.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def test_webvid_train_as_video2dataset_shards_with_their_defects(tiny_demo_root: Path) -> None:
    """Tiny: 2 rows a shard. Row 1 of shard 0 failed to download; row 0 of shard 1 is clipped in
    two; shard 2 was cut off (no stats); 8-digit keys (video2dataset's 1,000 a shard)."""
    shards, root = tiny_demo_root / "shards/webvid", tiny_demo_root / "webvid"
    names = sorted(p.name for p in shards.iterdir())
    assert [n for n in names if n.endswith(".tar")] == ["00000.tar", "00001.tar", "00002.tar", "00003.tar"]
    assert [n for n in names if n.endswith("_stats.json")] == [
        "00000_stats.json",
        "00001_stats.json",
        "00003_stats.json",
    ]
    rows = read_csv(root / "metadata/results_2M_train.csv", ["videoid", "contentUrl", "duration", "page_dir", "name"])
    expected_keys = {
        0: ["00000000", "00000001"],
        1: ["00001000_00000", "00001000_00001", "00001001"],
        3: ["00003000", "00003001"],
    }
    for shard, keys in expected_keys.items():
        samples = _tar_samples(shards / f"0000{shard}.tar")
        assert list(samples) == keys
        for key, members in samples.items():
            row = rows[shard * 2 + int(key[5:8])]
            meta = json.loads(members["json"])
            assert members["txt"].decode() == row["name"] and meta["videoid"] == row["videoid"] and meta["key"] == key
            if key == "00000001":
                assert sorted(members) == ["json", "txt"] and meta["status"] == "failed_to_download"
            else:
                assert meta["status"] == "success" and len(decoded_frames_of(members["mp4"])) > 0
        stats = json.loads((shards / f"0000{shard}_stats.json").read_text())
        assert (stats["count"], stats["successes"], stats["failed_to_download"]) == (
            2,
            1 if shard == 0 else 2,
            shard == 0,
        )
    whole = _tar_samples(shards / "00000.tar")["00000000"]["mp4"]
    assert whole == (root / "videos" / rows[0]["page_dir"] / f"{rows[0]['videoid']}.mp4").read_bytes()
    halves = [decoded_frames_of(_tar_samples(shards / "00001.tar")[f"00001000_0000{n}"]["mp4"]) for n in (0, 1)]
    clipped = decoded_frames(root / "videos" / rows[2]["page_dir"] / f"{rows[2]['videoid']}.mp4")
    assert len(halves[0]) + len(halves[1]) == len(clipped) and min(map(len, halves)) > 0
    with tarfile.open(shards / "00002.tar") as tar, pytest.raises(tarfile.ReadError):  # cut off mid-member
        for member in tar:
            tar.extractfile(member).read()


def test_cc3m_train_as_img2dataset_shards(tiny_demo_root: Path) -> None:
    """Tiny: 3 rows a shard, the last one short; row 2 of shard 1 failed and is left out of the tar;
    9-digit keys (img2dataset's 10,000 a shard); the images are the per-file ones."""
    shards, root = tiny_demo_root / "shards/cc3m", tiny_demo_root / "cc3m"
    rows = read_csv(root / "cc3m_train.csv", ["caption", "path"])
    counts = []
    for shard in range(3):
        samples = _tar_samples(shards / f"0000{shard}.tar")
        expected = [f"0000{shard}000{row}" for row in range(3) if shard * 3 + row < 8 and (shard, row) != (1, 2)]
        assert list(samples) == expected
        for key, members in samples.items():
            row = rows[shard * 3 + int(key[-1])]
            assert members["txt"].decode() == row["caption"] and members["jpg"] == (root / row["path"]).read_bytes()
        stats = json.loads((shards / f"0000{shard}_stats.json").read_text())
        counts.append((stats["count"], stats["successes"], stats["failed_to_download"], stats["failed_to_resize"]))
    assert counts == [(3, 3, 0, 0), (3, 2, 1, 0), (2, 2, 0, 0)]


def test_msrvtt_splits_and_test_list(tiny_demo_root: Path) -> None:
    root = tiny_demo_root / "msrvtt"
    data = json.loads((root / "MSRVTT_data.json").read_text())
    split_of = {v["video_id"]: v["split"] for v in data["videos"]}
    assert sorted(set(split_of.values())) == ["test", "train", "validate"]
    captions: dict[str, list[str]] = {}
    for s in data["sentences"]:
        captions.setdefault(s["video_id"], []).append(s["caption"])
    assert len({s["sen_id"] for s in data["sentences"]}) == len(data["sentences"])
    assert set(captions) == set(split_of) and all(len(c) == len(set(c)) == 5 for c in captions.values())
    train9k = [r["video_id"] for r in read_csv(root / "MSRVTT_train.9k.csv", ["video_id"])]
    train7k = [r["video_id"] for r in read_csv(root / "MSRVTT_train.7k.csv", ["video_id"])]
    val = [r["video_id"] for r in read_csv(root / "MSRVTT_val.csv", ["video_id"])]
    test = read_csv(root / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"])
    assert set(train7k) <= set(train9k) and all(split_of[v] == "train" for v in train9k)
    assert val and all(split_of[v] == "validate" for v in val) and not set(val) & set(train9k)
    test_ids = [r["video_id"] for r in test]
    assert sorted(test_ids) == sorted(v for v, s in split_of.items() if s == "test")  # one caption a test video
    assert not set(test_ids) & (set(train9k) | set(val))
    for j, row in enumerate(test):
        assert row["key"] == f"ret{j}" and row["vid_key"] == "msr" + row["video_id"].removeprefix("video")
        assert row["sentence"] in captions[row["video_id"]]
    assert all((root / f"videos/all/{v}.mp4").is_file() for v in split_of)


def test_lsmdc_rows(tiny_demo_root: Path) -> None:
    stamp = r"\d\d\.\d\d\.\d\d\.\d{3}"
    movies_per_split = []
    for name in ("LSMDC16_annos_training.csv", "LSMDC16_annos_val.csv", "LSMDC16_challenge_1000_publictect.csv"):
        lines = (tiny_demo_root / "lsmdc" / name).read_text().splitlines()
        assert len(lines) == 6
        movies = set()
        for line in lines:
            fields_ = line.split("\t")
            assert len(fields_) == 6 and all(re.fullmatch(stamp, t) for t in fields_[1:5])
            clip_id = fields_[0]
            assert re.fullmatch(rf"\d{{4}}_\w+_{stamp}-{stamp}", clip_id)
            assert clip_id.endswith(f"_{fields_[1]}-{fields_[2]}")
            movies.add(clip_id.rsplit("_", 1)[0])
        movies_per_split.append(movies)
    assert not (movies_per_split[0] & movies_per_split[1] or movies_per_split[0] & movies_per_split[2])


def test_activitynet_segments_show_their_sentences(tiny_demo_root: Path) -> None:
    for name in ("train.json", "val_1.json"):
        annotations = json.loads((tiny_demo_root / "activitynet" / name).read_text())
        assert len(annotations) == 6
        for video_id, ann in annotations.items():
            assert re.fullmatch(r"v_[\w-]{11}", video_id)
            stamps, sentences = ann["timestamps"], ann["sentences"]
            assert 2 <= len(stamps) == len(sentences) <= 4
            assert stamps[0][0] == 0 and stamps[-1][1] == ann["duration"]
            assert all(a[1] == b[0] for a, b in zip(stamps, stamps[1:]))
            path = tiny_demo_root / f"activitynet/videos/{video_id}.mp4"
            frames = assert_video(path, (4.0, 6.0))
            fps = decode(path)[1]
            for (start, end), sentence in zip(stamps, sentences):
                segment = frames[round(start * fps) : min(round(end * fps), len(frames) - 1) + 1]
                assert_motion(segment, motion_of(sentence), f"{video_id} {start}-{end}: {sentence}")


def test_didemo_moments_show_their_descriptions(tiny_demo_root: Path) -> None:
    for split in ("train", "val", "test"):
        entries = json.loads((tiny_demo_root / f"didemo/{split}_data.json").read_text())
        by_video: dict[str, list[dict]] = {}
        for entry in entries:
            assert {"video", "times", "description", "annotation_id"} <= set(entry)
            by_video.setdefault(entry["video"], []).append(entry)
        assert len(by_video) == 6
        for video, moments in by_video.items():
            path = tiny_demo_root / "didemo/videos" / video
            frames = assert_video(path, (2 * DIDEMO_SEGMENT_SECONDS - 0.1, 4 * DIDEMO_SEGMENT_SECONDS + 0.4))
            unit = round(DIDEMO_SEGMENT_SECONDS * decode(path)[1])
            assert len(moments) == moments[0]["num_segments"] == (len(frames) - 1) // unit
            for j, moment in enumerate(moments):
                assert moment["times"] == [[j, j]] * 4
                segment = frames[j * unit : (j + 1) * unit + 1]
                assert_motion(segment, motion_of(moment["description"]), f"{video} unit {j}")


def test_action_split_files(tiny_demo_root: Path) -> None:
    hmdb, ucf = tiny_demo_root / "hmdb51", tiny_demo_root / "ucf101"
    classes = sorted(p.name for p in (hmdb / "videos").iterdir())
    assert classes == sorted(MOTION_WORDS)
    for cls in classes:
        lines = [line.split(" ") for line in (hmdb / f"splits/{cls}_test_split1.txt").read_text().splitlines()]
        assert sorted(name for name, _ in lines) == sorted(p.name for p in (hmdb / "videos" / cls).iterdir())
        assert {label for _, label in lines} <= {"0", "1", "2"} and {"1", "2"} <= {label for _, label in lines}
    lists = ucf / "ucfTrainTestlist"
    class_ind = dict(line.split(" ") for line in (lists / "classInd.txt").read_text().splitlines())
    assert sorted(class_ind.values()) == sorted(UCF_MOTIONS) and sorted(map(int, class_ind)) == list(range(1, 9))
    number = {name: n for n, name in class_ind.items()}
    train = [line.split(" ") for line in (lists / "trainlist01.txt").read_text().splitlines()]
    test = (lists / "testlist01.txt").read_text().splitlines()
    assert all(number[rel.split("/")[0]] == n for rel, n in train)
    listed = [rel for rel, _ in train] + test
    assert sorted(listed) == sorted(str(p.relative_to(ucf / "UCF-101")) for p in (ucf / "UCF-101").glob("*/*.avi"))
    group = lambda rel: re.search(r"_g(\d\d)_c\d\d\.avi$", rel).group(1)  # noqa: E731
    assert not {group(r) for r, _ in train} & {group(r) for r in test}  # split by group, as UCF101


def test_tokenizer_loads_with_autotokenizer_and_knows_every_word(tiny_demo_root: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer")
    assert 100 < len(tokenizer) <= 1000
    names = ["pad", "unk", "cls", "sep", "mask"]
    assert [getattr(tokenizer, f"{n}_token") for n in names] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    captions = [item[1] for item in single_motion_items(tiny_demo_root)] + ["a person move left"]
    encoded = tokenizer(captions)["input_ids"]
    for caption, ids in zip(captions, encoded):
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert tokenizer.unk_token_id not in ids, caption
        assert tokenizer.decode(ids, skip_special_tokens=True) == caption.lower()


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def decoded_frames_of(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def shard_contents(root: Path) -> dict[str, object]:
    """What the demo's shards hold, minus what the tools make differ from run to run: member
    mtimes, the times in ``_stats.json``, the root's own path; videos as decoded frames."""
    contents: dict[str, object] = {}
    for path in sorted((root / "shards").rglob("*")):
        name = str(path.relative_to(root))
        if path.suffix == ".tar":
            for key, members in _tar_samples(path).items():
                for ext, data in members.items():
                    value = decoded_frames_of(data) if ext == "mp4" else data.replace(str(root).encode(), b"ROOT")
                    contents[f"{name}/{key}.{ext}"] = [f.tobytes() for f in value] if ext == "mp4" else value
        elif path.name.endswith("_stats.json"):
            stats = json.loads(path.read_text())
            contents[name] = {k: v for k, v in stats.items() if k not in ("duration", "start_time", "end_time")}
        elif path.is_file():
            contents[name] = path.read_text().replace(str(root), "ROOT")
    return contents


def test_same_seed_gives_identical_files_whatever_the_workers(tmp_path: Path) -> None:
    """Same content: identical bytes for annotations, images and the tokenizer; identical decoded
    frames for videos (libx264 does not always emit the same bytes for the same frames, even
    single-threaded)."""
    root_one = generate_demo_corpus(tmp_path / "a", seed=3, sizes=MINIMAL, workers=1, progress=False)
    root_two = generate_demo_corpus(tmp_path / "b", seed=3, sizes=MINIMAL, workers=2, progress=False)
    one, two = file_bytes(root_one), file_bytes(root_two)
    assert one.keys() == two.keys()
    videos = [k for k in one if k.endswith((".mp4", ".avi"))]
    shards = [k for k in one if k.startswith("shards/")]
    assert len(videos) > 20 and len(shards) >= 4
    assert [k for k in one if k not in videos + shards and one[k] != two[k]] == []
    assert shard_contents(root_one) == shard_contents(root_two)
    for name in videos:
        frames_one, frames_two = decoded_frames(root_one / name), decoded_frames(root_two / name)
        assert len(frames_one) == len(frames_two) > 0 and all(
            np.array_equal(a, b) for a, b in zip(frames_one, frames_two)
        ), name
    other = file_bytes(generate_demo_corpus(tmp_path / "b", seed=4, sizes=MINIMAL, workers=1, progress=False))
    assert json.loads(other["DONE"])["seed"] == 4
    for name in ("webvid/metadata/results_2M_train.csv", "msrvtt/MSRVTT_data.json", "activitynet/train.json"):
        assert one[name] != other[name]
    assert len(other) == len(one)  # the seed-3 files (other names) were removed, not left beside


def test_rerun_of_a_complete_corpus_is_a_no_op(tiny_demo_root: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny_demo_root.rglob("*")}
    start = time.perf_counter()
    assert (
        generate_demo_corpus(tiny_demo_root, seed=0, sizes=DemoSizes.tiny(), workers=1, progress=False)
        == tiny_demo_root
    )
    assert time.perf_counter() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in tiny_demo_root.rglob("*")} == before
    done = json.loads((tiny_demo_root / "DONE").read_text())
    assert done["seed"] == 0 and done["sizes"] == asdict(DemoSizes.tiny())


def test_an_interrupted_run_resumes_and_completes(tmp_path: Path) -> None:
    root = generate_demo_corpus(tmp_path / "c", seed=5, sizes=MINIMAL, workers=1, progress=False)
    complete = file_bytes(root)
    # What an interruption leaves: no DONE, the partial marker, some files not yet written.
    (root / ".partial.json").write_text(json.dumps(json.loads(complete["DONE"])))
    (root / "DONE").unlink()
    video = next(root.glob("msrvtt/videos/all/*.mp4"))
    video.unlink()
    (root / "msrvtt/MSRVTT_data.json").unlink()
    kept = next(root.glob("webvid/videos/*/*.mp4"))
    kept_mtime = kept.stat().st_mtime_ns
    generate_demo_corpus(root, seed=5, sizes=MINIMAL, workers=1, progress=False)
    assert file_bytes(root) == complete
    assert kept.stat().st_mtime_ns == kept_mtime  # finished media are not rendered again


def test_sizes_match_the_request(tiny_demo_root: Path) -> None:
    sizes = DemoSizes.tiny()
    assert len(list((tiny_demo_root / "cc3m/training").iterdir())) == sizes.cc3m_train
    assert (
        len(list((tiny_demo_root / "msrvtt/videos/all").iterdir()))
        == sizes.msrvtt_train + sizes.msrvtt_val + sizes.msrvtt_test
    )
    assert len(list((tiny_demo_root / "ucf101/UCF-101/MoveLeft").iterdir())) == sizes.action_per_class
    assert not list(tiny_demo_root.rglob("*.part")) and not (tiny_demo_root / ".partial.json").exists()


def test_tiny_sizes_are_a_few_items_each() -> None:
    tiny, default = asdict(DemoSizes.tiny()), asdict(DemoSizes())
    assert all(2 <= tiny[k] <= 16 and tiny[k] < default[k] for k in tiny), tiny
