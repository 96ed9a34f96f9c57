"""The grounding probe: does the patch most similar to an attribute phrase lie on the shape that
has the attribute?

Clips show two or three still shapes, no two of one kind or one colour (``truth.grounding_scene``),
so "a red shape" and "a triangle" each name exactly one of them. Each patch's final token goes
through the video projection into the joint space; pointing accuracy is the fraction of
(clip, phrase) queries whose most similar patch, over all frames, is a patch of the named shape.
Chance is what a patch drawn at random would score: the named shape's share of the patches. A
model whose shape patches merely stand out from the background points at some shape whatever the
phrase, so beside it: how often the best patch lies on any shape, and the chance of a shape patch
drawn at random being the named shape's (the named shape's share of the shape patches).
Colour phrases say "shape", a word no training caption uses (the demo tokenizer spells it out in
characters), because no caption names a colour without a kind.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from data_modules.demo.world import COLOURS, SHAPES

from .clips import ProbeClips

PHRASES = {
    "colour": (tuple(COLOURS), "a {} shape"),
    "kind": (SHAPES, "a {}"),
}


def queries(clips: ProbeClips) -> dict[str, list[tuple[int, int, str]]]:
    """Per attribute, (clip, value index, phrase) for every value a shape of the clip has."""
    out: dict[str, list[tuple[int, int, str]]] = {}
    for attribute, (values, template) in PHRASES.items():
        labels = getattr(clips, attribute)
        out[attribute] = [
            (b, int(v), template.format(values[int(v)]))
            for b in range(len(labels))
            for v in labels[b].unique()
            if v >= 0
        ]
    return out


def pointing(joint: Tensor, labels: Tensor, picks: list[tuple[int, int]], text: Tensor) -> dict[str, float | None]:
    """``joint`` (B, P, E) unit patch embeddings, ``labels`` (B, P), ``picks`` (clip, value) per query
    with its text embedding in ``text`` (Q, E): accuracy of the best patch and its chance level
    (None without queries)."""
    if not picks:
        return dict.fromkeys(("accuracy", "chance", "on_a_shape", "chance_among_shapes")) | {"queries": 0}
    clip = torch.tensor([b for b, _ in picks])
    value = torch.tensor([v for _, v in picks])
    sims = torch.einsum("qpe,qe->qp", joint[clip].double(), text.double())
    best = sims.argmax(1)
    own = labels[clip] == value[:, None]  # (Q, P): patches of the named shape
    shape = labels[clip] >= 0  # patches of any shape
    rows = torch.arange(len(picks))
    return {
        "accuracy": float(own[rows, best].double().mean()),
        "chance": float(own.double().mean(1).mean()),
        "on_a_shape": float(shape[rows, best].double().mean()),
        "chance_among_shapes": float((own.sum(1) / shape.sum(1)).double().mean()),
        "queries": len(picks),
    }


def grounding_probe(clips: ProbeClips, joint: Tensor, embed_text) -> dict[str, Any]:
    """{attribute: pointing readings}; ``embed_text`` maps a list of phrases to unit embeddings."""
    out = {}
    for attribute, found in queries(clips).items():
        text = embed_text([phrase for _, _, phrase in found])
        out[attribute] = pointing(joint, getattr(clips, attribute), [(b, v) for b, v, _ in found], text)
    return out
