"""Run recipes over several seeds and tabulate test recall as mean and spread.

Each run is a normal ``python -m vtr`` run in its own folder under ``checkpoints/ablation_*``;
the table reads their ``metrics.json``. Finished runs are not repeated, so an interrupted
ablation continues where it stopped.

    python benchmarks/ablation.py --task pretrain --recipes experiments/pretrain/demo_contrastive.yaml \
        experiments/pretrain/demo.yaml --seeds 0 1 2 --name mvm
    python benchmarks/ablation.py --task finetune --recipes experiments/finetune/msrvtt.yaml \
        experiments/finetune/msrvtt_mascot.yaml --seeds 0 1 2 --name mascot --args init_from=...ckpt
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(task: str, recipe: Path, seed: int, experiment: str, extra: list[str]) -> dict:
    """Test metrics of one run, running it unless its folder already holds them."""
    run_dir = ROOT / "checkpoints" / experiment / f"seed{seed}"
    metrics = run_dir / "metrics.json"
    if not (metrics.is_file() and "test" in json.loads(metrics.read_text())):
        cmd = [sys.executable, "-m", "vtr", task, "-c", str(recipe), f"seed={seed}", f"experiment={experiment}",
               f"version=seed{seed}", "trainer.enable_progress_bar=false", *extra]  # fmt: skip
        print("running:", " ".join(cmd[3:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return json.loads(metrics.read_text())["test"]


def summarise(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["pretrain", "finetune"], required=True)
    parser.add_argument("--recipes", type=Path, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--name", required=True, help="names the run folders and the JSON file")
    parser.add_argument("--args", nargs="*", default=[], help="overrides for every run")
    parser.add_argument("--dataset", default="msrvtt", help="test set to tabulate")
    args = parser.parse_args()

    rows = []
    for recipe in args.recipes:
        experiment = f"ablation_{args.name}_{recipe.stem}"
        results = [run_one(args.task, recipe, seed, experiment, args.args)[args.dataset] for seed in args.seeds]
        row = {"recipe": recipe.stem, "seeds": args.seeds}
        for direction in ("t2v", "v2t"):
            for metric in ("R1", "R5", "R10"):
                row[f"{direction}_{metric}"] = [r[direction][metric] for r in results]
        rows.append(row)

    recipe = f"recipe ({args.dataset} test, {len(args.seeds)} seeds)"
    print(f"\n| {recipe} | t2v R@1 | t2v R@5 | t2v R@10 | v2t R@1 | v2t R@5 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        cells = [summarise(row[k]) for k in ("t2v_R1", "t2v_R5", "t2v_R10", "v2t_R1", "v2t_R5")]
        print(f"| {row['recipe']} | " + " | ".join(cells) + " |")
    out = ROOT / "benchmarks/results" / f"ablation_{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"task": args.task, "dataset": args.dataset, "overrides": args.args, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
