"""A TensorBoard custom-scalars layout: the charts that matter, grouped, on one screen.

TensorBoard's scalar tab shows one card per tag, sorted by name, so the first cards a user sees
are whatever sorts first (the zero ``data/skipped_*`` counters). The layout written here (the
"Custom Scalars" tab) puts every loss term on one chart, recall at 1/5/10 of each evaluated
dataset and direction on one chart each, and the run's speed on one chart.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger


def scalars_layout(val: list[str], test: list[str]) -> dict[str, dict[str, list[Any]]]:
    """TensorBoard's layout dict: category -> chart title -> ["Multiline", [tag regexes]]."""
    layout: dict[str, dict[str, list[Any]]] = {
        "training": {
            "loss terms": ["Multiline", [r"train/loss(_.*)?$"]],
            "speed (clips/s)": ["Multiline", [r"perf/clips_per_sec"]],
            "data wait (fraction of the step)": ["Multiline", [r"perf/data_wait"]],
        }
    }
    for stage, names in (("val", val), ("test", test)):
        for name in names:
            charts = layout.setdefault(f"{stage} retrieval", {})
            for direction in ("t2v", "v2t"):
                charts[f"{stage} {name} {direction} R@1/5/10"] = [
                    "Multiline",
                    [rf"{stage}/{name}/{direction}_R(1|5|10)$"],
                ]
    return layout


class ScalarsLayout(L.Callback):
    """Writes the layout once, at the start of fitting or testing, where the logger is TensorBoard."""

    def __init__(self, val: list[str], test: list[str]) -> None:
        self.layout = scalars_layout(list(val), list(test))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_custom_scalars(self.layout)
