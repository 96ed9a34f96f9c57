"""The single_attribute test split: groups of videos that differ in one attribute the training
captions describe.

Why: the binding split (``binding.py``) asks which of several different shapes has which colour,
which no training caption ever says, so a model trained on the corpus sits near chance there
whatever it learnt. Here a group's videos show one look and one motion, as every training clip
does, and differ in one of kind, colour, count, size, motion (among the in-place ones) or
direction (of a move): the groups take these in turn. A group's videos share the canvas, the
timing and the random stream the layout is drawn from, and their captions share the template and
every choice of synonym, so that they differ in the words of that attribute alone. Retrieving
within a group therefore needs exactly that attribute. Videos of group g are ``video{4g+k}``;
groups of two or three values (size, count) leave their other numbers unused.
"""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING

from data_modules.demo.corpus import Corpus, csv_text, json_text
from data_modules.demo.grammar import CLIP_TEMPLATES, COUNT_WORDS, MOTION_PHRASES, SIZE_WORDS, noun
from data_modules.demo.scenes import plan_scene, single_frames
from data_modules.demo.world import COLOURS, SHAPES, SIZES, TRANSLATIONS, Look, Scene, keyed_rng, sample_canvas

if TYPE_CHECKING:
    from data_modules.demo import DemoSizes

GROUP_ATTRIBUTES = ("kind", "colour", "count", "size", "motion", "direction")
IN_PLACE = ("grow", "shrink", "rotate", "stay_still")
GROUP_SLOTS = 4  # video numbers a group owns


def _variants(rng: random.Random, attribute: str) -> list[tuple[Look, str]]:
    """The (look, motion) of each video of a group: one look and motion, ``attribute`` varied."""
    shape = rng.choice([s for s in SHAPES if s != "circle"] if attribute == "motion" else SHAPES)
    look = Look(rng.choice((1, 2, 3)), rng.choice(tuple(SIZES)), rng.choice(tuple(COLOURS)), shape)
    motions = tuple(TRANSLATIONS) if attribute == "direction" else IN_PLACE
    motion = rng.choice([m for m in motions if not (m == "rotate" and shape == "circle")])
    if attribute == "kind":
        kinds = [s for s in SHAPES if not (motion == "rotate" and s == "circle")]
        return [(dataclasses.replace(look, shape=s), motion) for s in rng.sample(kinds, 4)]
    if attribute == "colour":
        return [(dataclasses.replace(look, colour=c), motion) for c in rng.sample(tuple(COLOURS), 4)]
    if attribute == "count":
        return [(dataclasses.replace(look, count=n), motion) for n in (1, 2, 3)]
    if attribute == "size":
        return [(dataclasses.replace(look, size=s), motion) for s in SIZES]
    return [(look, m) for m in rng.sample(motions, 4)]


def _caption(choices: tuple[int, ...], look: Look, motion: str, background: str) -> str:
    """One caption from fixed synonym and template choices (indices, taken modulo each list)."""
    template, verb, count_word, size_word = choices
    forms = MOTION_PHRASES[motion][verb % len(MOTION_PHRASES[motion])]
    vp, ving = (forms[1] if look.count > 1 else forms[0]), forms[2]
    count = COUNT_WORDS[look.count][count_word % len(COUNT_WORDS[look.count])]
    size = SIZE_WORDS[look.size][size_word % len(SIZE_WORDS[look.size])]
    noun_phrase = f"{count} {size} {look.colour} {noun(look)}"
    return CLIP_TEMPLATES[template % len(CLIP_TEMPLATES)].format(np=noun_phrase, vp=vp, ving=ving, bg=background)


def single_attribute_group(seed: int, group: int) -> tuple[str, list[Scene], list[str]]:
    """The attribute a group varies, and its scenes and captions (two to four)."""
    rng = keyed_rng(seed, "single_attribute", "test", group)
    attribute = GROUP_ATTRIBUTES[group % len(GROUP_ATTRIBUTES)]
    variants = _variants(rng, attribute)
    canvas = sample_canvas(rng)
    frames = single_frames(rng, canvas)
    choices = tuple(rng.randrange(12) for _ in range(4))
    scenes, captions = [], []
    for look, motion in variants:
        scene = plan_scene(keyed_rng(seed, "single_attribute", "test", group, "layout"), look, canvas, frames, motion)
        scenes.append(scene)
        captions.append(_caption(choices, look, motion, canvas.background))
    return attribute, scenes, captions


def plan_single_attribute(c: Corpus, seed: int, sizes: DemoSizes) -> None:
    """``single_attribute/`` in the MSR-VTT layout, test only: ``MSRVTT_data.json`` (one caption a
    video; each video also records its ``group`` and the group's ``attribute``),
    ``MSRVTT_JSFUSION_test.csv`` and ``videos/all/video{N}.mp4``."""
    videos, sentences, test_rows = [], [], []
    for group in range(sizes.single_attribute_groups):
        attribute, scenes, captions = single_attribute_group(seed, group)
        for k, (scene, caption) in enumerate(zip(scenes, captions)):
            n = GROUP_SLOTS * group + k
            videos.append({"video_id": f"video{n}", "group": group, "attribute": attribute, "split": "test", "id": n,
                           "start time": 0.0, "end time": round(scene.duration, 2)})  # fmt: skip
            sentences.append({"caption": caption, "video_id": f"video{n}", "sen_id": len(sentences)})
            test_rows.append([f"ret{n}", f"msr{n}", f"video{n}", caption])
            c.media(f"single_attribute/videos/all/video{n}.mp4", "mp4", scene)
    info = {
        "contributor": "vtr demo corpus",
        "description": "single-attribute groups, MSR-VTT layout",
        "version": "1.0",
    }
    c.text("single_attribute/MSRVTT_data.json", json_text({"info": info, "videos": videos, "sentences": sentences}))
    c.text("single_attribute/MSRVTT_JSFUSION_test.csv", csv_text(["key", "vid_key", "video_id", "sentence"], test_rows))
