"""The ``data`` section of a run's configuration, beside the readers and loaders that read it.

``vtr.config.RunConfig.data`` is this dataclass, so the YAML recipes and ``data.*`` overrides are
checked by OmegaConf against it (unknown keys and wrong types are rejected); ``DATA_CHOICES`` and
``DATA_FRACTIONS`` are the checks its types cannot express, which ``vtr.config.validate`` applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataConfig:
    """Datasets are named; each is read from ``{root}/{name}/`` in its official layout."""

    root: str = "data/demo"
    train: list[str] = field(default_factory=lambda: ["webvid", "cc3m"])
    val: list[str] = field(default_factory=lambda: ["webvid", "msrvtt"])  # the first selects checkpoints
    test: list[str] = field(default_factory=lambda: ["msrvtt"])
    num_frames: int = 4  # frames per video clip; images are always 1-frame clips
    eval_num_frames: int | None = None  # defaults to num_frames
    input_res: int | None = None  # defaults to model.video.img_size
    hflip: bool = True  # training augmentation; off where captions say left/right
    crop_scale: list[float] = field(default_factory=lambda: [0.5, 1.0])  # RandomResizedCrop area range
    batch_size: int = 32  # per device and per training dataset
    eval_batch_size: int = 32
    num_workers: int = 4
    # Niceness of the loader workers (0-19). null: 19 when the model computes on the CPU, so the
    # workers decode in the time the model's threads leave idle instead of pre-empting them, 0 on
    # a GPU (where the workers are what the CPU is for)
    worker_nice: int | None = None
    max_text_length: int = 32
    msrvtt_train_list: str = "9k"  # 9k | 7k
    msrvtt_test_captions: str = "jsfusion"  # jsfusion (1k-A, one caption a video) | all
    video_dir: str | None = None  # searched first for videos; absolute or relative to {root}/{name}
    # Readers that list a split's videos: up to this fraction may be missing (logged, then skipped
    # and counted like unreadable ones); more is an error, most likely a wrong folder
    max_missing_videos: float = 0.1
    action_split: int = 1  # HMDB51 / UCF101 official split, 1-3
    prompt_template: str = "a person {}"  # HMDB51 / UCF101 class name -> caption
    # Training sets read from video2dataset / img2dataset output (webdataset or files format)
    # instead of their per-file layout: {name: folder}, absolute or relative to root. A name here
    # must also be in train; its shards hold videos, images or both (a sample's media member decides)
    shards: dict[str, str] = field(default_factory=dict)
    shard_mix: int = 8  # shards read at once, their samples interleaved: each is read front to back
    # How many samples a shard holds: "stats", its _stats.json's successes (nothing else is read
    # before training); "index", the samples its index lists (every shard's index is built once,
    # then cached), for shards whose stats count rows rather than samples (video2dataset's clipping)
    shard_counts: str = "stats"
    # Where the per-shard member indexes are cached; null: beside the shards where that folder is
    # writable, else ~/.cache/vtr/shards
    shard_index_dir: str | None = None
    max_train_samples: int | None = None  # subsets, for smoke tests
    max_eval_samples: int | None = None


DATA_CHOICES: dict[str, tuple[str, ...]] = {
    "msrvtt_train_list": ("9k", "7k"),
    "msrvtt_test_captions": ("jsfusion", "all"),
    "shard_counts": ("stats", "index"),
}
DATA_FRACTIONS = ("max_missing_videos",)
