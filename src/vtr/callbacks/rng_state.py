"""Saves the global random states in checkpoints and restores them when training resumes.

Data order and augmentation (``data_modules/resumable.py``) and masks (seeded by step) do not
draw from the global RNGs; whatever else does (dropout, drop path) draws after a resume what an
uninterrupted run would, because the Python, NumPy, torch (and CUDA) states saved with the
checkpoint are put back when training starts again, after the loaders are set up and before the
first step. Lightning seeds every rank alike, so rank 0's states stand for all ranks.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def collect_rng_states() -> dict[str, Any]:
    """The global states, in types a ``weights_only`` checkpoint load accepts (no NumPy arrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["torch.cuda"] and len(states["torch.cuda"]) <= torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["torch.cuda"])


class RNGState(L.Callback):
    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._to_restore is not None:
            set_rng_states(self._to_restore)
            self._to_restore = None
