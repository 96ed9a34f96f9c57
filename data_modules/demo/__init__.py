"""Synthetic demo corpus, written in the on-disk layouts of the real datasets.

Why: the real corpora (WebVid-2M, CC3M, MSR-VTT, LSMDC, ActivityNet Captions, DiDeMo,
HMDB51, UCF101) are hundreds of gigabytes, partly no longer downloadable, and need a GPU
cluster to learn anything. Every loader, the training loop and the evaluation still have to
run end to end on a laptop and in CI, and a short training run should show real learning.
So this package renders a small, learnable world and writes it exactly where and how the
real datasets lie on users' disks; the same readers then load the demo corpus and the real one.
Run it with ``python -m vtr demo-data``.

The pipeline, one module a step:
    world.py    colours, shapes, motions; the Look / Canvas / Scene records; keyed RNGs
    scenes.py   planning a scene so that its motion is what the caption says
    grammar.py  captions from a compositional grammar with synonyms and templates
    layouts.py  one writer per dataset: its file names, annotation formats, split lists
    binding.py      a test split of groups that differ in which shape has which attribute (MSR-VTT layout)
    single_attribute.py  a test split of groups that differ in one captioned attribute (MSR-VTT layout)
    truth.py        ground truth for probes: held-out clips, the attributes behind test videos
    render.py   drawing frames and encoding the media files, in a process pool
    shards.py   the WebVid- and CC3M-style train splits again, as the download tools' shards
    corpus.py   the planned corpus, text formats, the tokenizer, the completion markers

Determinism
    Every random choice for an item comes from an RNG keyed by (seed, dataset, split,
    index, purpose), so contents do not depend on `workers` or on generation order. (Videos
    decode to identical frames; libx264 does not always emit identical bytes for them.)

Layout (under root)
    webvid/metadata/results_2M_{train,val}.csv      videoid,contentUrl,duration,page_dir,name
    webvid/videos/{page_dir}/{videoid}.mp4
    cc3m/Train_GCC-training.tsv, cc3m/Validation_GCC-1.1.0-Validation.tsv   caption<TAB>url
    cc3m/{training,validation}/{crc32(url)}          JPEG, no extension (see layouts._cc3m_file_name)
    cc3m/cc3m_{train,val}.csv                        caption,path (path relative to cc3m/)
    msrvtt/MSRVTT_data.json, MSRVTT_train.{9k,7k}.csv, MSRVTT_val.csv, MSRVTT_JSFUSION_test.csv
    msrvtt/videos/all/video{N}.mp4
    lsmdc/LSMDC16_annos_{training,val}.csv, lsmdc/LSMDC16_challenge_1000_publictect.csv
    lsmdc/avi/{movie}/{clip_id}.avi
    activitynet/{train,val_1}.json, activitynet/videos/v_{id}.mp4
    didemo/{train,val,test}_data.json, didemo/videos/{name}.mp4
    hmdb51/videos/{class}/{name}.avi, hmdb51/splits/{class}_test_split1.txt
    ucf101/UCF-101/{Class}/v_{Class}_g{gg}_c{cc}.avi, ucf101/ucfTrainTestlist/*.txt
    msrvtt_1k/, binding/, single_attribute/: MSRVTT_data.json, MSRVTT_JSFUSION_test.csv, videos/all/video{N}.mp4
                                                     (test only)
    shards/{webvid,cc3m}/NNNNN.tar, NNNNN_stats.json   the two train splits as video2dataset /
                                                     img2dataset shards, with their defects (shards.py)
    tokenizer/                                       WordPiece over the corpus words, loads with AutoTokenizer
    DONE                                             json of the settings, written last

Completion
    `DONE` is written last. While generating, `.partial.json` holds the settings; an
    interrupted run with the same settings resumes (finished media files are written
    atomically and kept). A corpus of other settings in the same root is removed first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from data_modules.demo.binding import plan_binding
from data_modules.demo.corpus import (
    DONE_FILE,
    PARTIAL_FILE,
    Corpus,
    prepare_root,
    read_json,
    train_tokenizer,
    write_text,
)
from data_modules.demo.grammar import grammar_lines
from data_modules.demo.layouts import (
    plan_activitynet,
    plan_cc3m,
    plan_didemo,
    plan_hmdb51,
    plan_lsmdc,
    plan_msrvtt,
    plan_msrvtt_1k,
    plan_ucf101,
    plan_webvid,
)
from data_modules.demo.render import h264_encoder, render_all
from data_modules.demo.shards import write_demo_shards
from data_modules.demo.single_attribute import plan_single_attribute
from data_modules.demo.world import COLOURS, DIDEMO_SEGMENT_SECONDS

__all__ = ["COLOURS", "DIDEMO_SEGMENT_SECONDS", "DemoSizes", "generate_demo_corpus", "h264_encoder"]

CORPUS_VERSION = 4  # recorded in DONE; bump when the output changes, so old corpora are rebuilt


@dataclass
class DemoSizes:
    """Items per dataset split; the defaults take about 90 s of CPU time and 72 MB of disk (of which
    msrvtt_1k and single_attribute, 1,176 videos, about 10 s and 9 MB)."""

    webvid_train: int = 2000
    webvid_val: int = 200
    cc3m_train: int = 1000
    cc3m_val: int = 100
    msrvtt_train: int = 1000
    msrvtt_test: int = 200
    msrvtt_val: int = 100  # held out of the 9k/7k train lists, for checkpoint selection
    msrvtt_1k_test: int = 1000  # msrvtt's test videos and more: five disjoint 200-video galleries
    lsmdc_train: int = 400
    lsmdc_val: int = 100
    lsmdc_test: int = 100
    activitynet_train: int = 300
    activitynet_val: int = 100
    didemo_train: int = 300
    didemo_val: int = 50
    didemo_test: int = 100
    action_per_class: int = 12  # hmdb51- and ucf101-style class folders
    binding_groups: int = 50  # groups of four videos that differ in which shape has which attribute
    single_attribute_groups: int = 50  # groups of 2-4 videos that differ in one captioned attribute
    # rows a shard of shards/webvid (8 shards, one left partial) and shards/cc3m (7 shards): 7
    # complete ones each, uneven over 2 and 3 ranks, the last one short
    webvid_shard_size: int = 280
    cc3m_shard_size: int = 150

    @classmethod
    def tiny(cls) -> DemoSizes:
        """A few items per split: the whole corpus in a few seconds, for tests."""
        return cls(
            webvid_train=8, webvid_val=6, cc3m_train=8, cc3m_val=6,
            msrvtt_train=8, msrvtt_test=6, msrvtt_val=4, msrvtt_1k_test=10,
            lsmdc_train=6, lsmdc_val=6, lsmdc_test=6,
            activitynet_train=6, activitynet_val=6,
            didemo_train=6, didemo_val=6, didemo_test=6,
            action_per_class=4, binding_groups=3, single_attribute_groups=6, webvid_shard_size=2,
            cc3m_shard_size=3,
        )  # fmt: skip


def generate_demo_corpus(
    root: str | Path,
    seed: int = 0,
    sizes: DemoSizes | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write the demo corpus under `root` and return `root`.

    A no-op when `root/DONE` records the same seed and sizes; resumes an interrupted run
    of the same settings; replaces a demo corpus of other settings.
    """
    root = Path(root)
    sizes = sizes or DemoSizes()
    config = {"version": CORPUS_VERSION, "seed": seed, "sizes": asdict(sizes)}
    if read_json(root / DONE_FILE) == config:
        return root
    resume = prepare_root(root, config)
    corpus = plan_corpus(root, seed, sizes)
    pending = [job for job in corpus.jobs if not (resume and job.path.exists())]
    render_all(pending, workers, progress)
    for path, text in corpus.texts.items():
        write_text(path, text)
    write_demo_shards(root, sizes, workers, progress)
    train_tokenizer(corpus.captions + grammar_lines(), root / "tokenizer")
    write_text(root / DONE_FILE, json.dumps(config, indent=2) + "\n")
    (root / PARTIAL_FILE).unlink()
    return root


def plan_corpus(root: Path, seed: int, sizes: DemoSizes) -> Corpus:
    """Every dataset's media jobs, annotation texts and captions."""
    corpus = Corpus(root)
    planners = (plan_webvid, plan_cc3m, plan_msrvtt, plan_msrvtt_1k, plan_lsmdc, plan_activitynet, plan_didemo,
                plan_hmdb51, plan_ucf101, plan_binding, plan_single_attribute)  # fmt: skip
    for plan in planners:
        plan(corpus, seed, sizes)
    return corpus
