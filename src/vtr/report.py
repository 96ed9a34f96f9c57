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


def gallery_table(results: dict[str, Any]) -> Table | None:
    """Sets scored as disjoint galleries: each R@K's mean and spread (sd) over the galleries."""
    rows = [(stage, name, res["galleries"]) for stage, name, res in _datasets(results) if "galleries" in res]
    if not rows:
        return None
    table = Table(title="Disjoint galleries (R@K in %: mean ± sd over galleries)")
    for column in ("split", "dataset", "direction", "R1", "R5", "R10", "R-sum", "galleries"):
        table.add_column(column, justify="left" if column in ("split", "dataset", "direction") else "right")
    for stage, name, galleries in rows:
        for direction in ("t2v", "v2t"):
            g = galleries[direction]
            cells = [f"{g[m]['mean']:.1f} ± {g[m]['std']:.1f}" for m in ("R1", "R5", "R10")]
            rsum = sum(g[m]["mean"] for m in ("R1", "R5", "R10"))
            table.add_row(stage, name, direction, *cells, f"{rsum:.1f}", f"{galleries['count']} x {galleries['size']}")
    return table


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def probe_tables(probes: dict[str, Any]) -> list[Table]:
    """The demo probes (``vtr.probes``): patch probe, grounding probe, per-attribute errors."""
    patch = Table(title=f"Patch probe (linear, held-out clips; middle = block {probes['patch']['middle_block']})")
    for column in ("layer", "target", "accuracy", "balanced", "chance", "patches fit / scored"):
        patch.add_column(column, justify="left" if column in ("layer", "target") else "right")
    for layer in ("final", "middle"):
        for target, r in probes["patch"][layer].items():
            counts = f"{r['fit_patches']} / {r['score_patches']}"
            readings = [_share(r[key]) for key in ("accuracy", "balanced_accuracy", "chance")]
            patch.add_row(layer, target, *readings, counts)
    grounding = Table(title="Grounding probe (best patch on the named shape)")
    for column in ("phrase", "pointing accuracy", "chance", "on a shape", "chance among shapes", "queries"):
        grounding.add_column(column, justify="left" if column == "phrase" else "right")
    for attribute, r in probes["grounding"].items():
        phrase = {"colour": '"a red shape"', "kind": '"a triangle"'}.get(attribute, attribute)
        readings = [_share(r[key]) for key in ("accuracy", "chance", "on_a_shape", "chance_among_shapes")]
        grounding.add_row(f"{attribute} ({phrase})", *readings, str(r["queries"]))
    tables = [patch, grounding]
    if probes["errors"]:
        attributes = list(next(iter(probes["errors"].values()))["differs"])
        errors = Table(title="Failed t2v queries: attribute differing from the top-ranked wrong video (only it)")
        for column in ("dataset", "failed", *attributes):
            errors.add_column(column, justify="left" if column == "dataset" else "right")
        for name, r in probes["errors"].items():
            cells = [f"{r['differs'][a]} ({r['only'][a]})" for a in attributes]
            errors.add_row(name, f"{r['failures']} / {r['queries']}", *cells)
        tables.append(errors)
    return tables


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
    galleries = gallery_table(results)
    if galleries is not None:
        console.print(galleries)
    for table in probe_tables(results["probes"]) if "probes" in results else ():
        console.print(table)
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
