"""Run recipes over several seeds and tabulate zero-shot / test recall as mean ± std.

Each run is a normal ``python -m vtr`` run in its own folder under ``checkpoints/ablation_*``;
the table reads their ``metrics.json`` (and ``wall.json``, the run's wall-clock seconds).
Finished runs are not repeated, so an interrupted ablation continues where it stopped. Every
test set a recipe evaluates is tabulated (the demo recipes test ``msrvtt``, ``msrvtt_1k``, ``single_attribute`` and
``binding``).

    python benchmarks/ablation.py --task pretrain --recipes experiments/pretrain/demo_contrastive.yaml \
        experiments/pretrain/demo.yaml --seeds 100 101 102 --name mvm_confirm
    python benchmarks/ablation.py --task finetune --recipes experiments/finetune/msrvtt.yaml \
        experiments/finetune/msrvtt_mascot.yaml --seeds 0 1 2 --name mascot --args init_from=...ckpt
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("R1", "R5", "R10")


def run_one(task: str, recipe: Path, seed: int, experiment: str, extra: list[str]) -> tuple[dict, float]:
    """metrics.json (its ``val`` and ``test`` parts) and wall-clock seconds of one run, running it
    unless its folder holds them."""
    run_dir = ROOT / "checkpoints" / experiment / f"seed{seed}"
    metrics, wall = run_dir / "metrics.json", run_dir / "wall.json"
    if not (metrics.is_file() and "test" in json.loads(metrics.read_text()) and wall.is_file()):
        cmd = [sys.executable, "-m", "vtr", task, "-c", str(recipe), f"seed={seed}", f"experiment={experiment}",
               f"version=seed{seed}", "trainer.enable_progress_bar=false", *extra]  # fmt: skip
        print("running:", " ".join(cmd[3:]), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall.write_text(json.dumps({"seconds": time.perf_counter() - start}))
    return json.loads(metrics.read_text()), json.loads(wall.read_text())["seconds"]


def summarise(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def primary_metrics(runs: list[dict]) -> dict[str, list[float]]:
    """Per run, the readings fixed before comparing arms (issue 24's protocol): the patch probe's
    balanced accuracy on kind (final tokens and the middle block's) and the t2v R-sum averaged over
    the disjoint galleries of each test set scored so; only where every run has them."""
    out: dict[str, list[float]] = {}
    if all("probes" in m for m in runs):
        for layer in ("final", "middle"):
            out[f"probe_kind_bacc_{layer}"] = [
                100 * m["probes"]["patch"][layer]["kind"]["balanced_accuracy"] for m in runs
            ]
    for name, res in runs[0].get("test", {}).items():
        if isinstance(res, dict) and "galleries" in res and all("galleries" in m["test"][name] for m in runs):
            sums = [sum(m["test"][name]["galleries"]["t2v"][k]["mean"] for k in METRICS) for m in runs]
            out[f"{name}_galleries_t2v_Rsum"] = sums
    return out


def probe_readings(runs: list[dict]) -> dict[str, list[float]]:
    """Per run, the probes' other readings (in %, not primary): the patch probe's balanced accuracy
    on colour and the grounding probe's pointing accuracy for kind and colour phrases."""
    if not all("probes" in m for m in runs):
        return {}
    out = {
        f"probe_colour_bacc_{layer}": [100 * m["probes"]["patch"][layer]["colour"]["balanced_accuracy"] for m in runs]
        for layer in ("final", "middle")
    }
    for attribute in ("kind", "colour"):
        out[f"grounding_{attribute}_acc"] = [100 * m["probes"]["grounding"][attribute]["accuracy"] for m in runs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["pretrain", "finetune"], required=True)
    parser.add_argument("--recipes", type=Path, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--name", required=True, help="names the run folders and the JSON file")
    parser.add_argument("--args", nargs="*", default=[], help="overrides for every run")
    args = parser.parse_args()

    rows = []
    for recipe in args.recipes:
        experiment = f"ablation_{args.name}_{recipe.stem}"
        runs = [run_one(args.task, recipe, seed, experiment, args.args) for seed in args.seeds]
        row = {"recipe": recipe.stem, "seeds": args.seeds, "wall_seconds": [wall for _, wall in runs]}
        for split in ("val", "test"):  # val: the last validation, which chooses; test: reported
            results = [metrics.get(split, {}) for metrics, _ in runs]
            for dataset in [name for name, res in results[0].items() if isinstance(res, dict) and "t2v" in res]:
                key = dataset if split == "test" else f"val:{dataset}"
                for direction in ("t2v", "v2t"):
                    for metric in METRICS:
                        row[f"{key}/{direction}_{metric}"] = [res[dataset][direction][metric] for res in results]
                    sums = [sum(res[dataset][direction][m] for m in METRICS) for res in results]
                    row[f"{key}/{direction}_Rsum"] = sums
        row.update(primary_metrics([metrics for metrics, _ in runs]))
        row.update(probe_readings([metrics for metrics, _ in runs]))
        rows.append(row)

    datasets = sorted({key.split("/")[0] for row in rows for key in row if "/" in key})
    for dataset in datasets:
        header = "t2v R@1 | R@5 | R@10 | R-sum | v2t R@1 | v2t R-sum | wall s"
        split = f"{dataset[4:]} validation" if dataset.startswith("val:") else f"{dataset} test"
        print(f"\n| recipe ({split}, seeds {args.seeds}) | {header} |")
        print("|---|---|---|---|---|---|---|---|")
        for row in rows:
            keys = [f"{dataset}/t2v_{k}" for k in (*METRICS, "Rsum")] + [f"{dataset}/v2t_R1", f"{dataset}/v2t_Rsum"]
            cells = [summarise(row[k]) for k in keys] + [f"{statistics.mean(row['wall_seconds']):.0f}"]
            print(f"| {row['recipe']} | " + " | ".join(cells) + " |")
    primary = [k for k in rows[0] if k.startswith("probe_kind") or k.endswith("_galleries_t2v_Rsum")]
    if primary:
        print(
            f"\n| recipe (primary metrics, seeds {args.seeds}; probe balanced accuracy in %) | "
            + " | ".join(primary)
            + " |"
        )
        print("|---|" + "---|" * len(primary))
        for row in rows:
            print(f"| {row['recipe']} | " + " | ".join(summarise(row[k]) for k in primary if k in row) + " |")
    out = ROOT / "benchmarks/results" / f"ablation_{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"task": args.task, "overrides": args.args, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
