"""Training-step throughput: clips/s for forward + backward + AdamW step (+ EMA update with MVM).

Rows: model (the demo model, ViT-S/16 + a 6-layer 384-wide BERT, ViT-B/16 + DistilBERT-sized
with ``--vit-b``; random init) x precision (fp32, bf16 autocast) x objective (contrastive, MILES
masked visual modeling). ``--images N`` adds N images (1-frame clips, the CC3M part) to every
step's batch of videos, as the demo recipe trains on both. ``--compile`` adds demo rows with
``model.compile`` on and off (the first, compiling step's time reported separately). The
optimizer is the module's own (``configure_optimizers``).

    python benchmarks/bench_train_step.py [--batch 2] [--frames 4] [--images 0] [--steps 3] [--vit-b] [--compile]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from model_sizes import vit_b_distilbert, vit_s_bert6  # benchmarks/model_sizes.py
from omegaconf import OmegaConf

from vtr.callbacks.snapshot_ema import ema_update
from vtr.config import load_config
from vtr.modules.retrieval import VideoTextModule

ROOT = Path(__file__).resolve().parents[1]

MODELS = {
    "demo": [],
    "ViT-S + BERT-6x384": [*vit_s_bert6(224), "model.embed_dim=256"],
    "ViT-B + DistilBERT": [*vit_b_distilbert(224), "model.embed_dim=256"],
}
OBJECTIVES = {
    "contrastive": ["model.mvm.enabled=false"],
    "MILES": ["model.mvm.enabled=true", "model.mvm.start_step=0"],
}


def make_module(overrides: list[str], objective: str, tokenizer: Path, device: str) -> VideoTextModule:
    cfg = load_config(
        ROOT / "experiments/pretrain/demo.yaml",
        [f"model.text.name_or_path={tokenizer}", *OBJECTIVES[objective], *overrides],
    )
    module = VideoTextModule(OmegaConf.to_container(cfg, resolve=True)).to(device)
    module.configure_model()  # model.compile
    module.trainer = type("Trainer", (), {"estimated_stepping_batches": 1000})()
    optimizer = module.configure_optimizers()["optimizer"]
    module.trainer = None  # compute_losses outside a fit: no logging
    module.optimizer = optimizer
    return module.train()


def step_seconds(
    module: VideoTextModule, batch: int, frames: int, images: int, steps: int, device: str, bf16: bool
) -> tuple[float, float]:
    """Median seconds per step after the first, and the first step's seconds (compilation)."""
    res = module.model.video.patch_embed.img_size[0]

    def part(size: int, num_frames: int) -> dict:
        return {
            "video": torch.randn(size, num_frames, 3, res, res, device=device),
            "text": {
                "input_ids": torch.randint(5, 100, (size, 24), device=device),
                "attention_mask": torch.ones(size, 24, dtype=torch.long, device=device),
            },
        }

    data = {"webvid": part(batch, frames)} | ({"cc3m": part(images, 1)} if images else {})
    optimizer = module.optimizer
    times = []
    for _ in range(steps + 1):  # the first step warms up (and compiles)
        start = time.perf_counter()
        with torch.autocast(device, torch.bfloat16, enabled=bf16):
            losses, weights, _ = module.compute_losses(data)
        sum(weights[k] * v for k, v in losses.items()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if module.uses_snapshot:
            ema_update(module.snapshot, module.model.video, 0.999)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--images", type=int, default=0, help="images (1-frame clips) per step besides the videos")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vit-b", action="store_true", help="also the ViT-B/16 + DistilBERT-sized model")
    parser.add_argument(
        "--compile", action="store_true", help="also demo rows with model.compile=true vs false (fp32, contrastive)"
    )
    parser.add_argument("--models", nargs="*", default=None, help="only these model names")
    parser.add_argument("--tokenizer", type=Path, default=ROOT / "data/demo/tokenizer")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/train_step.json")
    args = parser.parse_args()

    models = [m for m in MODELS if (args.vit_b or not m.startswith("ViT-B")) and m in (args.models or MODELS)]
    configs = [(m, p, o, False) for m in models for p in ("fp32", "bf16") for o in OBJECTIVES]
    if args.compile:
        configs += [("demo", "fp32", "contrastive", c) for c in (False, True)]
    rows = []
    print(f"| model | precision | objective | compile | s/step | clips/s | first step s |  "
          f"(batch {args.batch} videos of {args.frames} frames + {args.images} images, {args.device})")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, precision, objective, compiled in configs:
        torch.manual_seed(0)
        overrides = [*MODELS[name], f"model.compile={str(compiled).lower()}"]
        module = make_module(overrides, objective, args.tokenizer, args.device)
        seconds, first = step_seconds(
            module, args.batch, args.frames, args.images, args.steps, args.device, precision == "bf16"
        )
        row = {"model": name, "precision": precision, "objective": objective, "compile": compiled,
               "seconds_per_step": seconds, "clips_per_second": (args.batch + args.images) / seconds,
               "first_step_seconds": first}  # fmt: skip
        rows.append(row)
        print(f"| {name} | {precision} | {objective} | {compiled} | {seconds:.3f} | {row['clips_per_second']:.2f} "
              f"| {first:.1f} |", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "batch": args.batch,
        "frames": args.frames,
        "images": args.images,
        "steps": args.steps,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
