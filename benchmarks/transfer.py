"""Zero-shot vs fine-tuned retrieval on every downstream dataset, from one pre-trained checkpoint.

For MSR-VTT, LSMDC, ActivityNet and DiDeMo: ``vtr evaluate`` (zero-shot) and ``vtr finetune``
(then test) with the dataset's recipe; for HMDB51 and UCF101: zero-shot action recognition
(accuracy = v2t R@1 / R@5). Prints a table with the evaluation time of each test set and writes
``benchmarks/results/transfer.json``.

    python benchmarks/transfer.py --ckpt checkpoints/demo_pretrain/version_0/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ablation import ROOT, run_one

RETRIEVAL = ("msrvtt", "lsmdc", "activitynet", "didemo")
ACTION = ("hmdb51", "ucf101")


def cells(res: dict, direction: str) -> str:
    return " | ".join(f"{res[direction][k]:.1f}" for k in ("R1", "R5", "R10"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--args", nargs="*", default=[], help="overrides for every run")
    args = parser.parse_args()
    extra = [f"init_from={args.ckpt.resolve()}", *args.args]

    rows = []
    for name in RETRIEVAL + ACTION:
        recipe = ROOT / "experiments/finetune" / f"{name}.yaml"
        zero = run_one("evaluate", recipe, args.seed, f"transfer_{name}_zeroshot", extra)[name]
        tuned = (
            run_one("finetune", recipe, args.seed, f"transfer_{name}_finetuned", extra)[name]
            if name in RETRIEVAL
            else None
        )
        rows.append({"dataset": name, "zero_shot": zero, "fine_tuned": tuned})

    print("\n| dataset | test videos | zero-shot R@1 | R@5 | R@10 | fine-tuned R@1 | R@5 | R@10 | eval s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        zero, tuned = row["zero_shot"], row["fine_tuned"]
        if tuned is None:  # a classification set: zero-shot only, scored video-to-text
            label, zero_cells, tuned_cells, seconds = "accuracy: v2t", cells(zero, "v2t"), "- | - | -", zero["seconds"]
        else:
            label, zero_cells, tuned_cells, seconds = "t2v", cells(zero, "t2v"), cells(tuned, "t2v"), tuned["seconds"]
        print(f"| {row['dataset']} ({label}) | {zero['num_videos']} | {zero_cells} | {tuned_cells} | {seconds:.1f} |")
    out = ROOT / "benchmarks/results/transfer.json"
    out.write_text(json.dumps({"checkpoint": str(args.ckpt), "overrides": args.args, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
