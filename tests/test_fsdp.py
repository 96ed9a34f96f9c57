"""Sharded training: config -> strategy construction (FSDP1 is GPU-only, so only constructed
here), and 2-process CPU (gloo) runs in which FSDP2 matches DDP step for step, MILES snapshot
and EMA included, with checkpoints that init_from / resume / evaluate read."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vtr.checkpoints import read_checkpoint
from vtr.config import ConfigError, load_config
from vtr.models.layers import DividedSpaceTimeBlock
from vtr.models.text_encoder import TextEncoder
from vtr.models.video_encoder import SpaceTimeViT
from vtr.sharding import FSDP2Strategy, build_strategy, fsdp2_mp_policy

ROOT = Path(__file__).resolve().parents[1]


def _hf_blocks():
    from transformers.models.bert.modeling_bert import BertLayer
    from transformers.models.distilbert.modeling_distilbert import TransformerBlock

    return {BertLayer, TransformerBlock}


# ------------------------------------------------------------------------------ construction only
@pytest.mark.parametrize("name", ["auto", "ddp"])
def test_other_strategies_pass_through_by_name(name):
    assert build_strategy(load_config(None, [f"trainer.strategy={name}"])) == name


@pytest.mark.parametrize("checkpointing", [False, True])
def test_fsdp_strategy_wraps_blocks_and_encoders_with_bf16_and_checkpointing(checkpointing):
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import ShardingStrategy

    cfg = load_config(
        None,
        [
            "trainer.strategy=fsdp",
            "trainer.accelerator=gpu",
            "trainer.precision=bf16-mixed",
            f"fsdp.activation_checkpointing={checkpointing}",
            "fsdp.sharded_checkpoint=true",
        ],
    )
    strategy = build_strategy(cfg)
    assert isinstance(strategy, FSDPStrategy)
    blocks = {DividedSpaceTimeBlock, *_hf_blocks()}
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {*blocks, SpaceTimeViT, TextEncoder}
    assert strategy.kwargs["use_orig_params"] is True
    assert strategy.sharding_strategy == ShardingStrategy.FULL_SHARD
    if checkpointing:
        assert strategy._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == blocks
    else:
        assert not strategy._activation_checkpointing_kwargs
    mixed = strategy.mixed_precision_config
    assert (mixed.param_dtype, mixed.reduce_dtype, mixed.buffer_dtype) == (torch.bfloat16, torch.float32, torch.float32)
    assert strategy._state_dict_type == "sharded"

    full = build_strategy(load_config(None, ["trainer.strategy=fsdp", "trainer.accelerator=gpu"]))
    assert full._state_dict_type == "full" and full.mixed_precision is None


def test_fsdp_on_the_cpu_is_a_config_error():
    with pytest.raises(ConfigError, match="trainer.strategy"):
        load_config(None, ["trainer.strategy=fsdp", "trainer.accelerator=cpu"])


def test_fsdp2_strategy_and_trainer(tmp_path):
    from vtr.build import build_trainer

    cfg = load_config(
        None, ["trainer.strategy=fsdp2", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=bf16-mixed"]
    )
    strategy = build_strategy(cfg)
    assert isinstance(strategy, FSDP2Strategy)
    assert strategy._tensor_parallel_size == 1 and strategy._save_distributed_checkpoint is False
    trainer, _ = build_trainer(cfg, tmp_path)
    assert trainer.strategy is not strategy and isinstance(trainer.strategy, FSDP2Strategy)
    assert trainer.num_devices == 2 and not trainer.predict_loop.inference_mode and not trainer.test_loop.inference_mode
    policy = fsdp2_mp_policy("bf16-mixed")
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert fsdp2_mp_policy("32-true") is None
    sharded = build_strategy(load_config(None, ["trainer.strategy=fsdp2", "fsdp.sharded_checkpoint=true"]))
    assert sharded._save_distributed_checkpoint is True


# ---------------------------------------------------------------------------- 2-process CPU runs
def _train(recipe: str, args: list[str], task: str = "pretrain") -> None:
    cmd = [sys.executable, "-m", "vtr", task, "-c", f"experiments/{recipe}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir)).Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.ddp
def test_fsdp2_matches_ddp_with_miles_snapshot_and_checkpoints_cross_read(tiny_demo_root, tmp_path):
    """MILES (masked modeling against the EMA snapshot), learnable temperature: 3 steps on 2 ranks
    with DDP and with FSDP2 give the same losses, weights (snapshot included) and optimizer state.
    Then FSDP2 resumes DDP's checkpoint, writing sharded checkpoints, resumes its own sharded
    checkpoint, and fine-tuning / evaluation read that folder as init_from."""
    from helpers.runs import tiny_overrides

    from vtr.build import build_module

    steps = 3
    common = tiny_overrides(tiny_demo_root, tmp_path, steps=steps) + [
        "trainer.devices=2",
        "model.learn_temperature=true",  # the one 0-dim parameter: replicated, its gradient averaged
        "optim.warmup_steps=0",
    ]
    _train("pretrain/demo.yaml", common + ["experiment=ddp", "trainer.strategy=ddp", "data.test=[]"])
    _train("pretrain/demo.yaml", common + ["experiment=fsdp2", "trainer.strategy=fsdp2"])
    ddp_dir, fsdp_dir = tmp_path / "ddp/version_0", tmp_path / "fsdp2/version_0"

    ddp, fsdp = _scalars(ddp_dir), _scalars(fsdp_dir)
    for tag in ("train/loss", "train/loss_contrastive", "train/loss_mvm", "train/logit_scale", "train/ema_momentum"):
        assert len(ddp[tag]) == len(fsdp[tag]) == steps, tag
        for (_, a), (_, b) in zip(ddp[tag], fsdp[tag]):
            assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (tag, ddp[tag], fsdp[tag])
    assert ddp["val/msrvtt/t2v_R1"] == fsdp["val/msrvtt/t2v_R1"]
    assert "test" in json.loads((fsdp_dir / "metrics.json").read_text())  # after fit, best.ckpt tested

    # FSDP2's full checkpoint is one file in DDP's layout: same keys, weights and AdamW state.
    ddp_ckpt = torch.load(ddp_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    fsdp_ckpt = torch.load(fsdp_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    ddp_state, fsdp_state = ddp_ckpt["state_dict"], fsdp_ckpt["state_dict"]
    assert ddp_state.keys() == fsdp_state.keys() and any(k.startswith("snapshot.") for k in fsdp_state)
    for key, value in ddp_state.items():
        assert fsdp_state[key].shape == value.shape, key
        # Float noise in a near-zero gradient can flip Adam's normalised update of that element,
        # so elements may differ by a small fraction of the learning rate.
        assert torch.allclose(fsdp_state[key], value, atol=1e-5), key
    # The EMA ran: the snapshot trails the online encoder (and equals DDP's snapshot, above).
    assert any(
        not torch.equal(v, fsdp_state["snapshot." + k[12:]])
        for k, v in fsdp_state.items()
        if k.startswith("model.video.")
    )
    ddp_opt, fsdp_opt = ddp_ckpt["optimizer_states"][0], fsdp_ckpt["optimizer_states"][0]
    assert [g["params"] for g in ddp_opt["param_groups"]] == [g["params"] for g in fsdp_opt["param_groups"]]
    assert ddp_opt["state"].keys() == fsdp_opt["state"].keys()
    for i, state in ddp_opt["state"].items():
        assert torch.allclose(fsdp_opt["state"][i]["exp_avg"], state["exp_avg"], atol=1e-6), i

    # FSDP2 resumes DDP's checkpoint (one step), writing sharded checkpoints; then resumes those.
    resumed = common + ["experiment=resumed", "trainer.strategy=fsdp2", "fsdp.sharded_checkpoint=true", "data.test=[]"]
    _train("pretrain/demo.yaml", resumed + [f"resume={ddp_dir / 'checkpoints/last.ckpt'}", "trainer.max_steps=4"])
    folder = tmp_path / "resumed/version_0/checkpoints/last.ckpt"
    assert folder.is_dir() and len(list(folder.glob("*.distcp"))) == 2  # a file per rank, plus meta.pt
    assert torch.load(folder / "meta.pt", weights_only=False)["global_step"] == 4
    _train("pretrain/demo.yaml", resumed + ["version=version_0", "trainer.max_steps=5"])  # picks up last.ckpt
    assert torch.load(folder / "meta.pt", weights_only=False)["global_step"] == 5
    assert len(_scalars(tmp_path / "resumed/version_0")["train/loss"]) == 2

    # init_from a sharded folder: consolidated in this one process, architecture from meta.pt.
    state = read_checkpoint(folder).state
    assert state.keys() == ddp_state.keys() and all(type(v) is torch.Tensor for v in state.values())
    cfg = load_config(ROOT / "experiments/finetune/msrvtt.yaml", [f"init_from={folder}", f"data.root={tiny_demo_root}"])
    assert cfg.model.video.width == 32 and cfg.model.learn_temperature
    module = build_module(cfg)
    assert torch.equal(module.model.video.cls_token, state["model.video.cls_token"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("strategy", ["fsdp", "fsdp2"])
def test_sharded_strategies_train_on_a_gpu(strategy, tiny_demo_root, tmp_path):
    """FSDP1 refuses the CPU: on a GPU, both strategies train MILES with bf16, activation
    checkpointing and sharded checkpoints, which init_from reads back."""
    from helpers.runs import tiny_overrides

    args = tiny_overrides(tiny_demo_root, tmp_path, steps=2) + [
        "experiment=gpu",
        "trainer.accelerator=gpu",
        f"trainer.strategy={strategy}",
        "trainer.precision=bf16-mixed",
        "fsdp.activation_checkpointing=true",
        "fsdp.sharded_checkpoint=true",
        "data.test=[]",
    ]
    _train("pretrain/demo.yaml", args)
    ckpt = tmp_path / "gpu/version_0/checkpoints/last.ckpt"
    assert ckpt.is_dir()
    state = read_checkpoint(ckpt).state
    assert any(k.startswith("snapshot.") for k in state) and all(torch.isfinite(v).all() for v in state.values())
