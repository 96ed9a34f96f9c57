"""trainer.precision=auto and fp32 losses under bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vtr import precision
from vtr.config import load_config
from vtr.objectives.contrastive import contrastive_loss


def _cpuinfo_has_bf16() -> bool:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return any(flag in text.split() for flag in ("avx512_bf16", "amx_bf16"))


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU flags from /proc/cpuinfo")
def test_auto_on_this_cpu_follows_the_cpu_flags() -> None:
    expected = "bf16-mixed" if _cpuinfo_has_bf16() else "32-true"
    assert precision.resolve_precision("auto", "cpu") == expected
    assert load_config(None, ["trainer.accelerator=cpu"]).trainer.precision == expected


def test_auto_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # e.g. a V100
    assert precision.resolve_precision("auto", "gpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision.resolve_precision("auto", "auto") == "bf16-mixed"
    assert precision.resolve_precision("16-mixed", "gpu") == "16-mixed"  # explicit values are kept


def test_contrastive_loss_is_fp32_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    video = torch.nn.functional.normalize(torch.randn(16, 32, generator=g), dim=-1)
    text = torch.nn.functional.normalize(video + 0.3 * torch.randn(16, 32, generator=g), dim=-1)
    v, t = video.double(), text.double()
    logits = 20.0 * v @ t.T
    labels = torch.arange(16)
    reference = (
        torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)
    ) / 2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = contrastive_loss(video, text, 20.0)
    assert loss.dtype == torch.float32
    # bf16 logits would be off by ~1e-2; fp32 ones agree with float64 to ~1e-6
    assert abs(loss.item() - reference.item()) < 1e-5
