"""Our space-time ViT against the released Frozen-in-Time / MILES ``SpaceTimeTransformer``, side by side.

Both encoders get the same weights (the released model's, read through our released-checkpoint key
mapping), so the first check is that they compute the same [CLS] feature; then one training step
each (forward, a linear head, a squared loss, backward, AdamW), interleaved in one process, at fp32
and under bf16 autocast, at the demo size and at a ViT-S/16 size. The released file is not part of
this project: pass a copy of ``model/video_transformer.py`` from github.com/m-bain/frozen-in-time
(it needs ``einops``, a benchmark-only install).

    python benchmarks/bench_vs_released.py --released path/to/frozen-in-time/model/video_transformer.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from vtr.checkpoints.released import remap_released
from vtr.models.video_encoder import SpaceTimeViT

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # name: (img_size, patch, width, depth, heads, batch)
    "demo": (64, 16, 128, 4, 4, 32),
    "ViT-S/16 224px": (224, 16, 384, 12, 6, 4),
}


def released_class(path: Path) -> type[nn.Module]:
    spec = importlib.util.spec_from_file_location("released_video_transformer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SpaceTimeTransformer


class Released(nn.Module):
    """The released encoder as Frozen-in-Time uses it: head and pre-logits removed, [CLS] out."""

    def __init__(self, cls: type[nn.Module], img: int, patch: int, width: int, depth: int, heads: int, frames: int):
        super().__init__()
        self.vit = cls(img_size=img, patch_size=patch, embed_dim=width, depth=depth, num_heads=heads,
                       num_frames=frames, attention_style="frozen-in-time")  # fmt: skip
        self.vit.head, self.vit.pre_logits = nn.Identity(), nn.Identity()
        for p in self.vit.parameters():  # random temporal branches too, so the wiring matters
            nn.init.normal_(p, std=0.05)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_features(video)


class Ours(nn.Module):
    def __init__(self, released: Released, img: int, patch: int, width: int, depth: int, heads: int, frames: int):
        super().__init__()
        self.vit = SpaceTimeViT(img, patch, width, depth, heads, num_frames=frames)
        state = remap_released({f"video_model.{k}": v for k, v in released.vit.state_dict().items()})
        missing, unexpected = self.vit.load_state_dict({k[len("video.") :]: v for k, v in state.items()}, strict=False)
        assert missing == ["mask_token"] and not unexpected, (missing, unexpected)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.vit(video).tokens[:, 0]


def step_seconds(encoder: nn.Module, head: nn.Module, optimizer, video: torch.Tensor, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        loss = head(encoder(video)).float().pow(2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--released", type=Path, required=True, help="the released model/video_transformer.py")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; each times 2 steps an arm")
    parser.add_argument("--sizes", nargs="*", default=list(SIZES))
    parser.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vs_released.json")
    args = parser.parse_args()
    cls = released_class(args.released)

    rows = []
    print(f"| size | precision | released s/step | ours s/step | ours / released speed | max abs diff of [CLS] |  "
          f"({args.frames} frames, {torch.get_num_threads()} threads)")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        img, patch, width, depth, heads, batch = SIZES[size]
        torch.manual_seed(0)
        released = Released(cls, img, patch, width, depth, heads, args.frames)
        ours = Ours(released, img, patch, width, depth, heads, args.frames)
        video = torch.randn(batch, args.frames, 3, img, img)
        with torch.no_grad():
            diff = (released.eval()(video) - ours.eval()(video)).abs().max().item()
        arms = {}
        for name, encoder in (("released", released.train()), ("ours", ours.train())):
            head = nn.Linear(width, 256)
            optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-5, foreach=True)
            arms[name] = (encoder, head, optimizer)
        for precision in args.precisions:
            times: dict[str, list[float]] = {"released": [], "ours": []}
            for arm in arms.values():  # warm-up, one step each
                step_seconds(*arm, video, precision == "bf16")
            for _ in range(args.repeats):
                for name, arm in arms.items():
                    times[name] += [step_seconds(*arm, video, precision == "bf16") for _ in range(2)]
            rel, own = statistics.median(times["released"]), statistics.median(times["ours"])
            rows.append({"size": size, "precision": precision, "batch": batch, "released_seconds": rel,
                         "ours_seconds": own, "speedup": rel / own, "max_abs_diff_fp32_cls": diff})  # fmt: skip
            print(f"| {size} (batch {batch}) | {precision} | {rel:.3f} | {own:.3f} | {rel / own:.2f}x | {diff:.1e} |",
                  flush=True)  # fmt: skip
    meta = {"frames": args.frames, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
