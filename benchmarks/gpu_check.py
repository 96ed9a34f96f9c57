"""One GPU check of the paper-scale recipe: step time, memory and MFU, sharded runs, precision, data wall.

Parts (each recorded in one JSON; a failing part records its error and the rest still run):

1. ``train_step``: ViT-B/16 at 224 px, 4 frames + a DistilBERT-sized text tower (random init),
   bf16 autocast, batch 16/32/64: the demo recipe's MILES step, the literal masked-view MILES
   and contrastive-only. s/step, clips/s, peak memory, MFU against ``--peak-tflops``.
2. ``checkpointing_compile``: the demo MILES step with activation checkpointing and with
   ``model.compile``.
3. ``strategies``: ``trainer.strategy=fsdp`` and ``fsdp2`` through ``build.run`` on one device,
   then a resume from the checkpoint each wrote.
4. ``precision``: the contrastive loss of a fixed batch in fp32 and under bf16 autocast.
5. ``data_wall``: loader clips/s on generated web-like clips by worker count, and the workers
   per GPU that the fastest step needs.

``--dry-run`` runs the same code at the demo sizes on the CPU (a test runs it). On the device
(no package registry there: ``benchmarks/fetch_gpu_wheels.sh`` fills ``.gpu_wheels/``, 37 MB for
Python 3.11, which the run carries with the working tree)::

    pip install --no-index --no-deps .gpu_wheels/*.whl && pip install --no-deps -e . \
        && python benchmarks/gpu_check.py --out $OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bench_data_loading import ClipDataset, clips_per_second  # benchmarks/
from bench_train_step import OBJECTIVES, make_module, step_seconds
from model_sizes import vit_b_distilbert
from web_clips import ClipSpec, encode

from data_modules.demo import DemoSizes, generate_demo_corpus
from data_modules.video import read_video
from vtr import build
from vtr.config import load_config
from vtr.sharding import enable_activation_checkpointing

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ is not installed by pip: tiny_overrides from the repo root
from tests.helpers.runs import tiny_overrides  # noqa: E402

TEXT_LEN = 24  # bench_train_step.step_seconds' caption length
VARIANTS = {  # objective (bench_train_step.OBJECTIVES) and overrides on the demo recipe
    "MILES (demo recipe)": ("MILES", []),
    "MILES (literal, masked view)": (
        "MILES",
        ["model.mvm.contrastive_view=masked", "model.mvm.target=tokens", "model.mvm.ema_momentum=0.999"],
    ),
    "contrastive": ("contrastive", []),
}


def model_flops(cfg: Any, batch: int, text_len: int) -> float:
    """Matmul FLOPs of one training step (forward + backward) for ``batch`` clips; 2*m*n*k per matmul.

    Video encoder, per clip (T frames, N = (img/patch)^2 patches a frame, L = 1 + T*N tokens, width D):

    * patch embedding: 2 * T*N * (3*patch^2) * D
    * per block, for each of the temporal and the spatial attention: qkv 2*L*D*3D, proj 2*L*D*D;
      [CLS] attends to all L tokens (scores 2*L*D, values 2*L*D); patch queries attend to [CLS] and
      their group: temporal N groups of T (scores 2*N*T*(T+1)*D, same for values), spatial T groups
      of N (scores 2*T*N*(N+1)*D, same for values)
    * per block, MLP: 2 * 2*L*D*(mlp_ratio*D)
    * projection of [CLS]: 2*D*E

    Text encoder, per caption (S tokens, width Dt, FFN 4*Dt): per layer qkv + out 8*S*Dt^2, scores
    and values 4*S^2*Dt, FFN 16*S*Dt^2; projection 2*Dt*E.

    Training counts the online encoders' forward x3 (backward = 2 forwards). The online video
    encoder runs 2 views (masked + unmasked, stacked) when MVM has ``contrastive_view`` other than
    ``masked``, else 1; MVM adds 1 no-grad forward of the snapshot (encoder only, no projection).
    Left out: the MVM head, layer norms, softmax, the loss (all well under 1% at ViT-B size).
    """
    v, t, e = cfg.model.video, cfg.model.text, cfg.model.embed_dim
    frames, d, n = v.num_frames, v.width, (v.img_size // v.patch_size) ** 2
    tokens = 1 + frames * n
    attn_linear = 8 * tokens * d * d
    cls_attn = 4 * tokens * d
    temporal = attn_linear + cls_attn + 4 * n * frames * (frames + 1) * d
    spatial = attn_linear + cls_attn + 4 * frames * n * (n + 1) * d
    mlp = 4 * tokens * d * int(v.mlp_ratio * d)
    encoder = 2 * frames * n * 3 * v.patch_size**2 * d + v.depth * (temporal + spatial + mlp)
    video = encoder + 2 * d * e
    text = t.depth * (24 * text_len * t.width**2 + 4 * text_len**2 * t.width) + 2 * t.width * e
    mvm = cfg.model.mvm.enabled
    views = 2 if mvm and cfg.model.mvm.contrastive_view != "masked" else 1
    return float(batch * (3 * (views * video + text) + (encoder if mvm else 0)))


def peak_memory_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def time_step(
    args: argparse.Namespace, variant: str, batch: int, extra: list[str], checkpointing: bool = False
) -> dict[str, Any]:
    """One row: bench_train_step's module and timed steps, plus peak memory and MFU."""
    objective, overrides = VARIANTS[variant]
    overrides = [*args.model_overrides, *overrides, *extra]
    torch.manual_seed(0)
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    module = make_module(overrides, objective, args.tokenizer, args.device)
    if checkpointing:
        enable_activation_checkpointing(module.model.video)
        enable_activation_checkpointing(module.model.text)
    frames = module.model.video.num_frames
    seconds, first = step_seconds(module, batch, frames, 0, args.steps, args.device, args.device == "cuda")
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", [*OBJECTIVES[objective], *overrides])
    flops = model_flops(cfg, batch, TEXT_LEN)
    return {"variant": variant, "batch": batch, "seconds_per_step": seconds, "clips_per_second": batch / seconds,
            "first_step_seconds": first, "peak_memory_gib": peak_memory_gib(args.device),
            "tflops_per_step": flops / 1e12, "mfu": flops / seconds / (args.peak_tflops * 1e12)}  # fmt: skip


def row_or_error(args: argparse.Namespace, variant: str, batch: int) -> dict[str, Any]:
    """A row that failed (out of memory at batch 64, say) keeps its error; the smaller batches stay."""
    try:
        return time_step(args, variant, batch, [])
    except Exception as err:  # noqa: BLE001 - recorded in the row
        return {"variant": variant, "batch": batch, "error": f"{type(err).__name__}: {err}"}


def train_step(args: argparse.Namespace) -> list[dict]:
    return [row_or_error(args, variant, batch) for variant in VARIANTS for batch in args.batches]


def checkpointing_compile(args: argparse.Namespace) -> list[dict]:
    """The demo MILES step at the middle batch size: checkpointing trades compute for memory."""
    batch = args.batches[len(args.batches) // 2]
    rows = [{"setting": "activation checkpointing", **time_step(args, "MILES (demo recipe)", batch, [], True)}]
    if args.dry_run:  # inductor's compilation alone takes minutes on the CPU
        rows.append({"setting": "model.compile", "skipped": "compiling takes minutes on the CPU (dry run)"})
    else:
        rows.append(
            {"setting": "model.compile", **time_step(args, "MILES (demo recipe)", batch, ["model.compile=true"])}
        )
    return rows


def run_seconds(overrides: list[str]) -> float:
    start = time.perf_counter()
    build.run(load_config(ROOT / "experiments/pretrain/demo.yaml", overrides))
    return time.perf_counter() - start


def strategies(args: argparse.Namespace) -> list[dict]:
    """A few real steps per sharded strategy through build.run, then a resume from last.ckpt."""
    rows = []
    for strategy in ("fsdp", "fsdp2"):
        if strategy == "fsdp" and args.device != "cuda":
            rows.append({"strategy": strategy, "skipped": "FSDP1 (Lightning's FSDPStrategy) needs CUDA"})
            continue
        out = args.work / strategy
        common = tiny_overrides(args.corpus, out, steps=2) + [
            f"trainer.strategy={strategy}",
            f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
            f"trainer.precision={'bf16-mixed' if args.device == 'cuda' else '32-true'}",
            "data.test=[]",
            "version=version_0",
        ]
        first = run_seconds(common)
        ckpt = out / "demo_pretrain/version_0/checkpoints/last.ckpt"
        resumed = run_seconds([*common, f"resume={ckpt}", "trainer.max_steps=3"])
        rows.append({"strategy": strategy, "seconds": first, "resume_seconds": resumed, "checkpoint": ckpt.exists()})
    return rows


def precision(args: argparse.Namespace) -> dict[str, Any]:
    """The contrastive loss of one fixed batch in fp32 and in bf16 autocast, same weights."""
    torch.manual_seed(0)
    module = make_module(args.model_overrides, "contrastive", args.tokenizer, args.device)
    res, frames = module.model.video.patch_embed.img_size[0], module.model.video.num_frames
    gen = torch.Generator().manual_seed(0)
    data = {"webvid": {
        "video": torch.randn(4, frames, 3, res, res, generator=gen).to(args.device),
        "text": {"input_ids": torch.randint(5, 100, (4, TEXT_LEN), generator=gen).to(args.device),
                 "attention_mask": torch.ones(4, TEXT_LEN, dtype=torch.long, device=args.device)},
    }}  # fmt: skip
    losses = {}
    for name, enabled in (("fp32", False), ("bf16", True)):
        with torch.no_grad(), torch.autocast(args.device, torch.bfloat16, enabled=enabled):
            losses[name] = float(module.compute_losses(data)[0]["contrastive"])
    relative = abs(losses["bf16"] - losses["fp32"]) / abs(losses["fp32"])
    return {
        **losses,
        "relative_diff": relative,
        "tolerance": args.tolerance,
        "within_tolerance": relative <= args.tolerance,
    }


def data_wall(args: argparse.Namespace, step_rows: list[dict]) -> dict[str, Any]:
    """Loader clips/s on web-like clips per worker count; workers per GPU to feed the fastest step
    (its clips/s over the best clips/s of one worker process; 0 workers load in the main process)."""
    spec = ClipSpec(*args.clip_spec, keyint=250)
    paths = [encode(spec, args.work / "web_clips", seed) for seed in range(args.clips)]
    # each file read 8 times: enough batches to keep 16 workers busy without encoding 8x the clips
    dataset = ClipDataset(paths * 8, 4, read_video, args.input_res)
    rows = []
    for workers in args.workers:
        rate = clips_per_second(dataset, batch_size=4, workers=workers, repeats=1)
        rows.append({"workers": workers, "clips_per_second": rate, "per_worker": rate / workers if workers else None})
    step = max((r["clips_per_second"] for r in step_rows if "clips_per_second" in r), default=None)
    per_worker = max((r["per_worker"] for r in rows if r["per_worker"]), default=None)
    needed = math.ceil(step / per_worker) if step and per_worker else None
    return {"clip": spec.name, "rows": rows, "step_clips_per_second": step, "workers_per_gpu_needed": needed,
            "preprocess": "not measured: raw clips only"}  # fmt: skip


def guarded(results: dict, name: str, fail: str | None, fn: Callable[[], Any]) -> None:
    """Run one part; a failure becomes its error string so the other parts still run."""
    start = time.perf_counter()
    try:
        if name == fail:
            raise RuntimeError(f"--fail-part {name}")
        results[name] = {"ok": True, "result": fn()}
    except Exception as err:  # noqa: BLE001 - one part's failure must not stop the check
        traceback.print_exc()
        results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    results[name]["seconds"] = time.perf_counter() - start


def table(results: dict) -> str:
    """Every row of every part, one line each."""
    lines = ["| part | row |", "|---|---|"]
    for name, part in results.items():
        if name == "meta":
            continue
        if not part["ok"]:
            lines.append(f"| {name} | ERROR {part['error']} |")
            continue
        value = part["result"]
        rows = (
            value
            if isinstance(value, list)
            else value.get("rows", []) + [{k: v for k, v in value.items() if k != "rows"}]
        )
        for row in rows:
            cells = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="demo sizes on the CPU, 1-2 steps")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu_check.json")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 peak of the GPU (H200 here)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="|bf16 - fp32| / fp32 contrastive loss allowed")
    parser.add_argument("--fail-part", default=None, help="testing hook: this part raises")
    args = parser.parse_args()
    dry = args.dry_run
    args.device = "cpu" if dry else "cuda"
    args.model_overrides = [] if dry else [*vit_b_distilbert(224), "model.embed_dim=256"]
    args.input_res = 64 if dry else 224
    args.batches = [2] if dry else [16, 32, 64]
    args.steps = 1 if dry else 5
    args.workers = [0, 1] if dry else [4, 8, 16]
    args.clips = 1 if dry else 16
    args.clip_spec = (2, 25, 320, 240) if dry else (10, 30, 596, 336)
    return args


def main() -> None:
    """The JSON is rewritten after every part: a run cut off by a time limit keeps what it measured."""
    args = parse_args()
    results: dict[str, Any] = {"meta": {"dry_run": args.dry_run, "device": args.device,
        "peak_tflops": args.peak_tflops, "torch": torch.__version__, "machine": platform.node(),
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        args.work = Path(work)
        args.corpus = generate_demo_corpus(args.work / "demo", sizes=DemoSizes.tiny(), workers=1, progress=False)
        args.tokenizer = args.corpus / "tokenizer"
        parts = {
            "train_step": lambda: train_step(args),
            "checkpointing_compile": lambda: checkpointing_compile(args),
            "strategies": lambda: strategies(args),
            "precision": lambda: precision(args),
            "data_wall": lambda: data_wall(args, results["train_step"].get("result") or []),
        }
        for name, part in parts.items():
            guarded(results, name, args.fail_part, part)
            args.out.write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
