"""Checkpoints written before the objectives became modules (MILES' head under ``mvm_head.``,
MASCOT's decoder under ``completion.``) load into today's module, through ``init_from`` and
through a Lightning resume, with every tensor where it belongs."""

import json
import subprocess
import sys
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
    keep = ["model.mvm.snapshot_init=checkpoint"]  # the stored snapshot too, not a copy of the loaded encoder
    loaded = build_module(load_config(ROOT / "experiments" / recipe, overrides + [f"init_from={path}", *keep]))
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


# Run in a child process: FSDP2 (one CPU rank, gloo) leaves a process group behind.
_RESUME_SHARDED = """
import json, sys
from pathlib import Path
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
from vtr.build import build_datamodule, build_module, build_trainer
from vtr.config import load_config
overrides, folder, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
cfg = load_config("experiments/pretrain/demo.yaml", overrides + [f"resume={folder}"])
module = build_module(cfg)
trainer, _ = build_trainer(cfg, out.parent / "resumed")
trainer.fit(module, datamodule=build_datamodule(cfg), ckpt_path=folder)  # at max_steps: restores only
full = StateDictOptions(full_state_dict=True)
weights = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in module.state_dict().items()}
optimizer = get_optimizer_state_dict(module, trainer.optimizers[0], options=full)
torch.save({"step": trainer.global_step, "state_dict": weights, "optimizer": optimizer["state"]}, out)
"""


def _old_layout_tree(tree: dict) -> dict:
    """A whole sharded checkpoint (weights and name-keyed optimizer state) under the old names."""
    optimizer = tree["optimizer_0"]
    groups = [{**g, "params": list(_old_layout(dict.fromkeys(g["params"])))} for g in optimizer["param_groups"]]
    old_optimizer = {"state": _old_layout(optimizer["state"]), "param_groups": groups}
    return {**tree, "state_dict": _old_layout(tree["state_dict"]), "optimizer_0": old_optimizer}


def test_resume_of_an_old_layout_sharded_folder_restores_every_tensor(tiny_demo_root, tmp_path):
    """A sharded (DCP folder) checkpoint in the old key layout resumes as its new-layout original:
    the same weights and AdamW moments, where Lightning alone would report missing keys."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save, torch_save_to_dcp

    sharded = ["trainer.strategy=fsdp2", "fsdp.sharded_checkpoint=true", "data.val=[]", "data.test=[]"]
    overrides = tiny_overrides(tiny_demo_root, tmp_path / "first", steps=1) + sharded
    first = [sys.executable, "-m", "vtr", "pretrain", "-c", "experiments/pretrain/demo.yaml", *overrides]
    done = subprocess.run(first, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    new = tmp_path / "first/demo_pretrain/version_0/checkpoints/last.ckpt"
    assert new.is_dir()
    dcp_to_torch_save(new, tmp_path / "new.pt")
    original = torch.load(tmp_path / "new.pt", weights_only=False)
    assert any(k.startswith("mvm.head.") for k in original["state_dict"])
    torch.save(_old_layout_tree(original), tmp_path / "old.pt")
    old = tmp_path / "old_layout"
    torch_save_to_dcp(tmp_path / "old.pt", old)
    (old / "meta.pt").write_bytes((new / "meta.pt").read_bytes())

    out = tmp_path / "restored.pt"
    script = [sys.executable, "-c", _RESUME_SHARDED, json.dumps(overrides), str(old), str(out)]
    done = subprocess.run(script, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    restored = torch.load(out, weights_only=False)
    assert restored["step"] == 1
    assert restored["state_dict"].keys() == original["state_dict"].keys()
    for key, value in original["state_dict"].items():
        assert torch.equal(restored["state_dict"][key], value), key
    assert restored["optimizer"].keys() == original["optimizer_0"]["state"].keys()
    for name, moments in original["optimizer_0"]["state"].items():
        assert torch.equal(restored["optimizer"][name]["exp_avg"], moments["exp_avg"]), name
