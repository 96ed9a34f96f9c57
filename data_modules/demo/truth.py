"""Ground truth the demo world gives for free: held-out clips made for probes, and the scene
attributes behind the videos of the test splits.

Why: a probe of a model's features needs labels that come from the scene, not from a model.
Every clip here is planned from the corpus seed alone (keyed as ``probe/...``, a key no dataset
uses, so no clip is one the model trained on) and is the same on every run and machine; what
covers each of its pixels is ``render.draw_coverage``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from data_modules.demo.corpus import DONE_FILE, read_json
from data_modules.demo.scenes import plan_scene, single_frames, single_scene
from data_modules.demo.single_attribute import GROUP_SLOTS, single_attribute_group
from data_modules.demo.world import COLOURS, SHAPES, TRANSLATIONS, Look, Part, Scene, keyed_rng, sample_canvas

ATTRIBUTES = ("kind", "colour", "count", "size", "motion", "direction")  # what a caption says of a clip


def corpus_seed(root: str | Path) -> int | None:
    """The seed a finished demo corpus under ``root`` was generated with; None if it is not one."""
    done = read_json(Path(root) / DONE_FILE)
    return done.get("seed") if isinstance(done, dict) else None


def probe_scene(seed: int, split: str, index: int) -> Scene:
    """A held-out clip like the training ones: one to three shapes of one look, one motion."""
    return single_scene(seed, "probe", split, index)


def grounding_scene(seed: int, index: int) -> Scene:
    """Two or three still shapes, no two of the same kind or colour, so that a phrase naming one
    kind or one colour points at exactly one shape."""
    rng = keyed_rng(seed, "probe", "grounding", index)
    count = rng.choice((2, 3))
    canvas = sample_canvas(rng)
    # Planned as stars, the kind with the largest extent, so any kind fits where one stands.
    base = plan_scene(rng, Look(count, "large", "red", "star"), canvas, single_frames(rng, canvas), "stay_still")
    parts = tuple(Part(k, c, False) for k, c in zip(rng.sample(SHAPES, count), rng.sample(tuple(COLOURS), count)))
    return dataclasses.replace(base, parts=parts)


def scene_attributes(scene: Scene) -> dict[str, str]:
    """What a caption of a one-look, one-motion clip says: kind, colour, count, size, and its
    motion, where the four moves count as one motion (``move``) with a direction."""
    look, motion = scene.look, scene.motions[0]
    moves = motion in TRANSLATIONS
    return {
        "kind": look.shape,
        "colour": look.colour,
        "count": str(look.count),
        "size": look.size,
        "motion": "move" if moves else motion,
        "direction": motion.removeprefix("move_") if moves else "-",
    }


def video_attributes(seed: int, dataset: str, video_ids: list[str]) -> dict[str, dict[str, str]] | None:
    """Each video's ``scene_attributes`` for the test sets whose videos show one look
    (``msrvtt``, ``msrvtt_1k``, ``single_attribute``); None for any other dataset."""
    if dataset not in ("msrvtt", "msrvtt_1k", "single_attribute"):
        return None
    numbers = {vid: int(re.fullmatch(r"video(\d+)", vid).group(1)) for vid in video_ids}  # type: ignore[union-attr]
    if dataset in ("msrvtt", "msrvtt_1k"):
        return {vid: scene_attributes(single_scene(seed, "msrvtt", "all", n)) for vid, n in numbers.items()}
    groups: dict[int, list[Scene]] = {}
    out = {}
    for vid, n in numbers.items():
        group, member = divmod(n, GROUP_SLOTS)
        if group not in groups:
            groups[group] = single_attribute_group(seed, group)[1]
        out[vid] = scene_attributes(groups[group][member])
    return out
