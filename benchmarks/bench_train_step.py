"""Training-step throughput: clips/s for forward + backward + AdamW step (+ EMA update with MVM).

Rows: the demo model and a ViT-B/16 + DistilBERT-sized model (random init, same architecture),
with contrastive loss only, with MILES masked visual modeling and (demo model) with MASCOT, and
with attention through ``F.scaled_dot_product_attention`` vs an explicit softmax(QK^T)V.

    python benchmarks/bench_train_step.py [--batch 2] [--frames 4] [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from model_sizes import vit_b_distilbert  # benchmarks/model_sizes.py
from omegaconf import OmegaConf

from vtr.callbacks.snapshot_ema import ema_update
from vtr.config import load_config
from vtr.models.layers import SpaceTimeAttention
from vtr.modules.retrieval import VideoTextModule

ROOT = Path(__file__).resolve().parents[1]

MODELS = {
    "demo (ViT 128x4, BERT 128x2, 64 px)": [],
    "ViT-B/16 + DistilBERT (224 px)": [*vit_b_distilbert(224), "model.embed_dim=256"],
}


OBJECTIVES = {
    "contrastive": ["model.mvm.enabled=false"],
    "MILES (MVM)": ["model.mvm.enabled=true", "model.mvm.start_step=0"],
    "MASCOT": ["model.mvm.enabled=false", "model.mascot.enabled=true", "model.mascot.decoder_heads=4"],
}


def make_module(overrides: list[str], objective: str, fused: bool, tokenizer: Path, device: str) -> VideoTextModule:
    cfg = load_config(
        ROOT / "experiments/pretrain/demo.yaml",
        [f"model.text.name_or_path={tokenizer}", *OBJECTIVES[objective], *overrides],
    )
    module = VideoTextModule(OmegaConf.to_container(cfg, resolve=True)).to(device)
    for layer in module.modules():
        if isinstance(layer, SpaceTimeAttention):
            layer.fused = fused
    return module.train()


def step_seconds(module: VideoTextModule, batch: int, frames: int, steps: int, device: str) -> float:
    res = module.model.video.patch_embed.img_size[0]
    data = {
        "webvid": {
            "video": torch.randn(batch, frames, 3, res, res, device=device),
            "text": {
                "input_ids": torch.randint(5, 100, (batch, 24), device=device),
                "attention_mask": torch.ones(batch, 24, dtype=torch.long, device=device),
            },
        }
    }
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for i in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        losses, weights, _ = module.compute_losses(data)
        sum(weights[k] * v for k, v in losses.items()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if module.uses_snapshot:
            ema_update(module.snapshot, module.model.video, 0.999)
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokenizer", type=Path, default=ROOT / "data/demo/tokenizer")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/train_step.json")
    args = parser.parse_args()

    rows = []
    setting = f"(batch {args.batch}, {args.frames} frames, {args.device})"
    print(f"| model | objective | attention | s/step | clips/s |  {setting}")
    print("|---|---|---|---|---|")
    for name, overrides in MODELS.items():
        for objective in OBJECTIVES if name.startswith("demo") else list(OBJECTIVES)[:2]:
            for fused in (True, False):
                torch.manual_seed(0)
                module = make_module(overrides, objective, fused, args.tokenizer, args.device)
                seconds = step_seconds(module, args.batch, args.frames, args.steps, args.device)
                row = {"model": name, "objective": objective, "attention": "sdpa" if fused else "explicit",
                       "seconds_per_step": seconds, "clips_per_second": args.batch / seconds}  # fmt: skip
                rows.append(row)
                print(
                    f"| {name} | {objective} | {row['attention']} | {seconds:.3f} | {row['clips_per_second']:.2f} |",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "batch": args.batch,
        "frames": args.frames,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
