"""Two CPU processes (gloo): the cross-rank contrastive loss equals the single-process one."""

import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from vtr.objectives.contrastive import contrastive_loss, gather_with_grad

pytestmark = pytest.mark.ddp


def _setup():
    torch.manual_seed(0)
    video_net = torch.nn.Linear(6, 4)
    text_net = torch.nn.Linear(5, 4)
    xv, xt = torch.randn(8, 6), torch.randn(8, 5)
    return video_net, text_net, xv, xt


def _loss(video_net, text_net, xv, xt):
    return contrastive_loss(F.normalize(video_net(xv), dim=-1), F.normalize(text_net(xt), dim=-1), 10.0)


def _worker(rank, world, init_file, queue):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    video_net, text_net, xv, xt = _setup()
    rows = slice(4 * rank, 4 * rank + 4)
    loss = _loss(video_net, text_net, xv[rows], xt[rows])
    loss.backward()
    grads = [p.grad.clone() for p in [*video_net.parameters(), *text_net.parameters()]]
    for g in grads:  # what DDP does with gradients
        dist.all_reduce(g)
        g /= world
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    # Unequal shards: rank 0 holds 3 rows, rank 1 holds 5; the gather must restore the order.
    x = torch.arange(8.0).view(8, 1)[:3] if rank == 0 else torch.arange(8.0).view(8, 1)[3:]
    gathered, offset = gather_with_grad(x)
    if rank == 0:
        queue.put(((mean_loss / world).item(), [g.tolist() for g in grads], gathered.flatten().tolist(), offset))
    else:
        queue.put(("rank1", offset))
    dist.destroy_process_group()


def test_two_process_loss_and_gradients_equal_single_process():
    video_net, text_net, xv, xt = _setup()
    ref = _loss(video_net, text_net, xv, xt)
    ref.backward()
    ref_grads = [p.grad for p in [*video_net.parameters(), *text_net.parameters()]]

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [ctx.Process(target=_worker, args=(r, 2, os.path.join(tmp, "init"), queue)) for r in range(2)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    rank0 = next(r for r in results if r[0] != "rank1")
    rank1 = next(r for r in results if r[0] == "rank1")
    loss, grads, gathered, offset = rank0
    assert abs(loss - ref.item()) < 1e-5
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(torch.tensor(g), r, atol=1e-6)
    assert gathered == list(range(8)) and offset == 0 and rank1[1] == 3


def test_two_process_evaluation_matches_one_process(tiny_demo_root, tmp_path):
    """5 test clips on 2 ranks: the sampler repeats one; scores must equal the 1-process run."""
    import json
    import subprocess
    import sys

    from helpers.runs import tiny_overrides

    results = {}
    for devices in (1, 2):
        args = tiny_overrides(tiny_demo_root, tmp_path, steps=1) + [
            f"experiment=eval{devices}",
            "data.test=[msrvtt,webvid]",
            "data.val=[]",
            "data.max_eval_samples=5",
            "data.eval_batch_size=2",
            f"trainer.devices={devices}",
            f"trainer.strategy={'ddp' if devices > 1 else 'auto'}",
        ]
        cmd = [sys.executable, "-m", "vtr", "evaluate", "-c", "experiments/pretrain/demo.yaml", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr[-3000:]
        results[devices] = json.loads((tmp_path / f"eval{devices}/version_0/metrics.json").read_text())["test"]
    for name in ("msrvtt", "webvid"):
        one, two = results[1][name], results[2][name]
        assert one["num_videos"] == two["num_videos"] == 5
        for direction in ("t2v", "v2t"):
            for metric, value in one[direction].items():
                assert abs(value - two[direction][metric]) < 1e-6, (name, direction, metric)


@pytest.mark.parametrize(
    ("recipe", "extra"),
    [("demo.yaml", ["model.mvm.start_step=1"]), ("demo_contrastive.yaml", [])],
    ids=["demo-mvm-warmup", "demo_contrastive"],
)
def test_two_process_ddp_training_runs(recipe, extra, tiny_demo_root, tmp_path):
    """DDP refuses parameters that get no gradient; every recipe must train on 2 ranks, MILES
    also across its warm-up (step 0 without MVM, step 1 with it)."""
    import subprocess
    import sys

    from helpers.runs import tiny_overrides

    args = tiny_overrides(tiny_demo_root, tmp_path, steps=2) + [
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "data.test=[]",
        *extra,
    ]
    cmd = [sys.executable, "-m", "vtr", "pretrain", "-c", f"experiments/pretrain/{recipe}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.glob("*/version_0/checkpoints/last.ckpt"))


def test_two_process_ddp_training_on_uneven_shards_finishes(tiny_demo_root, tiny_demo_shards, tmp_path):
    """Shards of 3 samples (the last shorter, one failed download) over 2 ranks, validating
    between steps: every rank must take the same number of steps, or one waits forever."""
    import subprocess
    import sys

    from helpers.runs import tiny_overrides

    args = tiny_overrides(tiny_demo_root, tmp_path, steps=4) + [
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.val_check_interval=2",
        "data.test=[]",
        "data.batch_size=2",
        "data.num_workers=1",
        *tiny_demo_shards,
    ]
    cmd = [sys.executable, "-m", "vtr", "pretrain", "-c", "experiments/pretrain/demo.yaml", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    (ckpt,) = tmp_path.glob("*/version_0/checkpoints/last.ckpt")
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 4


def test_validation_finishes_when_one_ranks_held_out_batch_is_unreadable(tiny_demo_root, tmp_path):
    """``val/mvm_heldout`` is reduced across ranks: a rank whose first validation batch has no
    readable clip must still take part, or the other rank waits for it forever."""
    import math
    import subprocess
    import sys

    from helpers.corpus import copy_corpus, truncate
    from helpers.runs import scalars, tiny_overrides

    from data_modules.config import DataConfig
    from data_modules.readers import READERS

    root = copy_corpus(tiny_demo_root, tmp_path)
    val = READERS["webvid"](root / "webvid", "val", DataConfig())
    for record in (val[1], val[3]):  # rank 1's first batch of 2: the distributed sampler deals 1, 3, 5, ...
        truncate(record.path)
    args = tiny_overrides(root, tmp_path / "out", steps=2) + [
        "trainer.devices=2", "trainer.strategy=ddp", "data.val=[webvid]", "data.test=[]",
        "data.eval_batch_size=2", "model.mvm.start_step=0"]  # fmt: skip
    cmd = [sys.executable, "-m", "vtr", "pretrain", "-c", "experiments/pretrain/demo.yaml", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    logged = scalars(next((tmp_path / "out").glob("*/version_0")))
    assert logged["data/skipped_val_webvid"] == [2]
    assert len(logged["val/mvm_heldout"]) == 1 and math.isfinite(logged["val/mvm_heldout"][0])  # rank 0's batch
