"""A MILES step's two online views of the same clips (masked, unmasked): two forward passes
against one pass over both stacked along the batch (``DualEncoder.embed_video_views``).

Forward + backward of the demo-sized video encoder (random init), for 4-frame clips and for
images (1 frame, the CC3M half of a demo batch), fp32 and bf16 autocast. The two forms run
interleaved and the table reports medians over repetitions (this CPU's speed drifts).

    python benchmarks/bench_stacked_views.py [--batch 32] [--reps 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from vtr.config import load_config
from vtr.models import DualEncoder

ROOT = Path(__file__).resolve().parents[1]


def backward_seconds(views: Callable[[], list[tuple[Tensor, object]]]) -> float:
    start = time.perf_counter()
    sum(emb.sum() + out.tokens.float().square().mean() for emb, out in views()).backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--tokenizer", type=Path, default=ROOT / "data/demo/tokenizer")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stacked_views.json")
    args = parser.parse_args()
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", [f"model.text.name_or_path={args.tokenizer}"])
    torch.manual_seed(0)
    model = DualEncoder(cfg.model).train()
    res, patches = cfg.model.video.img_size, model.video.num_patches
    rows = []
    print(f"| frames | precision | two passes ms | one stacked pass ms | speed-up |  (batch {args.batch})")
    print("|---|---|---|---|---|")
    for frames in (4, 1):
        video = torch.randn(args.batch, frames, 3, res, res)
        mask = torch.rand(args.batch, frames * patches) < cfg.model.mvm.mask_ratio
        forms = {
            "two passes": lambda v=video, m=mask: [model.embed_video(v, mask=m), model.embed_video(v)],
            "stacked": lambda v=video, m=mask: model.embed_video_views(v, [m, None]),
        }
        for precision in ("fp32", "bf16"):
            times: dict[str, list[float]] = {name: [] for name in forms}
            with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                for rep in range(args.reps + 2):  # the first two warm up
                    for name, views in forms.items():
                        seconds = backward_seconds(views)
                        model.zero_grad(set_to_none=True)
                        if rep >= 2:
                            times[name].append(seconds)
            ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
            speedup = ms["two passes"] / ms["stacked"]
            rows.append({"frames": frames, "precision": precision, "median_ms": ms, "speedup": speedup})
            print(f"| {frames} | {precision} | {ms['two passes']:.1f} | {ms['stacked']:.1f} | {speedup:.2f}x |",
                  flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"batch": args.batch, "reps": args.reps, "threads": torch.get_num_threads(), "torch": torch.__version__}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
