"""The binding test split: groups of videos that only one local detail tells apart.

Each group is four videos of one planned scene (same canvas, positions, timing and motion, drawn
from the same random state) that differ in one attribute of one shape: the colour of a shape that
stays still, its kind, or which of four shapes performs the motion. A caption names every shape
with its colour, kind and what it does, in the same words across the group, so the captions of a
group differ only in the words of that detail. Retrieving within a group thus needs the detail,
not the scene. What it measures is attribute binding: which colour and kind go with which of
several different shapes, and which of them moves. No training caption describes more than one
look, so a model trained on the corpus has never been asked to bind (``single_attribute.py`` is
the in-distribution counterpart).

Motions are the in-place ones (grow, shrink, rotate), so a moving shape never runs into a still
one; the shape that rotates is never a circle, whose rotation would not show. Written in the
MSR-VTT layout (test list and annotations only) and read by the MSR-VTT reader. Its captions are
left out of the tokenizer's word counts, so that adding this split changes no other file; every
word in them is a grammar word, which the tokenizer knows whole anyway.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from data_modules.demo.corpus import Corpus, csv_text, json_text
from data_modules.demo.grammar import MOTION_PHRASES, SIZE_WORDS
from data_modules.demo.scenes import plan_scene, single_frames
from data_modules.demo.world import COLOURS, SHAPES, Look, Part, Scene, keyed_rng, sample_canvas

if TYPE_CHECKING:
    from data_modules.demo import DemoSizes

GROUP_SIZE = 4
DETAILS = ("colour", "shape", "mover")  # what the videos of a group differ in, by turns
IN_PLACE_MOTIONS = ("grow", "shrink", "rotate")


def binding_group(seed: int, group: int) -> tuple[str, list[Scene], list[str]]:
    """The detail a group varies, and its four scenes and captions."""
    rng = keyed_rng(seed, "finegrained", "test", group)  # its former name: the videos it had then
    detail = DETAILS[group % len(DETAILS)]
    count = GROUP_SIZE if detail == "mover" else 3
    motion = rng.choice(IN_PLACE_MOTIONS)
    canvas = sample_canvas(rng)
    # Planned as `count` stars, the kind with the largest extent, so any kind fits where one stands.
    base = plan_scene(rng, Look(count, "small", "red", "star"), canvas, single_frames(rng, canvas), motion)
    turnable = [s for s in SHAPES if s != "circle"] if motion == "rotate" else list(SHAPES)
    shapes = rng.sample(turnable if detail == "mover" else SHAPES, count)
    colours = rng.sample(tuple(COLOURS), count)
    if detail == "mover":
        movers = list(range(count))
    else:
        mover = rng.choice([i for i, shape in enumerate(shapes) if shape in turnable])
        movers = [mover] * GROUP_SIZE
        target = rng.choice([i for i in range(count) if i != mover])
        pool = SHAPES if detail == "shape" else tuple(COLOURS)
        taken = shapes if detail == "shape" else colours
        values = rng.sample([v for v in pool if v == taken[target] or v not in taken], GROUP_SIZE)
    size_word = rng.choice(SIZE_WORDS["small"])
    moving, still = rng.choice(MOTION_PHRASES[motion])[0], rng.choice(MOTION_PHRASES["stay_still"])[0]
    scenes, captions = [], []
    for k in range(GROUP_SIZE):
        kinds, paints = list(shapes), list(colours)
        if detail == "shape":
            kinds[target] = values[k]
        elif detail == "colour":
            paints[target] = values[k]
        parts = tuple(Part(kinds[i], paints[i], i == movers[k]) for i in range(count))
        scenes.append(dataclasses.replace(base, parts=parts))
        phrases = [f"a {size_word} {p.colour} {p.shape} {moving if p.moves else still}" for p in parts]
        captions.append(f"on a {canvas.background} background, " + ", ".join(phrases))
    return detail, scenes, captions


def plan_binding(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """``binding/`` in the MSR-VTT layout: ``MSRVTT_data.json`` (one caption a video; each
    video also records its ``group`` and the group's ``detail``), ``MSRVTT_JSFUSION_test.csv`` and
    ``videos/all/video{N}.mp4``; the videos of group g are ``video{4g}`` to ``video{4g+3}``."""
    videos, sentences, test_rows = [], [], []
    for group in range(sizes.binding_groups):
        detail, scenes, captions = binding_group(seed, group)
        for scene, caption in zip(scenes, captions):
            n = len(videos)
            videos.append({"video_id": f"video{n}", "group": group, "detail": detail, "split": "test", "id": n,
                           "start time": 0.0, "end time": round(scene.duration, 2)})  # fmt: skip
            sentences.append({"caption": caption, "video_id": f"video{n}", "sen_id": n})
            test_rows.append([f"ret{n}", f"msr{n}", f"video{n}", caption])
            c.media(f"binding/videos/all/video{n}.mp4", "mp4", scene)
    info = {"contributor": "vtr demo corpus", "description": "binding groups, MSR-VTT layout", "version": "1.0"}
    c.text("binding/MSRVTT_data.json", json_text({"info": info, "videos": videos, "sentences": sentences}))
    c.text("binding/MSRVTT_JSFUSION_test.csv", csv_text(["key", "vid_key", "video_id", "sentence"], test_rows))
