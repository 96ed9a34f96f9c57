"""The recall table printed at the end of a run, with the protocol each dataset was measured under."""

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
    for stage, name, res in _datasets(results):
        for direction in ("t2v", "v2t", "t2v_dsl"):
            if direction in res:
                values = [f"{res[direction][m]:.1f}" for m in _METRICS]
                table.add_row(stage, name, direction, *values, str(res["num_videos"]), str(res["skipped"]))
    return table


def protocol_line(stage: str, name: str, res: dict[str, Any]) -> str:
    """One dataset's measuring conditions, to read beside its numbers: a paper's numbers compare
    with these only if measured on the same split, captions, frames, pipeline and tie rules."""
    p = res["protocol"]
    files = ", ".join(p["split_files"]) or "-"
    ties = p["tie_break"]
    return (
        f"{stage}/{name}: eval_protocol={p['eval_protocol']}; split {p['split']} ({files}); "
        f"{res['num_videos']} videos, {res['num_captions']} captions ({p['captions_per_video']:g} a video); "
        f"{p['frames']} frames ({p['frame_sampling']} sampling, {p['transform']} transform); "
        f"captions <= {p['caption_max_tokens']} tokens; unreadable videos: {p['unreadable']} "
        f"({res['skipped']} skipped, {p['blank_videos']} black); "
        f"ties t2v {ties['t2v']}, v2t {ties['v2t']}; dual softmax {'on' if p['dual_softmax'] else 'off'}; "
        f"precision {p['precision']}"
    )


def _datasets(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (stage, name, res)
        for stage in ("val", "test")
        for name, res in results.get(stage, {}).items()
        if isinstance(res, dict)
    ]


def print_report(
    results: dict[str, Any], skipped_train: dict[str, int], run_dir: Path, speed: dict[str, float] | None = None
) -> None:
    console = Console(width=max(Console().width, 120))
    console.print(recall_table(results))
    for stage, name, res in _datasets(results):
        console.print(protocol_line(stage, name, res), soft_wrap=True)
    if speed:
        console.print(
            f"training speed: {speed['clips_per_sec']:.1f} clips/s (all ranks), "
            f"{100 * speed['data_wait']:.0f}% of the step spent waiting for data"
        )
    if skipped_train:
        console.print("skipped training samples: " + ", ".join(f"{k}={v}" for k, v in sorted(skipped_train.items())))
    console.print(f"run folder: {run_dir}  (metrics.json, config.yaml, checkpoints/, TensorBoard events)")
