"""Writers of each real dataset's on-disk layout: file names, annotation formats and split lists
as the official releases have them, so the same readers load the demo corpus and the real one.

Consecutive items of a split form contrast pairs (same look, different motion; see
``scenes.single_scene``), so retrieval needs motion, not appearance alone. Each planner adds its
media jobs, annotation texts and captions to a ``Corpus``; nothing is rendered here.
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING

from data_modules.demo.corpus import Corpus, csv_text, json_text, slug
from data_modules.demo.grammar import as_sentence, clip_caption, clip_captions, image_caption, segment_texts
from data_modules.demo.scenes import action_scene, plan_scene, segmented_scene, single_scene
from data_modules.demo.world import (
    MOTIONS,
    SHAPES,
    UCF_CLASSES,
    Scene,
    allowed_motions,
    keyed_rng,
    sample_canvas,
    sample_look,
)

if TYPE_CHECKING:
    from data_modules.demo import DemoSizes


def plan_webvid(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """Numeric video ids, 250 videos per page_dir folder, duration as PT00H00M03S."""
    splits = (("train", sizes.webvid_train), ("val", sizes.webvid_val))
    ids = iter(keyed_rng(seed, "webvid", "ids").sample(range(10**7, 10**9), sum(n for _, n in splits)))
    page = 20
    for split, n in splits:
        rows = []
        for i in range(n):
            scene = single_scene(seed, "webvid", split, i)
            caption = clip_caption(keyed_rng(seed, "webvid", split, i, "text"), scene)
            videoid, page_dir = next(ids), f"{(page + i // 250) * 50 + 1:06d}_{(page + i // 250) * 50 + 50:06d}"
            url = f"https://example.com/webvid/videos/{videoid}/preview/stock-footage-{slug(caption)}.mp4"
            rows.append([videoid, url, f"PT00H00M{round(scene.duration):02d}S", page_dir, caption])
            c.media(f"webvid/videos/{page_dir}/{videoid}.mp4", "mp4", scene)
            c.captions.append(caption)
        page += math.ceil(n / 250)
        header = ["videoid", "contentUrl", "duration", "page_dir", "name"]
        c.text(f"webvid/metadata/results_2M_{split}.csv", csv_text(header, rows))


def _cc3m_file_name(url: str) -> str:
    """CC3M image file name as the common downloader (igorbrigadir/DownloadConceptualCaptions,
    used by ViLBERT, VOLTA, Frozen) writes it: zlib.crc32 of the UTF-8 url, masked to
    unsigned 32 bit, in decimal, with no extension."""
    return str(zlib.crc32(url.encode("utf-8")) & 0xFFFFFFFF)


def plan_cc3m(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """Static shapes; captions without motion. Google's TSVs plus the caption,path CSVs."""
    used: set[str] = set()
    splits = (("train", "training", "Train_GCC-training.tsv", sizes.cc3m_train),
              ("val", "validation", "Validation_GCC-1.1.0-Validation.tsv", sizes.cc3m_val))  # fmt: skip
    for split, folder, tsv_name, n in splits:
        tsv_rows, csv_rows = [], []
        for i in range(n):
            rng = keyed_rng(seed, "cc3m", split, i)
            look = sample_look(rng)
            scene = plan_scene(rng, look, sample_canvas(rng), [0], "stay_still")
            caption = image_caption(keyed_rng(seed, "cc3m", split, i, "text"), scene)
            url = f"https://example.com/cc3m/{folder}/{i:07d}/{slug(caption)}.jpg"
            while _cc3m_file_name(url) in used:
                url += "?copy"
            used.add(_cc3m_file_name(url))
            rel = f"{folder}/{_cc3m_file_name(url)}"
            c.media(f"cc3m/{rel}", "jpg", scene)
            tsv_rows.append([caption, url])
            csv_rows.append([caption, rel])
            c.captions.append(caption)
        c.text(f"cc3m/{tsv_name}", "".join(f"{cap}\t{url}\n" for cap, url in tsv_rows))
        c.text(f"cc3m/cc3m_{split}.csv", csv_text(["caption", "path"], csv_rows))


def _msrvtt_video(seed: int, n: int, split: str) -> tuple[Scene, list[str], dict, str]:
    """Video n of the MSR-VTT-style set: its scene, five captions, annotation entry and test caption."""
    scene = single_scene(seed, "msrvtt", "all", n)
    rng = keyed_rng(seed, "msrvtt", "all", n, "text")
    captions = clip_captions(rng, scene, 5)
    start = round(rng.uniform(0, 300), 2)
    video = {"category": rng.randrange(20), "url": f"https://example.com/watch?v={rng.getrandbits(40):010x}",
             "video_id": f"video{n}", "start time": start, "end time": round(start + scene.duration, 2),
             "split": split, "id": n}  # fmt: skip
    return scene, captions, video, rng.choice(captions)


def plan_msrvtt(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """Real ordering: train ids first, then 'validate', then 'test' (1k-A style test list).

    MSRVTT_val.csv holds the 'validate' videos, which are in neither train list, so
    checkpoints can be selected without touching the test split.
    """
    counts = (("train", sizes.msrvtt_train), ("validate", sizes.msrvtt_val), ("test", sizes.msrvtt_test))
    split_of = [name for name, n in counts for _ in range(n)]
    videos, sentences, test_rows = [], [], []
    for n, split in enumerate(split_of):
        scene, captions, video, test_caption = _msrvtt_video(seed, n, split)
        videos.append(video)
        for caption in captions:
            sentences.append({"caption": caption, "video_id": f"video{n}", "sen_id": len(sentences)})
        if split == "test":
            test_rows.append([f"ret{len(test_rows)}", f"msr{n}", f"video{n}", test_caption])
        c.media(f"msrvtt/videos/all/video{n}.mp4", "mp4", scene)
        c.captions += captions
    ids = {name: [f"video{n}" for n, s in enumerate(split_of) if s == name] for name, _ in counts}
    seven_k = sorted(keyed_rng(seed, "msrvtt", "7k").sample(range(len(ids["train"])), round(len(ids["train"]) * 7 / 9)))
    info = {"contributor": "vtr demo corpus", "description": "synthetic MSR-VTT layout", "version": "1.0"}
    c.text("msrvtt/MSRVTT_data.json", json_text({"info": info, "videos": videos, "sentences": sentences}))
    c.text("msrvtt/MSRVTT_train.9k.csv", csv_text(["video_id"], [[v] for v in ids["train"]]))
    c.text("msrvtt/MSRVTT_train.7k.csv", csv_text(["video_id"], [[ids["train"][j]] for j in seven_k]))
    c.text("msrvtt/MSRVTT_val.csv", csv_text(["video_id"], [[v] for v in ids["validate"]]))
    c.text("msrvtt/MSRVTT_JSFUSION_test.csv", csv_text(["key", "vid_key", "video_id", "sentence"], test_rows))


def plan_msrvtt_1k(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """``msrvtt_1k/``: a larger MSR-VTT-style test set in the same layout (test list and
    annotations), for scoring disjoint galleries (``gallery_size``). Its videos continue the
    numbering of ``msrvtt`` past the training and validation ones, so its first
    ``msrvtt_test`` videos are ``msrvtt``'s test videos (same ids, clips and test captions).
    Its captions stay out of the tokenizer's word counts, so the rest of the corpus is unchanged;
    all their words are grammar words, which the tokenizer knows whole anyway."""
    first = sizes.msrvtt_train + sizes.msrvtt_val
    videos, sentences, test_rows = [], [], []
    for k, n in enumerate(range(first, first + sizes.msrvtt_1k_test)):
        scene, captions, video, test_caption = _msrvtt_video(seed, n, "test")
        videos.append(video)
        for caption in captions:
            sentences.append({"caption": caption, "video_id": f"video{n}", "sen_id": len(sentences)})
        test_rows.append([f"ret{k}", f"msr{n}", f"video{n}", test_caption])
        c.media(f"msrvtt_1k/videos/all/video{n}.mp4", "mp4", scene)
    info = {"contributor": "vtr demo corpus", "description": "synthetic MSR-VTT layout, 1k test", "version": "1.0"}
    c.text("msrvtt_1k/MSRVTT_data.json", json_text({"info": info, "videos": videos, "sentences": sentences}))
    c.text("msrvtt_1k/MSRVTT_JSFUSION_test.csv", csv_text(["key", "vid_key", "video_id", "sentence"], test_rows))


def _lsmdc_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}.{ms // 60_000 % 60:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def plan_lsmdc(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """Movies of 20-40 consecutive clips; each split has its own movies, as in LSMDC."""
    files = (("training", "LSMDC16_annos_training.csv", sizes.lsmdc_train),
             ("val", "LSMDC16_annos_val.csv", sizes.lsmdc_val),
             ("test", "LSMDC16_challenge_1000_publictect.csv", sizes.lsmdc_test))  # fmt: skip
    adjectives = ("Silent", "Crimson", "Hidden", "Golden", "Broken", "Distant", "Electric", "Paper", "Winter", "Lucky")
    nouns = ("Harbor", "Garden", "Summer", "River", "Machine", "Island", "Letters", "Window", "Horizon", "Station")
    movie_number = 1
    for split, name, n in files:
        rng, lines, i = keyed_rng(seed, "lsmdc", split, "movies"), [], 0
        while i < n:
            movie = f"{movie_number:04d}_{rng.choice(adjectives)}_{rng.choice(nouns)}"
            clock = rng.uniform(30, 120)
            for _ in range(min(rng.randint(20, 40), n - i)):
                scene = single_scene(seed, "lsmdc", split, i)
                start, end = clock, clock + scene.duration
                clip_id = f"{movie}_{_lsmdc_time(start)}-{_lsmdc_time(end)}"
                sentence = as_sentence(clip_caption(keyed_rng(seed, "lsmdc", split, i, "text"), scene))
                extracted = (max(0.0, start - rng.uniform(0, 0.3)), end + rng.uniform(0, 0.3))
                stamps = map(_lsmdc_time, (start, end, *extracted))
                lines.append("\t".join([clip_id, *stamps, sentence]))
                c.media(f"lsmdc/avi/{movie}/{clip_id}.avi", "avi", scene)
                c.captions.append(sentence)
                clock, i = end + rng.uniform(1, 30), i + 1
            movie_number += 1
        c.text(f"lsmdc/{name}", "".join(line + "\n" for line in lines))


def plan_activitynet(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """`v_` + 11 YouTube-id characters; consecutive timestamps, one sentence per segment."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    splits = (("train", "train.json", sizes.activitynet_train), ("val_1", "val_1.json", sizes.activitynet_val))
    for split, name, n in splits:
        annotations = {}
        for i in range(n):
            scene = segmented_scene(seed, "activitynet", split, i, didemo=False)
            rng = keyed_rng(seed, "activitynet", split, i, "text")
            video_id = "v_" + "".join(rng.choices(alphabet, k=11))
            times = [k[0] / scene.canvas.fps for k in scene.keyframes[:-1]] + [scene.duration]
            sentences = segment_texts(rng, scene, paragraph=True)
            annotations[video_id] = {"duration": round(scene.duration, 2),
                                     "timestamps": [[round(a, 2), round(b, 2)] for a, b in zip(times, times[1:])],
                                     "sentences": sentences}  # fmt: skip
            c.media(f"activitynet/videos/{video_id}.mp4", "mp4", scene)
            c.captions += sentences
        c.text(f"activitynet/{name}", json_text(annotations))


def plan_didemo(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """One entry per segment; `times` lists four annotators' [start, end] unit indices
    (inclusive), as in the real files, here all agreeing on the segment described."""
    annotation_id = 0
    for split, n in (("train", sizes.didemo_train), ("val", sizes.didemo_val), ("test", sizes.didemo_test)):
        entries = []
        for i in range(n):
            scene = segmented_scene(seed, "didemo", split, i, didemo=True)
            rng = keyed_rng(seed, "didemo", split, i, "text")
            user, photo = f"{rng.randrange(10**7, 10**8)}@N{rng.randrange(10):02d}", rng.randrange(10**9, 10**10)
            stem = f"{user}_{photo}_{rng.getrandbits(40):010x}"  # Flickr-style, like the real names
            for j, description in enumerate(segment_texts(rng, scene, paragraph=False)):
                entries.append({"annotation_id": annotation_id, "description": description, "video": f"{stem}.mp4",
                                "times": [[j, j]] * 4, "num_segments": len(scene.motions),
                                "dl_link": f"https://example.com/didemo/{stem}"})  # fmt: skip
                annotation_id += 1
                c.captions.append(description)
            c.media(f"didemo/videos/{stem}.mp4", "mp4", scene)
        c.text(f"didemo/{split}_data.json", json_text(entries))


def plan_hmdb51(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """Split file lines `name.avi 1|2|0` (train / test / unused): ~30% test, ~10% unused."""
    n = sizes.action_per_class
    for motion in MOTIONS:
        order = list(range(n))
        keyed_rng(seed, "hmdb51", motion, "split").shuffle(order)
        n_test, n_unused = max(1, round(0.3 * n)), n // 10
        label = {j: "2" if r < n_test else "0" if r < n_test + n_unused else "1" for r, j in enumerate(order)}
        lines = []
        for j in range(n):
            scene = action_scene(seed, "hmdb51", motion, j)
            name = f"shapes_demo_{j:03d}_{motion}_f_nm_np{scene.look.count}_fr_med_0.avi"
            c.media(f"hmdb51/videos/{motion}/{name}", "avi", scene)
            lines.append(f"{name} {label[j]}\n")
        c.text(f"hmdb51/splits/{motion}_test_split1.txt", "".join(lines))


def plan_ucf101(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """Groups (gNN) share a look like UCF's groups share actor and scene; split 1 tests on
    the first ~28% of the groups (real: groups 1-7 of 25), trains on the rest."""
    n = sizes.action_per_class
    per_group = min(4, max(1, n // 2))
    n_groups = math.ceil(n / per_group)
    test_groups = max(1, round(0.28 * n_groups))
    class_ind, train, test = [], [], []
    for number, motion in enumerate(MOTIONS, start=1):
        name = UCF_CLASSES[motion]
        class_ind.append(f"{number} {name}\n")
        shapes = tuple(s for s in SHAPES if motion in allowed_motions(s))
        for j in range(n):
            group, clip = j // per_group + 1, j % per_group + 1
            look = sample_look(keyed_rng(seed, "ucf101", motion, "group", group), shapes)
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
            c.media(f"ucf101/UCF-101/{rel}", "avi", action_scene(seed, "ucf101", motion, j, look))
            (test.append(f"{rel}\n") if group <= test_groups else train.append(f"{rel} {number}\n"))
    c.text("ucf101/ucfTrainTestlist/classInd.txt", "".join(class_ind))
    c.text("ucf101/ucfTrainTestlist/trainlist01.txt", "".join(train))
    c.text("ucf101/ucfTrainTestlist/testlist01.txt", "".join(test))
