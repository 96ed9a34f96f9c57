"""Divided space-time attention, forward + backward, three implementations side by side.

* ``previous``: the package's attention before bf16-on-CPU took the explicit path (SDPA always);
  kept here only, for the comparison.
* ``released-style``: the released Frozen-in-Time / MILES attention written from its description
  with einsum-style matmuls and an explicit softmax, heads folded into the batch: [CLS] attends to
  every token; a patch query attends to its group plus [CLS]'s key and value.
* ``package``: ``vtr.models.layers.SpaceTimeAttention`` as it is (for a 1-frame clip, an image,
  its shortcuts: plain attention in space, two dot products per patch in time).

Rows for 4-frame clips and for images (1 frame; half of every demo batch is CC3M images). For an
image the released-style form is what the package computed before its one-frame shortcuts.

The CPU is shared and its speed drifts, so the three run interleaved, each repetition the best
of two calls, and the table reports medians over repetitions.

    python benchmarks/bench_attention.py [--reps 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vtr.models.layers import SpaceTimeAttention

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # name: (width, heads, patches per frame, batch)
    "demo (128 wide, 4 heads, 64 px)": (128, 4, 16, 32),
    "ViT-S (384 wide, 6 heads, 224 px)": (384, 6, 196, 4),
}
FRAMES = (4, 1)


def previous(attn: SpaceTimeAttention, x: Tensor, t: int, axis: str) -> Tensor:
    b, length, dim = x.shape
    n = (length - 1) // t
    h, d = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x).reshape(b, length, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
    cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)
    groups = t if axis == "space" else n

    def group(z: Tensor) -> Tensor:
        z = z.reshape(b, h, t, n, d)
        z = z.transpose(1, 2) if axis == "space" else z.permute(0, 3, 1, 2, 4)
        return z.reshape(b * groups, h, -1, d)

    cls_k = k[:, :, :1].repeat_interleave(groups, dim=0)
    cls_v = v[:, :, :1].repeat_interleave(groups, dim=0)
    out = F.scaled_dot_product_attention(
        group(q[:, :, 1:]), torch.cat([cls_k, group(k[:, :, 1:])], 2), torch.cat([cls_v, group(v[:, :, 1:])], 2)
    )
    if axis == "space":
        out = out.reshape(b, t, h, n, d).transpose(1, 2)
    else:
        out = out.reshape(b, n, h, t, d).permute(0, 2, 3, 1, 4)
    out = torch.cat([cls_out, out.reshape(b, h, t * n, d)], dim=2)
    return attn.proj(out.transpose(1, 2).reshape(b, length, dim))


def released_style(attn: SpaceTimeAttention, x: Tensor, t: int, axis: str) -> Tensor:
    b, length, dim = x.shape
    h, d = attn.num_heads, attn.head_dim
    n = (length - 1) // t
    q, k, v = (z.reshape(b, length, h, d).transpose(1, 2).reshape(b * h, length, d) for z in attn.qkv(x).chunk(3, -1))
    q = q * d**-0.5
    cls_out = torch.einsum("bij,bkj->bik", q[:, :1], k).softmax(-1) @ v
    groups = t if axis == "space" else n

    def group(z: Tensor) -> Tensor:  # (BH, T*N, d) -> (BH*G, group size, d)
        z = z.reshape(b * h, t, n, d)
        return (z if axis == "space" else z.transpose(1, 2)).reshape(b * h * groups, -1, d)

    ks = torch.cat([k[:, :1].repeat_interleave(groups, 0), group(k[:, 1:])], 1)
    vs = torch.cat([v[:, :1].repeat_interleave(groups, 0), group(v[:, 1:])], 1)
    out = torch.einsum("bij,bkj->bik", group(q[:, 1:]), ks).softmax(-1) @ vs
    out = out.reshape(b * h, groups, -1, d)
    out = out if axis == "space" else out.transpose(1, 2)
    out = torch.cat([cls_out, out.reshape(b * h, t * n, d)], 1)
    return attn.proj(out.reshape(b, h, length, d).transpose(1, 2).reshape(b, length, dim))


def package(attn: SpaceTimeAttention, x: Tensor, t: int, axis: str) -> Tensor:
    return attn(x, t, axis)[0]


def seconds(fn: Callable[[Tensor], Tensor], x: Tensor) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        fn(x).sum().backward()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/attention.json")
    args = parser.parse_args()
    rows = []
    print("| size | frames | precision | axis | previous ms | released-style ms | package ms |")
    print("|---|---|---|---|---|---|---|")
    for size, (width, heads, patches, batch) in SIZES.items():
        for t in FRAMES:
            torch.manual_seed(0)
            attn = SpaceTimeAttention(width, heads)
            x = torch.randn(batch, 1 + t * patches, width, requires_grad=True)
            for precision in ("fp32", "bf16"):
                for axis in ("space", "time"):
                    impls = {
                        "previous": partial(previous, attn, t=t, axis=axis),
                        "released-style": partial(released_style, attn, t=t, axis=axis),
                        "package": partial(package, attn, t=t, axis=axis),
                    }
                    times: dict[str, list[float]] = {name: [] for name in impls}
                    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                        for fn in impls.values():  # warm-up
                            fn(x).sum().backward()
                        for _ in range(args.reps):
                            for name, fn in impls.items():
                                times[name].append(seconds(fn, x))
                    ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
                    rows.append({"size": size, "frames": t, "precision": precision, "axis": axis, "batch": batch,
                                 "median_ms": ms})  # fmt: skip
                    print(f"| {size} | {t} | {precision} | {axis} | " + " | ".join(f"{v:.2f}" for v in ms.values())
                          + " |", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"reps": args.reps, "threads": torch.get_num_threads(), "torch": torch.__version__}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
