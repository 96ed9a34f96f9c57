"""The patch probe: can a linear classifier read a shape's kind and colour off one patch token?

This is MILES's claim measured directly: masked visual modeling should make local features more
discriminative. The probe is fitted on the shape patches of one set of held-out clips and scored
on those of another, for the final tokens and a middle block's; its balanced accuracy on kind is
the primary reading (colour is nearly free: one patch's mean pixel tells it).
"""

from __future__ import annotations

from typing import Any

from data_modules.demo.world import COLOURS, SHAPES

from .clips import BACKGROUND, ProbeClips
from .linear import probe

TARGETS = {"kind": len(SHAPES), "colour": len(COLOURS)}


def patch_probe(fit: ProbeClips, fit_tokens: dict, score: ProbeClips, score_tokens: dict) -> dict[str, Any]:
    """{layer: {target: probe readings}} for ``final`` and ``middle``, on shape patches only."""
    out: dict[str, Any] = {}
    for layer in ("final", "middle"):
        out[layer] = {}
        for target, classes in TARGETS.items():
            fit_y, score_y = getattr(fit, target).flatten(), getattr(score, target).flatten()
            fit_on, score_on = fit_y != BACKGROUND, score_y != BACKGROUND
            fit_x, score_x = fit_tokens[layer].flatten(0, 1), score_tokens[layer].flatten(0, 1)
            out[layer][target] = probe(fit_x[fit_on], fit_y[fit_on], score_x[score_on], score_y[score_on], classes)
    return out
