"""Exact resume: stopping after 20 steps and resuming to 40 gives the losses of an uninterrupted run
(model, optimizer, LR schedule, EMA snapshot, RNG states and the data loaders' positions restored)."""

from pathlib import Path

import pytest
import torch
from helpers.runs import tiny_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from data_modules.resumable import ResumableLoader, ResumableSampler
from vtr.build import run
from vtr.config import load_config, resolve_run_dir

ROOT = Path(__file__).resolve().parents[1]


def _train(data_root: Path, out: Path, steps: int, extra: list[str]) -> tuple[dict[int, float], Path]:
    """``train/loss`` by step of a MILES demo pre-training run, and its last.ckpt."""
    overrides = tiny_overrides(data_root, out, steps=steps) + [
        "seed=7",
        "data.val=[]",
        "data.test=[]",
        "data.batch_size=2",
    ]
    overrides += ["model.video.depth=2", "model.video.drop_path_rate=0.2"]  # draws from the global torch RNG
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", overrides + extra)
    run(cfg)
    run_dir = resolve_run_dir(cfg).parent / "version_0"
    events = EventAccumulator(str(run_dir)).Reload().Scalars("train/loss")
    return {e.step: e.value for e in events}, run_dir / "checkpoints/last.ckpt"


CASES = {
    # 6 clips and 6 images, 3 batches an epoch: the checkpoint falls mid-epoch
    "mid_epoch": ["data.num_workers=0", "data.max_train_samples=6"],
    # 4-batch epochs, so the checkpoint ends one; DiDeMo's 3 batches restart within each epoch;
    # a worker process loads the items
    "epoch_end_cycling_worker": ["data.num_workers=1", "data.train=[webvid,cc3m,didemo]"],
}


@pytest.mark.parametrize("extra", CASES.values(), ids=CASES.keys())
def test_resumed_run_gives_the_losses_of_an_uninterrupted_one(tiny_demo_root, tmp_path, extra):
    _resumes_exactly(tiny_demo_root, tmp_path, extra)


def test_a_run_on_shards_resumes_exactly(tiny_demo_root, tiny_demo_shards, tmp_path):
    """The same on video2dataset / img2dataset shards, read by a worker process."""
    _resumes_exactly(tiny_demo_root, tmp_path, ["data.num_workers=1", "data.shard_mix=2", *tiny_demo_shards])


def _resumes_exactly(tiny_demo_root: Path, tmp_path: Path, extra: list[str]) -> None:
    full, _ = _train(tiny_demo_root, tmp_path / "full", 40, extra)
    first, ckpt = _train(tiny_demo_root, tmp_path / "first", 20, extra)
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 20
    resumed, _ = _train(tiny_demo_root, tmp_path / "resumed", 40, [*extra, f"resume={ckpt}"])
    assert (
        sorted(full) == list(range(40)) and sorted(first) == list(range(20)) and sorted(resumed) == list(range(20, 40))
    )
    assert [first[s] for s in range(20)] == pytest.approx([full[s] for s in range(20)], rel=1e-4)
    assert [resumed[s] for s in range(20, 40)] == pytest.approx([full[s] for s in range(20, 40)], rel=1e-4)


class _Keys(torch.utils.data.Dataset):
    """Seven items, each returned as the (index, seed) key the sampler gave for it."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, int]:
        return key


def _loader() -> ResumableLoader:
    return ResumableLoader(_Keys(), ResumableSampler(_Keys(), seed=3), 2, collate_fn=list)


def _take(loader: ResumableLoader, n: int) -> list:
    batches = iter(loader)
    return [next(batches) for _ in range(n)]


def test_the_loader_resumes_its_stream_and_shards_it_by_rank():
    full = _take(_loader(), 10)  # 3 batches a cycle: past three cycles, into a fourth
    assert [i for i, _ in sum(full[:3], [])] != [i for i, _ in sum(full[3:6], [])]  # each cycle in a new order
    first = _loader()
    head = _take(first, 2) + _take(first, 2)  # a new iteration goes on where the last one stopped
    resumed = _loader()
    resumed.load_state_dict(first.state_dict())
    assert head + _take(resumed, 6) == full
    shards = [[i for i, _ in ResumableSampler(_Keys(), seed=3, num_replicas=2, rank=r)] for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 4 and set(shards[0]) | set(shards[1]) == set(range(7))
