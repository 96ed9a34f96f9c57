"""Faults a long run meets: broken media, a non-finite loss, a crash while saving, a wrong data root."""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from helpers.runs import scalars, tiny_overrides

from data_modules.config import DataConfig
from data_modules.dataset import Collator
from data_modules.readers import READERS
from data_modules.readers.files import DatasetFileNotFoundError
from data_modules.video import MediaError, read_image, read_video, read_video_full_decode
from vtr.build import build_datamodule, build_module, build_trainer, run
from vtr.checkpoint_io import AtomicCheckpointIO
from vtr.config import load_config, resolve_run_dir
from vtr.modules.retrieval import VideoTextModule

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments/pretrain/demo.yaml"


def _copy(tiny_demo_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_demo_root, tmp_path / "data"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _webvid(root: Path, split: str) -> list[Path]:
    return [r.path for r in READERS["webvid"](root / "webvid", split, DataConfig())]


# --- the media readers ------------------------------------------------------------------------


def test_each_kind_of_broken_file_is_a_media_error(tiny_demo_root, tmp_path):
    root = _copy(tiny_demo_root, tmp_path)
    videos = _webvid(root, "train")
    videos[0].unlink()
    videos[1].write_bytes(b"")
    _truncate(videos[2])
    images = [r.path for r in READERS["cc3m"](root / "cc3m", "train", DataConfig())]
    _truncate(images[0])
    images[1].write_text("not a jpeg")
    images[2].write_bytes(b"")
    for path, reason in ((videos[0], "file not found"), (videos[1], "empty file"), (videos[2], None)):
        for reader in (read_video, read_video_full_decode):
            for mode in ("uniform", "rand"):
                with pytest.raises(MediaError, match=reason):
                    reader(path, 4, mode)
    for path in images[:3]:
        with pytest.raises(MediaError):
            read_image(path)
    assert read_video(videos[3], 4, "uniform").shape[0] == 4 and read_image(images[3]).shape[0] == 1


def test_a_truncated_mp4_whose_index_comes_first_is_unreadable_whatever_frames_are_sampled(tmp_path):
    """Such a file opens, and the frames before the cut decode: without the index check, some
    samples would read and some not (and the frame at the cut would be half decoded)."""
    import av
    import numpy as np

    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "8"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        noise = np.random.default_rng(0)
        for _ in range(60):
            frame = av.VideoFrame.from_ndarray(noise.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    whole = path.read_bytes()
    assert read_video(path, 4, "uniform").shape[0] == 4
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: int(len(whole) * 0.98)])  # only the last few frames are gone
    for seed in range(8):
        with pytest.raises(MediaError, match="truncated"):
            read_video(cut, 4, "rand", random.Random(seed))
    with pytest.raises(MediaError, match="truncated"):
        read_video(cut, 4, "uniform")


# --- readers: missing videos ------------------------------------------------------------------


def test_a_few_missing_benchmark_videos_are_kept_to_be_skipped_and_many_are_an_error(tiny_demo_root, tmp_path, caplog):
    root = _copy(tiny_demo_root, tmp_path)
    test = READERS["msrvtt"](root / "msrvtt", "test", DataConfig())
    test[0].path.unlink()
    too_many = rf"1 of 6 MSR-VTT .*{test[0].video_id}\.mp4.*max_missing_videos=0.1"
    with pytest.raises(DatasetFileNotFoundError, match=too_many):
        READERS["msrvtt"](root / "msrvtt", "test", DataConfig())
    records = READERS["msrvtt"](root / "msrvtt", "test", DataConfig(max_missing_videos=0.2))
    assert [r.video_id for r in records] == [r.video_id for r in test]  # none dropped silently
    assert records[0].path == test[0].path and not records[0].path.exists()
    assert "1 of 6 MSR-VTT videos not found" in caplog.text and "skipped" in caplog.text
    # WebVid (web-scraped, some videos always gone) lists every row; the loader skips the missing
    videos = _webvid(root, "val")
    videos[0].unlink()
    assert _webvid(root, "val") == videos


# --- end to end: a corrupted corpus -----------------------------------------------------------


def _corrupt(root: Path) -> dict[str, set[str]]:
    """Breaks some WebVid and MSR-VTT videos (truncated, empty, deleted) and CC3M images; returns
    the broken ids of each split that pre-training reads."""
    broken: dict[str, set[str]] = {}

    def spoil(split: str, records, *actions) -> None:
        for record, action in zip(records, actions):
            action(record.path)
            broken.setdefault(split, set()).add(record.video_id)

    empty, delete = (lambda p: p.write_bytes(b"")), Path.unlink
    cfg = DataConfig()
    spoil("train_webvid", READERS["webvid"](root / "webvid", "train", cfg), _truncate, empty, delete)
    spoil("train_cc3m", READERS["cc3m"](root / "cc3m", "train", cfg), _truncate, lambda p: p.write_text("<html>"))
    spoil("val_webvid", READERS["webvid"](root / "webvid", "val", cfg)[-2:], _truncate, delete)  # also WebVid's test
    spoil("val_msrvtt", READERS["msrvtt"](root / "msrvtt", "val", cfg)[1:2], empty)
    spoil("test_msrvtt", READERS["msrvtt"](root / "msrvtt", "test", cfg)[2:4], delete, _truncate)
    return broken


def test_pretraining_on_a_corrupted_corpus_completes_and_counts_the_skipped_samples(
    tiny_demo_root, tmp_path, monkeypatch, capsys
):
    root = _copy(tiny_demo_root, tmp_path)
    broken = _corrupt(root)
    every_broken = set().union(*broken.values())
    batches: list[dict] = []
    collate = Collator.__call__

    def recording(self, items):
        batch = collate(self, items)
        kept = [item for item in items if item is not None]
        # no placeholder: a clip in the batch for every readable item, for no other
        assert batch["video"].shape[0] == len(kept) == len(batch["video_id"])
        assert not every_broken & set(batch["video_id"])
        assert batch["num_skipped"] == len(items) - len(kept) and kept, "no batch of this test is all broken"
        batches.append({"train": "caption" in kept[0], "ids": batch["video_id"], "skipped": batch["num_skipped"]})
        return batch

    monkeypatch.setattr(Collator, "__call__", recording)
    steps = 3
    overrides = tiny_overrides(root, tmp_path / "out", steps=steps) + ["data.max_missing_videos=0.34"]
    results = run(load_config(DEMO, overrides))

    train_cc3m = {r.video_id for r in READERS["cc3m"](root / "cc3m", "train", DataConfig())}
    seen = {"train_webvid": 0, "train_cc3m": 0}
    for batch in batches:
        if batch["train"]:
            seen["train_cc3m" if set(batch["ids"]) <= train_cc3m else "train_webvid"] += batch["skipped"]
    assert sum(b["train"] for b in batches) == 2 * steps  # one WebVid and one CC3M batch a step
    assert seen["train_webvid"] > 0 and seen["train_cc3m"] > 0  # 3 of 8 and 2 of 8 broken, 6 of 8 drawn

    logged = scalars(next((tmp_path / "out").glob("*/version_0")))
    assert logged["data/skipped_train_webvid"][-1] == seen["train_webvid"]
    assert logged["data/skipped_train_cc3m"][-1] == seen["train_cc3m"]
    # evaluation visits every item once: the counts are exact
    expected = {"val_webvid": 2, "val_msrvtt": 1, "test_msrvtt": 2}
    for split, count in expected.items():
        assert logged[f"data/skipped_{split}"] == [count], split
        stage, name = split.split("_")
        assert results[stage][name]["skipped"] == count
    assert results["test"]["msrvtt"]["num_videos"] == 6 - 2
    assert len(logged["train/loss"]) == steps  # no step lost: every batch had readable clips

    out = capsys.readouterr().out
    assert f"train_cc3m={seen['train_cc3m']}" in out and f"train_webvid={seen['train_webvid']}" in out
    cells = [[c.strip() for c in re.split(r"[│|]", line)] for line in out.splitlines()]
    skipped_column = {tuple(row[1:4]): row[-2] for row in cells if len(row) == 12}  # split, dataset, direction
    assert skipped_column[("test", "msrvtt", "t2v")] == "2" and skipped_column[("val", "webvid", "t2v")] == "2"
    assert skipped_column[("val", "msrvtt", "v2t")] == "1"


def test_a_training_step_whose_clips_are_all_unreadable_is_skipped(tiny_demo_root, tmp_path):
    root = _copy(tiny_demo_root, tmp_path)
    for path in _webvid(root, "train"):
        path.write_bytes(b"")
    for record in READERS["cc3m"](root / "cc3m", "train", DataConfig()):
        _truncate(record.path)
    cfg = load_config(DEMO, tiny_overrides(root, tmp_path / "out", steps=2) + ["data.val=[]", "data.test=[]"])
    module = build_module(cfg)
    with torch.no_grad():  # a snapshot unlike the online encoder, so that an EMA update would show
        for p in module.snapshot.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    trainer.fit(module, datamodule=build_datamodule(cfg))
    assert trainer.global_step == 2
    assert module.skipped == {"train_webvid": 8, "train_cc3m": 8}  # 2 steps x batch 4, every clip
    for name, value in module.state_dict().items():
        assert torch.equal(value, before[name]), name  # no optimizer step, no EMA update
    logged = scalars(tmp_path / "run")
    assert "train/loss" not in logged and logged["data/skipped_train_webvid"][-1] == 8


# --- non-finite losses ------------------------------------------------------------------------


def _nan_at(monkeypatch, step: int) -> None:
    real = VideoTextModule.compute_losses

    def poisoned(self, batch):
        losses, weights, size = real(self, batch)
        if self.global_step == step:
            losses["contrastive"] = losses["contrastive"] * float("nan")
        return losses, weights, size

    monkeypatch.setattr(VideoTextModule, "compute_losses", poisoned)


class _WeightsPerStep:
    """Records, for each batch, whether the module's weights (snapshot included) changed."""

    def __init__(self) -> None:
        self.changed: list[bool] = []

    def on_train_batch_start(self, trainer, module, *args) -> None:
        self._before = {k: v.clone() for k, v in module.state_dict().items()}

    def on_train_batch_end(self, trainer, module, *args) -> None:
        after = module.state_dict()
        self.changed.append(any(not torch.equal(after[k], v) for k, v in self._before.items()))


def test_nonfinite_loss_skip_leaves_the_weights_and_goes_on(tiny_demo_root, tmp_path, monkeypatch):
    import lightning as L

    cfg = load_config(
        DEMO, tiny_overrides(tiny_demo_root, tmp_path, steps=3) + ["data.val=[]", "data.test=[]", "nonfinite_loss=skip"]
    )
    _nan_at(monkeypatch, step=1)
    module = build_module(cfg)
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    watch = type("Watch", (_WeightsPerStep, L.Callback), {})()
    trainer.callbacks.append(watch)
    trainer.fit(module, datamodule=build_datamodule(cfg))
    assert trainer.global_step == 3 and watch.changed == [True, False, True]
    assert module.nonfinite_skipped == 1
    logged = scalars(tmp_path / "run")
    assert logged["train/nonfinite_skipped"] == [0.0, 1.0, 1.0]
    assert [math.isnan(v) for v in logged["train/loss"]] == [False, True, False]  # the skipped step's loss as it was
    # and NaN weights (a non-finite gradient) are never written over a checkpoint
    with torch.no_grad():
        module.model.video.pos_embed.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"not saving .*model\.video\.pos_embed"):
        trainer.save_checkpoint(tmp_path / "nan.ckpt")
    assert not (tmp_path / "nan.ckpt").exists()


def test_nonfinite_loss_stop_names_the_step_and_keeps_the_last_checkpoint(tiny_demo_root, tmp_path, monkeypatch):
    cfg = load_config(
        DEMO, tiny_overrides(tiny_demo_root, tmp_path, steps=4) + ["trainer.val_check_interval=2", "data.test=[]"]
    )
    assert cfg.nonfinite_loss == "stop"  # the default
    _nan_at(monkeypatch, step=3)
    with pytest.raises(FloatingPointError, match=r"at step 3 .*contrastive=nan \(weight 1\).*mvm=") as info:
        run(cfg)
    assert "nonfinite_loss=skip" in str(info.value)
    last = resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


_DDP_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from helpers.runs import tiny_overrides
from vtr.build import run
from vtr.config import load_config
from vtr.modules.retrieval import VideoTextModule

real = VideoTextModule.compute_losses

def poisoned(self, batch):  # a NaN on rank 1 only, at step 1
    losses, weights, size = real(self, batch)
    if self.global_step == 1 and self.global_rank == 1:
        losses["contrastive"] = losses["contrastive"] * float("nan")
    return losses, weights, size

VideoTextModule.compute_losses = poisoned
root, out, policy = sys.argv[1:4]
extra = ["trainer.devices=2", "trainer.strategy=ddp", "data.val=[]", "data.test=[]", f"nonfinite_loss={{policy}}"]
run(load_config({demo!r}, tiny_overrides(Path(root), Path(out), steps=3) + extra))
"""


@pytest.mark.ddp
@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_under_ddp_every_rank_takes_the_nonfinite_decision_of_one(policy, tiny_demo_root, tmp_path):
    """A NaN on one rank only: all skip together (or all stop), where a rank going on alone would hang."""
    script = tmp_path / "nan_on_rank1.py"
    script.write_text(_DDP_SCRIPT.format(demo=str(DEMO)))
    cmd = [sys.executable, str(script), str(tiny_demo_root), str(tmp_path / "out"), policy]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    if policy == "stop":
        assert done.returncode != 0 and "non-finite training loss at step 1 (batch 0) on 1 of 2 ranks" in done.stderr
        return
    assert done.returncode == 0, done.stderr[-3000:]
    logged = scalars(next((tmp_path / "out").glob("*/version_0")))
    assert logged["train/nonfinite_skipped"] == [0.0, 1.0, 1.0]
    ckpt = torch.load(next((tmp_path / "out").glob("*/version_0/checkpoints/last.ckpt")), weights_only=False)
    assert ckpt["global_step"] == 3


def test_nonfinite_loss_policy_is_validated():
    from vtr.config import ConfigError

    with pytest.raises(ConfigError, match="nonfinite_loss.*stop, skip"):
        load_config(None, ["nonfinite_loss=ignore"])


# --- atomic checkpoint writes -----------------------------------------------------------------

_SAVER = textwrap.dedent(
    """
    import sys, os, signal, torch
    from vtr.checkpoint_io import AtomicCheckpointIO
    path, crash_before_rename = sys.argv[1], sys.argv[2] == "1"
    start = torch.load(path, weights_only=True)["version"] if os.path.exists(path) else 0
    if crash_before_rename:  # every byte of the new version written, killed before the rename
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    io = AtomicCheckpointIO()
    for version in range(start + 1, start + 1000):
        io.save_checkpoint({"version": version, "weights": torch.full((13_000_000,), float(version))}, path)  # 52 MB
        print(version, flush=True)
    """
)


def _check_one_version(path: Path) -> int:
    ckpt = torch.load(path, weights_only=True)
    weights = ckpt["weights"]
    assert weights.numel() == 13_000_000 and weights.min() == weights.max() == ckpt["version"]
    return ckpt["version"]


def test_a_crash_during_a_save_leaves_the_previous_checkpoint_readable(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    rng = random.Random(0)
    versions = []
    for round_ in range(4):  # killed at random three times, then once between the last byte and the rename
        crash_before_rename = round_ == 3
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), "1" if crash_before_rename else "0"],
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        if not crash_before_rename:
            assert child.stdout.readline()  # a first version of this round saved
            time.sleep(rng.uniform(0.0, 0.8))
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=120)
        assert child.returncode == -signal.SIGKILL
        versions.append(_check_one_version(path))
    assert versions == sorted(versions) and versions[-1] == versions[-2]  # the crashed write left no trace
    assert (path.parent / "last.ckpt.tmp").exists()  # ... but its temporary file, overwritten next time


def test_the_trainer_saves_through_the_atomic_plugin(tiny_demo_root, tmp_path):
    cfg = load_config(DEMO, tiny_overrides(tiny_demo_root, tmp_path))
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


# --- a wrong data root ------------------------------------------------------------------------


def test_a_missing_test_annotation_file_is_an_error_before_training(tiny_demo_root, tmp_path):
    root = _copy(tiny_demo_root, tmp_path)
    (root / "msrvtt/MSRVTT_JSFUSION_test.csv").unlink()
    cfg = load_config(DEMO, tiny_overrides(root, tmp_path / "out"))
    with pytest.raises(DatasetFileNotFoundError, match=str(root / "msrvtt/MSRVTT_JSFUSION_test.csv")):
        run(cfg)
    assert not (tmp_path / "out").exists()  # before any work: no run folder, no checkpoint
