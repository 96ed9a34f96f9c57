"""The training step's optimizer flags and ``model.compile``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.runs import tiny_overrides
from omegaconf import OmegaConf

from vtr.config import load_config
from vtr.modules.retrieval import VideoTextModule

ROOT = Path(__file__).resolve().parents[1]


def _module(root: Path, *overrides: str) -> VideoTextModule:
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", [*tiny_overrides(root, Path("/tmp"), 1), *overrides])
    torch.manual_seed(0)
    module = VideoTextModule(OmegaConf.to_container(cfg, resolve=True))
    module.trainer = type("T", (), {"estimated_stepping_batches": 10})()
    return module


def _batch() -> dict:
    g = torch.Generator().manual_seed(1)
    text = {
        "input_ids": torch.randint(5, 50, (3, 6), generator=g),
        "attention_mask": torch.ones(3, 6, dtype=torch.long),
    }
    return {"webvid": {"video": torch.randn(3, 2, 3, 32, 32, generator=g), "text": text}}


def test_adamw_takes_the_multi_tensor_path_on_a_cpu(tiny_demo_root):
    optimizer = _module(tiny_demo_root).configure_optimizers()["optimizer"]
    assert optimizer.defaults["foreach"] is True
    assert not optimizer.defaults["fused"]  # fused is for CUDA parameters only


@pytest.mark.slow
def test_compiled_encoders_train_a_step_like_eager_ones(tiny_demo_root):
    """Same weights, batch and masks: the compiled module's losses, gradients and updated weights
    match the eager module's, and its encoders did go through ``torch.compile``."""
    results = []
    for compile_ in (False, True):
        module = _module(tiny_demo_root, f"model.compile={str(compile_).lower()}").eval()  # no dropout
        module.configure_model()
        optimizer = module.configure_optimizers()["optimizer"]
        module.trainer = None  # compute_losses outside a fit: no logging
        losses, weights, _ = module.compute_losses(_batch())
        sum(weights[k] * v for k, v in losses.items()).backward()
        grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
        optimizer.step()
        results.append((module, losses, grads))
    (eager, eager_losses, eager_grads), (compiled, losses, grads) = results
    assert compiled.model.video._compiled_call_impl is not None and compiled.model.text._compiled_call_impl is not None
    assert eager.model.video._compiled_call_impl is None
    assert set(losses) == {"contrastive", "mvm"}
    for name, value in eager_losses.items():
        assert torch.allclose(losses[name], value, atol=1e-5), name
    assert grads.keys() == eager_grads.keys() and len(grads) > 20
    for name, grad in eager_grads.items():
        assert torch.allclose(grads[name], grad, atol=1e-5, rtol=1e-4), name
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # names (checkpoints) unchanged
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        assert torch.allclose(p, q, atol=1e-5), name
