"""``trainer.precision=auto``: bf16 mixed precision where the hardware computes bf16 natively.

bf16 keeps fp32's exponent range, so unlike fp16 it needs no loss scaling and does not overflow
in the contrastive logits; on hardware with native bf16 matrix units it roughly halves the step
time of the transformer towers. Where bf16 would be emulated (older CPUs, pre-Ampere GPUs) it is
slower than fp32, so ``auto`` falls back to ``32-true`` there.
"""

from __future__ import annotations

import torch

AUTO = "auto"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX, as read by torch's cpuinfo (not guessed from the CPU model name)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """The Lightning precision that ``auto`` stands for on this machine; other values unchanged."""
    if str(precision) != AUTO:
        return str(precision)
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("cpu", "auto"):
        return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    return "32-true"  # other accelerators (mps, tpu): fp32 unless asked for explicitly
