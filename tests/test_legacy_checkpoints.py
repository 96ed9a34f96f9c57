"""Checkpoints written before the objectives became modules (MILES' head under ``mvm_head.``,
MASCOT's decoder under ``completion.``) load into today's module, through ``init_from`` and
through a Lightning resume, with every tensor where it belongs."""

from pathlib import Path

import pytest
import torch
from helpers.runs import tiny_overrides
from omegaconf import OmegaConf

from vtr.build import build_datamodule, build_module, build_trainer, run
from vtr.config import load_config, resolve_run_dir

ROOT = Path(__file__).resolve().parents[1]
# today's prefix -> the one earlier versions wrote (written out here, not taken from the code under test)
OLD_NAMES = {"mvm.head.": "mvm_head.", "mascot.decoder.": "completion."}


def _old_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for new, old in OLD_NAMES.items():
            if key.startswith(new):
                key = old + key[len(new) :]
        renamed[key] = value
    return renamed


@pytest.mark.parametrize(
    ("recipe", "old_prefix"),
    [("pretrain/demo.yaml", "mvm_head."), ("finetune/msrvtt_mascot.yaml", "completion.")],
    ids=["miles", "mascot"],
)
def test_init_from_an_old_layout_checkpoint_loads_every_tensor(recipe, old_prefix, tiny_demo_root, tmp_path):
    overrides = tiny_overrides(tiny_demo_root, tmp_path)
    cfg = load_config(ROOT / "experiments" / recipe, overrides)
    torch.manual_seed(0)
    source = build_module(cfg)
    with torch.no_grad():  # a snapshot unlike the online encoder: loaded, not reset from it
        for p in source.snapshot.parameters():
            p.add_(1.0)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    old = _old_layout(state)
    assert any(k.startswith(old_prefix) for k in old) and old.keys() != state.keys()
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": old, "hyper_parameters": {"config": OmegaConf.to_container(cfg, resolve=True)}}, path)

    torch.manual_seed(1)  # another random initialisation, so only loading can make the tensors equal
    loaded = build_module(load_config(ROOT / "experiments" / recipe, overrides + [f"init_from={path}"]))
    got = loaded.state_dict()
    assert got.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(got[key], value), key


def test_lightning_resume_of_an_old_layout_checkpoint_restores_every_tensor(tiny_demo_root, tmp_path):
    overrides = tiny_overrides(tiny_demo_root, tmp_path / "first", steps=1) + ["data.val=[]", "data.test=[]"]
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", overrides)
    run(cfg)
    last = resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    state = ckpt["state_dict"]
    ckpt["state_dict"] = _old_layout(state)
    assert any(k.startswith("mvm_head.") for k in ckpt["state_dict"])
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)

    resumed_cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", overrides + [f"resume={old}"])
    torch.manual_seed(1)
    module = build_module(resumed_cfg)
    assert not torch.equal(module.mvm.head.weight, state["mvm.head.weight"])
    trainer, _ = build_trainer(resumed_cfg, tmp_path / "resumed")
    trainer.fit(module, datamodule=build_datamodule(resumed_cfg), ckpt_path=str(old))  # at max_steps: restores only
    assert trainer.global_step == 1
    got = module.state_dict()
    assert got.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(got[key], value), key
