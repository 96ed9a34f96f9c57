"""The recall table printed at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

_METRICS = ("R1", "R5", "R10", "MedR", "MeanR")


def recall_table(results: dict[str, Any]) -> Table:
    table = Table(title="Retrieval (R@K in %, ranks 1-based)")
    for column in ("split", "dataset", "direction", *_METRICS, "videos", "skipped"):
        table.add_column(column, justify="left" if column in ("split", "dataset", "direction") else "right")
    for stage in ("val", "test"):
        for name, res in results.get(stage, {}).items():
            if not isinstance(res, dict):
                continue
            for direction in ("t2v", "v2t", "t2v_dsl"):
                if direction in res:
                    values = [f"{res[direction][m]:.1f}" for m in _METRICS]
                    table.add_row(stage, name, direction, *values, str(res["num_videos"]), str(res["skipped"]))
    return table


def print_report(
    results: dict[str, Any], skipped_train: dict[str, int], run_dir: Path, speed: dict[str, float] | None = None
) -> None:
    console = Console(width=max(Console().width, 120))
    console.print(recall_table(results))
    if speed:
        console.print(
            f"training speed: {speed['clips_per_sec']:.1f} clips/s (all ranks), "
            f"{100 * speed['data_wait']:.0f}% of the step spent waiting for data"
        )
    if skipped_train:
        console.print("skipped training samples: " + ", ".join(f"{k}={v}" for k, v in sorted(skipped_train.items())))
    console.print(f"run folder: {run_dir}  (metrics.json, config.yaml, checkpoints/, TensorBoard events)")
