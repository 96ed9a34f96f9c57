"""The caption grammar: count, size, colour, shape and motion, with synonyms and templates.

Every caption names all four appearance attributes and the motion ("two small red triangles
slide left", "a video of a big blue circle that grows", ...). Datasets with several captions a
video get distinct phrasings of one content; multi-segment clips get one sentence per segment.
``grammar_lines`` lists every word the grammar can emit, for the corpus tokenizer.
"""

from __future__ import annotations

import random
import re

from data_modules.demo.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, UCF_CLASSES, Look, Scene

COUNT_WORDS = {1: ("a", "one"), 2: ("two",), 3: ("three",)}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
PLURALS = {shape: shape + "s" for shape in SHAPES} | {"cross": "crosses"}

_LEFT = (
    ("moves to the left", "move to the left", "moving to the left"),
    ("slides left", "slide left", "sliding left"),
    ("travels leftward", "travel leftward", "traveling leftward"),
    ("drifts to the left", "drift to the left", "drifting to the left"),
)
# Per motion: (third person singular, plural, gerund) of several verb phrases.
MOTION_PHRASES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "move_left": _LEFT,
    "move_right": tuple(tuple(p.replace("left", "right") for p in forms) for forms in _LEFT),
    "move_up": (
        ("moves up", "move up", "moving up"),
        ("slides upward", "slide upward", "sliding upward"),
        ("rises", "rise", "rising"),
        ("floats upward", "float upward", "floating upward"),
    ),
    "move_down": (
        ("moves down", "move down", "moving down"),
        ("slides downward", "slide downward", "sliding downward"),
        ("falls", "fall", "falling"),
        ("sinks", "sink", "sinking"),
    ),
    "grow": (
        ("grows", "grow", "growing"),
        ("gets bigger", "get bigger", "getting bigger"),
        ("expands", "expand", "expanding"),
        ("grows larger", "grow larger", "growing larger"),
    ),
    "shrink": (
        ("shrinks", "shrink", "shrinking"),
        ("gets smaller", "get smaller", "getting smaller"),
        ("contracts", "contract", "contracting"),
        ("shrinks in size", "shrink in size", "shrinking in size"),
    ),
    "rotate": (
        ("rotates", "rotate", "rotating"),
        ("spins", "spin", "spinning"),
        ("turns around", "turn around", "turning around"),
        ("spins in place", "spin in place", "spinning in place"),
    ),
    "stay_still": (
        ("stays still", "stay still", "staying still"),
        ("does not move", "do not move", "not moving"),
        ("remains static", "remain static", "remaining static"),
        ("sits still", "sit still", "sitting still"),
    ),
}
CLIP_TEMPLATES = (
    "{np} {vp}",
    "{np} {vp} on a {bg} background",
    "{np} {ving}",
    "a video of {np} that {vp}",
    "on a {bg} background, {np} {vp}",
    "{np} {ving} against a {bg} background",
    "footage of {np} {ving}",
    "a clip in which {np} {vp}",
)
IMAGE_TEMPLATES = (
    "{np}",
    "{np} on a {bg} background",
    "an image of {np}",
    "a picture of {np} against a {bg} background",
    "an illustration of {np}",
)
SEQUENCE_LEADS = ("Then ", "After that, ", "Next, ", "")


def noun(look: Look) -> str:
    return look.shape if look.count == 1 else PLURALS[look.shape]


def noun_phrase(rng: random.Random, look: Look) -> str:
    return f"{rng.choice(COUNT_WORDS[look.count])} {rng.choice(SIZE_WORDS[look.size])} {look.colour} {noun(look)}"


def verb_phrase(rng: random.Random, motion: str, plural: bool) -> tuple[str, str]:
    """(finite, gerund) forms of one randomly chosen phrasing of `motion`."""
    singular, plural_form, gerund = rng.choice(MOTION_PHRASES[motion])
    return (plural_form if plural else singular), gerund


def clip_caption(rng: random.Random, scene: Scene) -> str:
    vp, ving = verb_phrase(rng, scene.motions[0], scene.look.count > 1)
    template = rng.choice(CLIP_TEMPLATES)
    return template.format(np=noun_phrase(rng, scene.look), vp=vp, ving=ving, bg=scene.canvas.background)


def clip_captions(rng: random.Random, scene: Scene, k: int) -> list[str]:
    """k distinct phrasings of the same clip (MSR-VTT has several captions a video)."""
    captions: list[str] = []
    for _ in range(50 * k):
        caption = clip_caption(rng, scene)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == k:
            break
    return captions


def image_caption(rng: random.Random, scene: Scene) -> str:
    return rng.choice(IMAGE_TEMPLATES).format(np=noun_phrase(rng, scene.look), bg=scene.canvas.background)


def as_sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _later_subject(rng: random.Random, look: Look) -> tuple[str, bool]:
    """Subject of a follow-up sentence: a pronoun or a definite noun phrase."""
    plural = look.count > 1
    return rng.choice(("they" if plural else "it", f"the {look.colour} {noun(look)}", f"the {noun(look)}")), plural


def segment_texts(rng: random.Random, scene: Scene, paragraph: bool) -> list[str]:
    """One text per segment; `again` marks a repeated motion (as real annotators write).

    paragraph=True gives ActivityNet-style sentences ("Then it grows."), False gives
    DiDeMo-style stand-alone moment descriptions ("the red circles grow").
    """
    look = scene.look
    texts = [f"{noun_phrase(rng, look)} {verb_phrase(rng, scene.motions[0], look.count > 1)[0]}"]
    for k, motion in enumerate(scene.motions[1:], start=1):
        if paragraph:
            subject, plural = _later_subject(rng, look)
        else:
            subject, plural = f"the {look.colour} {noun(look)}", look.count > 1
        again = " again" if motion in scene.motions[:k] and motion != "stay_still" else ""
        lead = rng.choice(SEQUENCE_LEADS) if paragraph else ""
        texts.append(f"{lead}{subject} {verb_phrase(rng, motion, plural)[0]}{again}")
    return [as_sentence(t) for t in texts] if paragraph else texts


def _class_prompts() -> list[str]:
    """Zero-shot class names as the evaluation turns them into text."""
    words = [m.replace("_", " ") for m in MOTIONS]
    return words + [f"a person {w}" for w in words] + [f"a video of {w}" for w in words] + list(UCF_CLASSES.values())


def grammar_lines() -> list[str]:
    """Every word the grammar can emit, so the tokenizer knows them all as whole words."""
    lines = [" ".join(COLOURS), " ".join(BACKGROUNDS), " ".join(SHAPES), " ".join(PLURALS.values())]
    lines += [" ".join(words) for words in (*COUNT_WORDS.values(), *SIZE_WORDS.values())]
    lines += [" ".join(forms) for phrases in MOTION_PHRASES.values() for forms in phrases]
    lines += [re.sub(r"\{\w+\}", "", t) for t in CLIP_TEMPLATES + IMAGE_TEMPLATES]
    return lines + list(SEQUENCE_LEADS) + ["they it the again"] + _class_prompts()
