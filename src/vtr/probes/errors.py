"""Per-attribute error analysis: what separates a failed text-to-video query's clip from the clip
ranked first in its place.

For each caption whose best-scoring video is not one of its own, the attributes (kind, colour,
count, size, motion, direction: ``truth.scene_attributes``) of its video and of that top-ranked
wrong video are compared. The table counts, per attribute, the failures where it differs and
those where it is the only difference: where the model confuses captions, and on what. Direction
is compared between two moves only (a move against a grow is a difference of motion).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from data_modules.demo.truth import ATTRIBUTES


def attribute_errors(
    sim: Tensor, relevant: Tensor, caption_videos: list[str], video_ids: list[str], attributes: dict[str, dict]
) -> dict[str, Any]:
    """``sim`` / ``relevant`` (captions x videos); ``caption_videos`` the video each caption
    describes; ``attributes`` per video id."""
    top = sim.argmax(1)
    failed = (~relevant[torch.arange(len(top)), top]).nonzero().flatten().tolist()
    differs = dict.fromkeys(ATTRIBUTES, 0)
    only = dict.fromkeys(ATTRIBUTES, 0)
    for q in failed:
        mine, theirs = attributes[caption_videos[q]], attributes[video_ids[int(top[q])]]
        both_move = mine["motion"] == theirs["motion"] == "move"
        changed = [a for a in ATTRIBUTES if mine[a] != theirs[a] and (a != "direction" or both_move)]
        for a in changed:
            differs[a] += 1
        if len(changed) == 1:
            only[changed[0]] += 1
    return {"queries": len(top), "failures": len(failed), "differs": differs, "only": only}
