"""MILES masked visual modeling: regress the snapshot encoder's features at masked patches.

The online video encoder sees the masked clip; a prediction head maps its patch tokens to the
targets, which the snapshot encoder (an EMA copy of the online one, no gradients) computes on
the unmasked clip. Only masked positions count: visible patches are trivially predictable from
themselves and would dilute the signal.
"""

from __future__ import annotations

import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn


def build_head(kind: str, width: int, out_dim: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(width, out_dim)
    return Mlp(in_features=width, hidden_features=width, out_features=out_dim, act_layer=nn.GELU)


def masked_regression_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "mse") -> Tensor:
    """Mean over masked positions of a per-patch loss. pred/target (B, L, D), mask (B, L) bool."""
    pred, target = pred[mask].float(), target[mask].float()
    if kind == "mse":
        per_patch = (pred - target).pow(2).mean(-1)
    elif kind == "smooth_l1":
        per_patch = F.smooth_l1_loss(pred, target, reduction="none").mean(-1)
    elif kind == "cosine":
        per_patch = 1 - F.cosine_similarity(pred, target, dim=-1)
    else:
        raise ValueError(f"unknown regression loss {kind!r}")
    return per_patch.sum() / max(per_patch.numel(), 1)  # no masked patch: zero, not NaN
