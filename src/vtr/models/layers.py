"""Divided space-time attention over a ``[CLS] + frames x patches`` token sequence.

One attention module serves both axes: patches are grouped by frame (``space``) or by patch
position (``time``), each group attends within itself plus [CLS], and [CLS] attends to every
token. Attention runs through ``F.scaled_dot_product_attention``, except for bfloat16 on a CPU:
there SDPA's kernel was measured 2-4x slower than the written-out softmax attention on these
short groups (benchmarks/bench_attention.py), so that case takes the explicit path. Since SDPA
returns no weights, the [CLS]-to-patch attention row that MASCOT's masking reads is computed
directly (one query, cheap) when asked for, instead of a second forward pass.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

Axis = Literal["space", "time"]


def explicit_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(QK^T / sqrt(d)) V written out; the reference that SDPA is benchmarked against."""
    weights = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return weights.softmax(dim=-1) @ v


def attend_cls_and_self(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Attention of each patch query (B, H, N, d) to two keys, [CLS] (``k[:, :, :1]``) and its own
    (``k[:, :, 1:]``): the temporal attention of a 1-frame clip. Two dot products per query,
    written out (in at least fp32) rather than a batched matrix product per patch, whose tiny per-patch
    matrices cost far more than the arithmetic (5x more than fp32 under CPU bf16)."""
    dtype = q.dtype
    wide = torch.promote_types(dtype, torch.float32)  # bf16 -> fp32; fp32 and fp64 stay
    q, k, v = q.to(wide), k.to(wide), v.to(wide)
    logits = torch.stack([(q * k[:, :, :1]).sum(-1), (q * k[:, :, 1:]).sum(-1)], dim=-1) * q.shape[-1] ** -0.5
    weights = logits.softmax(dim=-1)
    out = weights[..., :1] * v[:, :, :1] + weights[..., 1:] * v[:, :, 1:]
    return out.to(dtype)


class SpaceTimeAttention(nn.Module):
    """Multi-head self-attention along one axis; timm's ``Attention`` parameter names (qkv, proj)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.fused = True  # False: explicit softmax attention (benchmarks only)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        cpu_bf16 = q.device.type == "cpu" and q.dtype == torch.bfloat16
        if self.fused and not cpu_bf16:
            return F.scaled_dot_product_attention(q, k, v)
        return explicit_attention(q, k, v)

    def _attend_groups(self, q: Tensor, k: Tensor, v: Tensor, t: int, n: int, axis: Axis) -> Tensor:
        """The patch queries' output (B, H, T*N, d): patches grouped by frame (``space``) or by
        position (``time``), each group attending to [CLS] and itself."""
        b, h, _, d = q.shape
        groups = t if axis == "space" else n

        def group(z: Tensor) -> Tensor:  # (B, H, T*N, d) -> (B*G, H, group size, d)
            z = z.reshape(b, h, t, n, d)
            z = z.transpose(1, 2) if axis == "space" else z.permute(0, 3, 1, 2, 4)
            return z.reshape(b * groups, h, -1, d)

        cls_k = k[:, :, :1].repeat_interleave(groups, dim=0)
        cls_v = v[:, :, :1].repeat_interleave(groups, dim=0)
        out = self._attend(
            group(q[:, :, 1:]),
            torch.cat([cls_k, group(k[:, :, 1:])], dim=2),
            torch.cat([cls_v, group(v[:, :, 1:])], dim=2),
        )
        if axis == "space":  # (B*T, H, N, d) -> (B, H, T*N, d)
            out = out.reshape(b, t, h, n, d).transpose(1, 2)
        else:  # (B*N, H, T, d) -> (B, H, T*N, d)
            out = out.reshape(b, n, h, t, d).permute(0, 2, 3, 1, 4)
        return out.reshape(b, h, t * n, d)

    def forward(
        self, x: Tensor, num_frames: int, axis: Axis, return_cls_attn: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """x: (B, 1 + T*N, D), frame-major patches. Returns the output and, if asked,
        the head-averaged [CLS]-to-patch attention (B, T*N)."""
        b, length, dim = x.shape
        t = num_frames
        n = (length - 1) // t
        h, d = self.num_heads, self.head_dim
        q, k, v = self.qkv(x).reshape(b, length, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, L, d)

        if t == 1 and axis == "space":  # one frame (an image): every token sees every token
            out = self._attend(q, k, v)
        else:
            cls_out = self._attend(q[:, :, :1], k, v)  # [CLS] sees everything
            if t == 1:  # time axis of one frame: each patch sees [CLS] and itself
                patches = attend_cls_and_self(q[:, :, 1:], k, v)
            else:
                patches = self._attend_groups(q, k, v, t, n, axis)
            out = torch.cat([cls_out, patches], dim=2)
        out = self.proj(out.transpose(1, 2).reshape(b, length, dim))

        cls_attn = None
        if return_cls_attn:
            logits = (q[:, :, :1] @ k.transpose(-2, -1)).float() * d**-0.5  # (B, H, 1, L)
            cls_attn = logits.softmax(dim=-1)[:, :, 0, 1:].mean(dim=1)
        return out, cls_attn


BlockWiring = Literal["released", "residual_temporal"]


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention, then spatial attention, then the MLP, each pre-norm.

    ``wiring="released"`` (Frozen-in-Time / MILES, whose checkpoints load into this block)::

        t = attn_time(norm_time(x)); x = x + attn(norm1(x + t)); x = x + mlp(norm2(x))

    the temporal output only shapes the spatial attention's input and never enters the residual
    stream. ``"residual_temporal"`` adds it to the stream first (``x = x + t``), as this project's
    checkpoints written before ``model.video.block_wiring`` existed do; they keep that function.

    The temporal branch's output projection starts at zero, so under either wiring a fresh block
    computes exactly the image ViT block whose weights its spatial parts hold."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0, wiring: BlockWiring = "released"
    ) -> None:
        super().__init__()
        if wiring not in ("released", "residual_temporal"):
            raise ValueError(f"block wiring {wiring!r} is not one of released, residual_temporal")
        self.wiring = wiring
        self.norm_time = nn.LayerNorm(dim, eps=1e-6)
        self.attn_time = SpaceTimeAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SpaceTimeAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_temporal_branch(self) -> None:
        nn.init.zeros_(self.attn_time.proj.weight)
        nn.init.zeros_(self.attn_time.proj.bias)

    def forward(self, x: Tensor, num_frames: int, return_cls_attn: bool = False) -> tuple[Tensor, Tensor | None]:
        t = self.attn_time(self.norm_time(x), num_frames, "time")[0]
        if self.wiring == "released":
            out, cls_attn = self.attn(self.norm1(x + t), num_frames, "space", return_cls_attn)
        else:
            x = x + self.drop_path(t)
            out, cls_attn = self.attn(self.norm1(x), num_frames, "space", return_cls_attn)
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, cls_attn
