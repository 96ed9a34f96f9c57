"""Synthetic demo corpus, written in the on-disk layouts of the real datasets.

Why: the real corpora (WebVid-2M, CC3M, MSR-VTT, LSMDC, ActivityNet Captions, DiDeMo,
HMDB51, UCF101) are hundreds of gigabytes, partly no longer downloadable, and need a GPU
cluster to learn anything. Every loader, the training loop and the evaluation still have to
run end to end on a laptop and in CI, and a short training run should show real learning.
So this module renders a small, learnable world and writes it exactly where and how the
real datasets lie on users' disks (REFERENCE.md section 5); the same loaders then read the
demo corpus and the real one.

The world
    Each clip shows one to three shapes of one kind (circle, square, triangle, star,
    diamond, cross), in one of six well-separated colours, small or large, on a plain
    black, gray or white background (slightly tinted per clip). All shapes perform one
    motion: move left/right/up/down, grow, shrink, rotate (never circles) or stay still.
    Frames are 64-128 px a side (even, often non-square), 8-10 fps, 2-4 s; shapes are
    drawn at twice the resolution and box-downsampled, so edges are anti-aliased.

Captions
    A compositional grammar over count, size, colour, shape and motion, with synonyms and
    several sentence templates ("two small red triangles slide left", "a video of a big
    blue circle that grows", ...). Every caption names all four appearance attributes and
    the motion. Consecutive items of a split form *contrast pairs*: the same count, size,
    colour and shape with a different motion, so retrieval needs motion, not appearance
    alone. Datasets with several captions a video get distinct phrasings of one content.
    ActivityNet and DiDeMo videos chain 2-4 motions (one per segment) and get one
    sentence per segment.

Determinism
    Every random choice for an item comes from an RNG keyed by (seed, dataset, split,
    index, purpose), so contents do not depend on `workers` or on generation order. (Videos
    decode to identical frames; libx264 does not always emit identical bytes for them.)

Files
    mp4: H.264 (the first of libx264 / h264 / libopenh264 the PyAV wheel has, else MPEG-4
    part 2), yuv420p, a keyframe every second (`g` = fps) like web video, so seek-based
    frame reading behaves as on real data. avi (LSMDC, HMDB51, UCF101): MPEG-4 part 2,
    like the DivX/Xvid files of the real sets. CC3M: JPEG stills.

Layout (under root)
    webvid/metadata/results_2M_{train,val}.csv      videoid,contentUrl,duration,page_dir,name
    webvid/videos/{page_dir}/{videoid}.mp4
    cc3m/Train_GCC-training.tsv, cc3m/Validation_GCC-1.1.0-Validation.tsv   caption<TAB>url
    cc3m/{training,validation}/{crc32(url)}          JPEG, no extension (see _cc3m_file_name)
    cc3m/cc3m_{train,val}.csv                        caption,path (path relative to cc3m/)
    msrvtt/MSRVTT_data.json, MSRVTT_train.{9k,7k}.csv, MSRVTT_val.csv, MSRVTT_JSFUSION_test.csv
    msrvtt/videos/all/video{N}.mp4
    lsmdc/LSMDC16_annos_{training,val}.csv, lsmdc/LSMDC16_challenge_1000_publictect.csv
    lsmdc/avi/{movie}/{clip_id}.avi
    activitynet/{train,val_1}.json, activitynet/videos/v_{id}.mp4
    didemo/{train,val,test}_data.json, didemo/videos/{name}.mp4
    hmdb51/videos/{class}/{name}.avi, hmdb51/splits/{class}_test_split1.txt
    ucf101/UCF-101/{Class}/v_{Class}_g{gg}_c{cc}.avi, ucf101/ucfTrainTestlist/*.txt
    tokenizer/                                       WordPiece over the corpus words, loads with AutoTokenizer
    DONE                                             json of the settings, written last

Completion
    `DONE` is written last. While generating, `.partial.json` holds the settings; an
    interrupted run with the same settings resumes (finished media files are written
    atomically and kept). A corpus of other settings in the same root is removed first.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import av
from PIL import Image, ImageDraw

CORPUS_VERSION = 1  # recorded in DONE; bump when the output changes, so old corpora are rebuilt
DONE_FILE = "DONE"
PARTIAL_FILE = ".partial.json"
OWNED_DIRS = ("webvid", "cc3m", "msrvtt", "lsmdc", "activitynet", "didemo", "hmdb51", "ucf101", "tokenizer")

# ----------------------------------------------------------------------------- the world

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 80, 230),
    "yellow": (245, 215, 30),
    "purple": (150, 50, 200),
    "orange": (245, 130, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "gray": (125, 125, 125),
    "white": (230, 230, 230),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
# Circumradius relative to the nominal radius, so that all kinds look about equally big.
SHAPE_EXTENT = {"circle": 0.9, "square": 1.0, "triangle": 1.15, "star": 1.25, "diamond": 1.15, "cross": 1.1}
SIZES = {"small": 0.10, "large": 0.16}  # nominal radius / shorter frame side
MOTIONS = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "rotate", "stay_still")
TRANSLATIONS = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}
UCF_CLASSES = {m: "".join(w.capitalize() for w in m.split("_")) for m in MOTIONS}

CLIP_SECONDS = (2.0, 4.0)
ACTIVITYNET_SECONDS = (4.0, 6.0)
MIN_SEGMENT_SECONDS = 1.2
DIDEMO_SEGMENT_SECONDS = 1.5  # the real DiDeMo unit is 5 s; `times` index these units
FPS_CHOICES = (8, 9, 10)
SUPERSAMPLE = 2

MARGIN = 2.0  # px kept between a shape and the frame border
GAP = 3.0  # px kept between two shapes
SCALE_MIN, SCALE_MAX = 0.7, 1.4  # grow/shrink range, relative to the nominal size
MIN_SCALE_FACTOR = 1.4  # a grow or shrink changes the size at least this much
MIN_TRAVEL = 0.3  # a move covers at least this fraction of the frame
START_BAND = 0.45  # a move starts within this fraction of the free span, on the far side
ROTATION_DEG_PER_S = (100.0, 180.0)

Points = tuple[tuple[float, float], ...]
State = tuple[float, float, float, float]  # group offset dx, dy (px), scale, extra angle (deg)
Keyframe = tuple[int, float, float, float, float]  # frame index, then a State


def _regular(n: int, phase_deg: float, radius: float = 1.0) -> list[tuple[float, float]]:
    """Vertices of a regular polygon, angle measured clockwise from 'up'."""
    angles = [math.radians(phase_deg + 360.0 * k / n) for k in range(n)]
    return [(radius * math.sin(a), -radius * math.cos(a)) for a in angles]


def _star() -> list[tuple[float, float]]:
    """Five-pointed star: outer and inner vertices interleaved."""
    outer, inner = _regular(5, 0.0), _regular(5, 36.0, 0.45)
    return [p for pair in zip(outer, inner) for p in pair]


def _cross(a: float = 0.36) -> list[tuple[float, float]]:
    """Plus sign with arms 2a wide, scaled so its circumradius is 1 like the other polygons."""
    pts = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]
    norm = math.hypot(1.0, a)
    return [(x / norm, y / norm) for x, y in pts]


UNIT_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": _regular(4, 45.0),
    "triangle": _regular(3, 0.0),
    "star": _star(),
    "diamond": [(0.0, -1.0), (0.6, 0.0), (0.0, 1.0), (-0.6, 0.0)],
    "cross": _cross(),
}

# ----------------------------------------------------------------------------- grammar

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


# ----------------------------------------------------------------------------- public API


@dataclass
class DemoSizes:
    """Items per dataset split; the defaults take about 90 s of CPU time and 60 MB of disk."""

    webvid_train: int = 2000
    webvid_val: int = 200
    cc3m_train: int = 1000
    cc3m_val: int = 100
    msrvtt_train: int = 1000
    msrvtt_test: int = 200
    msrvtt_val: int = 100  # held out of the 9k/7k train lists, for checkpoint selection
    lsmdc_train: int = 400
    lsmdc_val: int = 100
    lsmdc_test: int = 100
    activitynet_train: int = 300
    activitynet_val: int = 100
    didemo_train: int = 300
    didemo_val: int = 50
    didemo_test: int = 100
    action_per_class: int = 12  # hmdb51- and ucf101-style class folders

    @classmethod
    def tiny(cls) -> DemoSizes:
        """A few items per split: the whole corpus in a few seconds, for tests."""
        return cls(
            webvid_train=8, webvid_val=6, cc3m_train=8, cc3m_val=6,
            msrvtt_train=8, msrvtt_test=6, msrvtt_val=4,
            lsmdc_train=6, lsmdc_val=6, lsmdc_test=6,
            activitynet_train=6, activitynet_val=6,
            didemo_train=6, didemo_val=6, didemo_test=6,
            action_per_class=4,
        )  # fmt: skip


def generate_demo_corpus(
    root: str | Path,
    seed: int = 0,
    sizes: DemoSizes | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write the demo corpus under `root` and return `root`.

    A no-op when `root/DONE` records the same seed and sizes; resumes an interrupted run
    of the same settings; replaces a demo corpus of other settings.
    """
    root = Path(root)
    sizes = sizes or DemoSizes()
    config = {"version": CORPUS_VERSION, "seed": seed, "sizes": asdict(sizes)}
    if _read_json(root / DONE_FILE) == config:
        return root
    resume = _prepare_root(root, config)
    corpus = _plan_corpus(root, seed, sizes)
    pending = [job for job in corpus.jobs if not (resume and job.path.exists())]
    _render_all(pending, workers, progress)
    for path, text in corpus.texts.items():
        _write_text(path, text)
    _train_tokenizer(corpus.captions + _grammar_lines(), root / "tokenizer")
    _write_text(root / DONE_FILE, json.dumps(config, indent=2) + "\n")
    (root / PARTIAL_FILE).unlink()
    return root


# ----------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Look:
    """Appearance shared by all shapes of an item: what the noun phrase says."""

    count: int
    size: str
    colour: str
    shape: str


@dataclass(frozen=True)
class Canvas:
    """Frame geometry, rate and background of one item."""

    width: int
    height: int
    fps: int
    background: str
    bg_rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one clip or image; small and picklable for workers.

    Shapes sit at `centres` (px) and all move together: a keyframe gives the group
    offset, scale and extra rotation at a frame; frames between keyframes interpolate
    linearly. Keyframe k to k+1 is segment k, performing `motions[k]`.
    """

    look: Look
    canvas: Canvas
    centres: Points
    angles: tuple[float, ...]
    radius: float  # circumradius in px at scale 1
    motions: tuple[str, ...]
    keyframes: tuple[Keyframe, ...]

    @property
    def n_frames(self) -> int:
        return self.keyframes[-1][0] + 1

    @property
    def duration(self) -> float:
        return self.n_frames / self.canvas.fps


class Geometry(NamedTuple):
    """The fixed part of a scene that motion planning checks states against."""

    centres: Points
    radius: float
    canvas: Canvas
    shape: str


def _rng(seed: int, *key: object) -> random.Random:
    """Independent RNG per (seed, dataset, split, index, purpose): order-free determinism."""
    digest = hashlib.blake2b("/".join(map(str, (seed, *key))).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _allowed_motions(shape: str) -> tuple[str, ...]:
    """A rotating circle looks static, so circles never rotate."""
    return tuple(m for m in MOTIONS if not (m == "rotate" and shape == "circle"))


def _sample_look(rng: random.Random, shapes: tuple[str, ...] = SHAPES) -> Look:
    count = rng.choices((1, 2, 3), weights=(4, 3, 3))[0]
    return Look(count, rng.choice(tuple(SIZES)), rng.choice(tuple(COLOURS)), rng.choice(shapes))


def _sample_canvas(rng: random.Random) -> Canvas:
    """Even frame sides (yuv420p), 8-10 fps, a neutral background with a slight tint."""
    background = rng.choice(tuple(BACKGROUNDS))
    rgb = tuple(min(255, max(0, c + rng.randint(-12, 12))) for c in BACKGROUNDS[background])
    return Canvas(2 * rng.randint(32, 64), 2 * rng.randint(32, 64), rng.choice(FPS_CHOICES), background, rgb)


def _fits(centres: Points, radius: float, state: State, canvas: Canvas) -> bool:
    """All shapes inside the frame and apart from each other in this state."""
    dx, dy, scale, _ = state
    r = radius * scale
    for x, y in centres:
        inside_x = MARGIN + r <= x + dx <= canvas.width - MARGIN - r
        if not (inside_x and MARGIN + r <= y + dy <= canvas.height - MARGIN - r):
            return False
    return all(math.dist(a, b) >= 2 * r + GAP for i, a in enumerate(centres) for b in centres[i + 1 :])


def _room(centres: Points, r: float, state: State, direction: tuple[int, int], canvas: Canvas) -> float:
    """How far the group can move in `direction` before a shape touches the margin."""
    dx, dy = state[0], state[1]
    ux, uy = direction
    if ux:
        ends = [canvas.width - MARGIN - r - (x + dx) if ux > 0 else x + dx - MARGIN - r for x, _ in centres]
    else:
        ends = [canvas.height - MARGIN - r - (y + dy) if uy > 0 else y + dy - MARGIN - r for _, y in centres]
    return min(ends)


def _advance(rng: random.Random, motion: str, state: State, seconds: float, geometry: Geometry) -> State | None:
    """State after performing `motion` for `seconds`, or None if it cannot be shown well."""
    centres, radius, canvas, shape = geometry
    dx, dy, scale, angle = state
    if motion in TRANSLATIONS:
        ux, uy = TRANSLATIONS[motion]
        room = _room(centres, radius * scale, state, (ux, uy), canvas)
        if room < MIN_TRAVEL * (canvas.width if ux else canvas.height):
            return None
        step = room * rng.uniform(0.8, 1.0)
        new = (dx + ux * step, dy + uy * step, scale, angle)
    elif motion == "grow":
        target = min(SCALE_MAX, 2 * scale)
        new = (dx, dy, target, angle) if target >= MIN_SCALE_FACTOR * scale else None
    elif motion == "shrink":
        target = max(SCALE_MIN, scale / 2)
        new = (dx, dy, target, angle) if target * MIN_SCALE_FACTOR <= scale else None
    elif motion == "rotate":
        turn = rng.choice((-1, 1)) * rng.uniform(*ROTATION_DEG_PER_S) * seconds
        new = (dx, dy, scale, angle + turn) if shape != "circle" else None
    else:
        new = state
    return new if new is not None and _fits(centres, radius, new, canvas) else None


def _sample_centres(rng: random.Random, count: int, r: float, canvas: Canvas, motion: str) -> Points | None:
    """Shape centres placed one by one, apart from each other; a move starts on the side it
    moves away from."""
    spans = [[MARGIN + r, canvas.width - MARGIN - r], [MARGIN + r, canvas.height - MARGIN - r]]
    if any(hi < lo for lo, hi in spans):
        return None
    if motion in TRANSLATIONS:
        ux, uy = TRANSLATIONS[motion]
        axis, sign = (0, ux) if ux else (1, uy)
        lo, hi = spans[axis]
        band = START_BAND * (hi - lo)
        spans[axis] = [lo, lo + band] if sign > 0 else [hi - band, hi]
    points: list[tuple[float, float]] = []
    for _ in range(count):
        for _ in range(30):
            p = (rng.uniform(*spans[0]), rng.uniform(*spans[1]))
            if all(math.dist(p, q) >= 2 * r + GAP for q in points):
                points.append(p)
                break
        else:
            return None
    return tuple(points)


def _try_scene(
    rng: random.Random, look: Look, canvas: Canvas, frames: list[int], first: str, radius: float
) -> Scene | None:
    """One layout attempt; motions after the first are picked among the feasible ones."""
    scale = {"grow": SCALE_MIN, "shrink": SCALE_MAX}.get(first, 1.0)
    largest = SCALE_MAX if first in ("grow", "shrink") else 1.0  # lay out for the biggest size shown
    centres = _sample_centres(rng, look.count, radius * largest, canvas, first)
    if centres is None:
        return None
    geometry = Geometry(centres, radius, canvas, look.shape)
    state: State = (0.0, 0.0, scale, 0.0)
    keyframes: list[Keyframe] = [(frames[0], *state)]
    motions: list[str] = []
    for f0, f1 in zip(frames, frames[1:]):
        candidates = [first] if not motions else [m for m in _allowed_motions(look.shape) if m != motions[-1]]
        rng.shuffle(candidates)
        for motion in candidates:
            new = _advance(rng, motion, state, (f1 - f0) / canvas.fps, geometry)
            if new is not None:
                break
        else:
            return None
        state = new
        motions.append(motion)
        keyframes.append((f1, *state))
    jitter = tuple(rng.uniform(-25.0, 25.0) for _ in centres)
    return Scene(look, canvas, centres, jitter, radius, tuple(motions), tuple(keyframes))


def _plan_scene(rng: random.Random, look: Look, canvas: Canvas, frames: list[int], motion: str | None) -> Scene:
    """Lay out a scene whose first segment shows `motion` (random if None); later segments
    (multi-segment clips) get other feasible motions, each different from the one before.

    Rejection sampling; if a crowded layout keeps failing (three large shapes growing on a
    64 px frame), the shapes get 10% smaller and sampling starts again.
    """
    first = motion or rng.choice(_allowed_motions(look.shape))
    radius = SIZES[look.size] * min(canvas.width, canvas.height) * SHAPE_EXTENT[look.shape]
    while True:
        for _ in range(100):
            scene = _try_scene(rng, look, canvas, frames, first, radius)
            if scene is not None:
                return scene
        radius *= 0.9


def _single_frames(rng: random.Random, canvas: Canvas) -> list[int]:
    n = round(rng.uniform(*CLIP_SECONDS) * canvas.fps)
    return [0, n - 1]


def _cut_frames(rng: random.Random, canvas: Canvas) -> list[int]:
    """ActivityNet: 2-4 consecutive segments of random lengths, each at least 1.2 s."""
    last = round(rng.uniform(*ACTIVITYNET_SECONDS) * canvas.fps) - 1
    min_len = math.ceil(MIN_SEGMENT_SECONDS * canvas.fps)
    k = rng.randint(2, min(4, last // min_len))
    extra = last - k * min_len
    cuts = sorted(rng.randint(0, extra) for _ in range(k - 1))
    bounds = [0, *cuts, extra]
    return [bounds[j] + j * min_len for j in range(k + 1)]


def _contrast_pair(seed: int, dataset: str, split: str, index: int) -> tuple[Look, str]:
    """Items 2j and 2j+1 share their look and differ in motion."""
    rng = _rng(seed, dataset, split, "pair", index // 2)
    look = _sample_look(rng)
    motions = rng.sample(_allowed_motions(look.shape), 2)
    return look, motions[index % 2]


def _single_scene(seed: int, dataset: str, split: str, index: int) -> Scene:
    """A one-motion clip, half of a contrast pair."""
    look, motion = _contrast_pair(seed, dataset, split, index)
    rng = _rng(seed, dataset, split, index)
    canvas = _sample_canvas(rng)
    return _plan_scene(rng, look, canvas, _single_frames(rng, canvas), motion)


# ----------------------------------------------------------------------------- captions


def _noun(look: Look) -> str:
    return look.shape if look.count == 1 else PLURALS[look.shape]


def _noun_phrase(rng: random.Random, look: Look) -> str:
    return f"{rng.choice(COUNT_WORDS[look.count])} {rng.choice(SIZE_WORDS[look.size])} {look.colour} {_noun(look)}"


def _verb_phrase(rng: random.Random, motion: str, plural: bool) -> tuple[str, str]:
    """(finite, gerund) forms of one randomly chosen phrasing of `motion`."""
    singular, plural_form, gerund = rng.choice(MOTION_PHRASES[motion])
    return (plural_form if plural else singular), gerund


def _clip_caption(rng: random.Random, scene: Scene) -> str:
    vp, ving = _verb_phrase(rng, scene.motions[0], scene.look.count > 1)
    template = rng.choice(CLIP_TEMPLATES)
    return template.format(np=_noun_phrase(rng, scene.look), vp=vp, ving=ving, bg=scene.canvas.background)


def _clip_captions(rng: random.Random, scene: Scene, k: int) -> list[str]:
    """k distinct phrasings of the same clip (MSR-VTT has several captions a video)."""
    captions: list[str] = []
    for _ in range(50 * k):
        caption = _clip_caption(rng, scene)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == k:
            break
    return captions


def _image_caption(rng: random.Random, scene: Scene) -> str:
    return rng.choice(IMAGE_TEMPLATES).format(np=_noun_phrase(rng, scene.look), bg=scene.canvas.background)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _later_subject(rng: random.Random, look: Look) -> tuple[str, bool]:
    """Subject of a follow-up sentence: a pronoun or a definite noun phrase."""
    plural = look.count > 1
    return rng.choice(("they" if plural else "it", f"the {look.colour} {_noun(look)}", f"the {_noun(look)}")), plural


def _segment_texts(rng: random.Random, scene: Scene, paragraph: bool) -> list[str]:
    """One text per segment; `again` marks a repeated motion (as real annotators write).

    paragraph=True gives ActivityNet-style sentences ("Then it grows."), False gives
    DiDeMo-style stand-alone moment descriptions ("the red circles grow").
    """
    look = scene.look
    texts = [f"{_noun_phrase(rng, look)} {_verb_phrase(rng, scene.motions[0], look.count > 1)[0]}"]
    for k, motion in enumerate(scene.motions[1:], start=1):
        if paragraph:
            subject, plural = _later_subject(rng, look)
        else:
            subject, plural = f"the {look.colour} {_noun(look)}", look.count > 1
        again = " again" if motion in scene.motions[:k] and motion != "stay_still" else ""
        lead = rng.choice(SEQUENCE_LEADS) if paragraph else ""
        texts.append(f"{lead}{subject} {_verb_phrase(rng, motion, plural)[0]}{again}")
    return [_sentence(t) for t in texts] if paragraph else texts


def _class_prompts() -> list[str]:
    """Zero-shot class names as the evaluation turns them into text."""
    words = [m.replace("_", " ") for m in MOTIONS]
    return words + [f"a person {w}" for w in words] + [f"a video of {w}" for w in words] + list(UCF_CLASSES.values())


def _grammar_lines() -> list[str]:
    """Every word the grammar can emit, so the tokenizer knows them all as whole words."""
    lines = [" ".join(COLOURS), " ".join(BACKGROUNDS), " ".join(SHAPES), " ".join(PLURALS.values())]
    lines += [" ".join(words) for words in (*COUNT_WORDS.values(), *SIZE_WORDS.values())]
    lines += [" ".join(forms) for phrases in MOTION_PHRASES.values() for forms in phrases]
    lines += [re.sub(r"\{\w+\}", "", t) for t in CLIP_TEMPLATES + IMAGE_TEMPLATES]
    return lines + list(SEQUENCE_LEADS) + ["they it the again"] + _class_prompts()


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Job:
    """One media file to render: `kind` is mp4, avi or jpg."""

    path: Path
    kind: str
    scene: Scene


def _state_at(keyframes: tuple[Keyframe, ...], t: int) -> State:
    for (f0, *s0), (f1, *s1) in zip(keyframes, keyframes[1:]):
        if t <= f1:
            p = (t - f0) / (f1 - f0)
            return tuple(a + p * (b - a) for a, b in zip(s0, s1))  # type: ignore[return-value]
    return tuple(keyframes[-1][1:])  # type: ignore[return-value]


def _polygon(shape: str, cx: float, cy: float, r: float, angle_deg: float) -> list[tuple[float, float]]:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in UNIT_POLYGONS[shape]]


def _draw(scene: Scene, state: State) -> Image.Image:
    """Draw at SUPERSAMPLE x resolution and box-downsample, for anti-aliased edges."""
    ss, canvas = SUPERSAMPLE, scene.canvas
    image = Image.new("RGB", (canvas.width * ss, canvas.height * ss), canvas.bg_rgb)
    draw = ImageDraw.Draw(image)
    dx, dy, scale, turn = state
    r, rgb = scene.radius * scale * ss, COLOURS[scene.look.colour]
    for (x, y), angle in zip(scene.centres, scene.angles):
        cx, cy = (x + dx) * ss, (y + dy) * ss
        if scene.look.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=rgb)
        else:
            draw.polygon(_polygon(scene.look.shape, cx, cy, r, angle + turn), fill=rgb)
    return image.reduce(ss)


@functools.cache
def h264_encoder() -> str:
    """The H.264 encoder this PyAV build has, else MPEG-4 part 2 as a fallback."""
    for name in ("libx264", "h264", "libopenh264"):
        try:
            return av.codec.Codec(name, "w").name  # "h264" resolves to the encoder behind it
        except Exception:  # noqa: BLE001 - PyAV raises different types across versions
            continue
    return "mpeg4"


def _encoder(kind: str, fps: int) -> tuple[str, dict[str, str]]:
    """Codec and options; `g` = fps gives a keyframe every second, as in web video.

    Quality is set high (x264 crf 18; MPEG-4 part 2 quantiser at most 4) because small
    shapes whose edges differ from the background mostly in chroma otherwise flicker from
    one keyframe interval to the next, and a static clip would look as if it moved.
    Files stay a few KB.
    """
    codec = h264_encoder() if kind == "mp4" else "mpeg4"
    options = {"g": str(fps)}
    if codec == "libx264":
        options |= {"preset": "veryfast", "crf": "18", "threads": "1"}
    elif codec == "mpeg4":
        options |= {"qmax": "4"}
    return codec, options


def _write_video(job: Job) -> None:
    """Encode frame by frame into `<name>.part`, renamed once complete."""
    scene, canvas = job.scene, job.scene.canvas
    codec, options = _encoder(job.kind, canvas.fps)
    tmp = job.path.with_name(job.path.name + ".part")
    with av.open(str(tmp), "w", format=job.kind) as container:
        stream = container.add_stream(codec, rate=canvas.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = canvas.width, canvas.height, "yuv420p"
        stream.codec_context.thread_count = 1
        for t in range(scene.n_frames):
            frame = av.VideoFrame.from_image(_draw(scene, _state_at(scene.keyframes, t)))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    os.replace(tmp, job.path)


def _render_job(job: Job) -> None:
    """Worker entry point; writes atomically so an interrupted run leaves no half files."""
    job.path.parent.mkdir(parents=True, exist_ok=True)
    if job.kind == "jpg":
        tmp = job.path.with_name(job.path.name + ".part")
        _draw(job.scene, _state_at(job.scene.keyframes, 0)).save(tmp, format="JPEG", quality=90)
        os.replace(tmp, job.path)
    else:
        _write_video(job)


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    """Yield an `advance()` callback: a rich progress bar, or nothing when disabled."""
    if not enabled:
        yield lambda: None
        return
    from rich import progress as rp

    columns = (rp.TextColumn("demo corpus"), rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeElapsedColumn())
    with rp.Progress(*columns, rp.TimeRemainingColumn()) as bar:
        task = bar.add_task("render", total=total)
        yield lambda: bar.advance(task)


def _render_all(jobs: list[Job], workers: int, progress: bool) -> None:
    """Render in a process pool. Fork where available (as torch's DataLoader does), since a
    spawned worker would re-import the `data_modules` package and with it torch; the pool
    starts before the progress bar's refresh thread, so no thread is forked mid-lock."""
    if workers <= 1:
        with _progress_bar(len(jobs), progress) as advance:
            for job in jobs:
                _render_job(job)
                advance()
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool, _progress_bar(len(jobs), progress) as advance:
        for _ in pool.imap_unordered(_render_job, jobs, chunksize=16):
            advance()


# ----------------------------------------------------------------------------- layouts


@dataclass
class _Corpus:
    """What the planners produce: media jobs, annotation texts and all captions."""

    root: Path
    jobs: list[Job] = field(default_factory=list)
    texts: dict[Path, str] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)

    def media(self, rel: str, kind: str, scene: Scene) -> None:
        self.jobs.append(Job(self.root / rel, kind, scene))

    def text(self, rel: str, content: str) -> None:
        self.texts[self.root / rel] = content


def _csv_text(header: list[str] | None, rows: list[list[object]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _json_text(obj: object) -> str:
    return json.dumps(obj, indent=1) + "\n"


def _slug(text: str) -> str:
    return "-".join("".join(ch for ch in word if ch.isalnum()) for word in text.lower().split())


def _plan_webvid(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """Numeric video ids, 250 videos per page_dir folder, duration as PT00H00M03S."""
    splits = (("train", sizes.webvid_train), ("val", sizes.webvid_val))
    ids = iter(_rng(seed, "webvid", "ids").sample(range(10**7, 10**9), sum(n for _, n in splits)))
    page = 20
    for split, n in splits:
        rows = []
        for i in range(n):
            scene = _single_scene(seed, "webvid", split, i)
            caption = _clip_caption(_rng(seed, "webvid", split, i, "text"), scene)
            videoid, page_dir = next(ids), f"{(page + i // 250) * 50 + 1:06d}_{(page + i // 250) * 50 + 50:06d}"
            url = f"https://example.com/webvid/videos/{videoid}/preview/stock-footage-{_slug(caption)}.mp4"
            rows.append([videoid, url, f"PT00H00M{round(scene.duration):02d}S", page_dir, caption])
            c.media(f"webvid/videos/{page_dir}/{videoid}.mp4", "mp4", scene)
            c.captions.append(caption)
        page += math.ceil(n / 250)
        header = ["videoid", "contentUrl", "duration", "page_dir", "name"]
        c.text(f"webvid/metadata/results_2M_{split}.csv", _csv_text(header, rows))


def _cc3m_file_name(url: str) -> str:
    """CC3M image file name as the common downloader (igorbrigadir/DownloadConceptualCaptions,
    used by ViLBERT, VOLTA, Frozen) writes it: zlib.crc32 of the UTF-8 url, masked to
    unsigned 32 bit, in decimal, with no extension."""
    return str(zlib.crc32(url.encode("utf-8")) & 0xFFFFFFFF)


def _plan_cc3m(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """Static shapes; captions without motion. Google's TSVs plus the caption,path CSVs."""
    used: set[str] = set()
    splits = (("train", "training", "Train_GCC-training.tsv", sizes.cc3m_train),
              ("val", "validation", "Validation_GCC-1.1.0-Validation.tsv", sizes.cc3m_val))  # fmt: skip
    for split, folder, tsv_name, n in splits:
        tsv_rows, csv_rows = [], []
        for i in range(n):
            rng = _rng(seed, "cc3m", split, i)
            look = _sample_look(rng)
            scene = _plan_scene(rng, look, _sample_canvas(rng), [0], "stay_still")
            caption = _image_caption(_rng(seed, "cc3m", split, i, "text"), scene)
            url = f"https://example.com/cc3m/{folder}/{i:07d}/{_slug(caption)}.jpg"
            while _cc3m_file_name(url) in used:
                url += "?copy"
            used.add(_cc3m_file_name(url))
            rel = f"{folder}/{_cc3m_file_name(url)}"
            c.media(f"cc3m/{rel}", "jpg", scene)
            tsv_rows.append([caption, url])
            csv_rows.append([caption, rel])
            c.captions.append(caption)
        c.text(f"cc3m/{tsv_name}", "".join(f"{cap}\t{url}\n" for cap, url in tsv_rows))
        c.text(f"cc3m/cc3m_{split}.csv", _csv_text(["caption", "path"], csv_rows))


def _plan_msrvtt(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """Real ordering: train ids first, then 'validate', then 'test' (1k-A style test list).

    MSRVTT_val.csv holds the 'validate' videos, which are in neither train list, so
    checkpoints can be selected without touching the test split.
    """
    counts = (("train", sizes.msrvtt_train), ("validate", sizes.msrvtt_val), ("test", sizes.msrvtt_test))
    split_of = [name for name, n in counts for _ in range(n)]
    videos, sentences, test_rows = [], [], []
    for n, split in enumerate(split_of):
        scene = _single_scene(seed, "msrvtt", "all", n)
        rng = _rng(seed, "msrvtt", "all", n, "text")
        captions = _clip_captions(rng, scene, 5)
        start = round(rng.uniform(0, 300), 2)
        videos.append({"category": rng.randrange(20), "url": f"https://example.com/watch?v={rng.getrandbits(40):010x}",
                       "video_id": f"video{n}", "start time": start, "end time": round(start + scene.duration, 2),
                       "split": split, "id": n})  # fmt: skip
        for caption in captions:
            sentences.append({"caption": caption, "video_id": f"video{n}", "sen_id": len(sentences)})
        if split == "test":
            test_rows.append([f"ret{len(test_rows)}", f"msr{n}", f"video{n}", rng.choice(captions)])
        c.media(f"msrvtt/videos/all/video{n}.mp4", "mp4", scene)
        c.captions += captions
    ids = {name: [f"video{n}" for n, s in enumerate(split_of) if s == name] for name, _ in counts}
    seven_k = sorted(_rng(seed, "msrvtt", "7k").sample(range(len(ids["train"])), round(len(ids["train"]) * 7 / 9)))
    info = {"contributor": "vtr demo corpus", "description": "synthetic MSR-VTT layout", "version": "1.0"}
    c.text("msrvtt/MSRVTT_data.json", _json_text({"info": info, "videos": videos, "sentences": sentences}))
    c.text("msrvtt/MSRVTT_train.9k.csv", _csv_text(["video_id"], [[v] for v in ids["train"]]))
    c.text("msrvtt/MSRVTT_train.7k.csv", _csv_text(["video_id"], [[ids["train"][j]] for j in seven_k]))
    c.text("msrvtt/MSRVTT_val.csv", _csv_text(["video_id"], [[v] for v in ids["validate"]]))
    c.text("msrvtt/MSRVTT_JSFUSION_test.csv", _csv_text(["key", "vid_key", "video_id", "sentence"], test_rows))


def _lsmdc_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}.{ms // 60_000 % 60:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _plan_lsmdc(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """Movies of 20-40 consecutive clips; each split has its own movies, as in LSMDC."""
    files = (("training", "LSMDC16_annos_training.csv", sizes.lsmdc_train),
             ("val", "LSMDC16_annos_val.csv", sizes.lsmdc_val),
             ("test", "LSMDC16_challenge_1000_publictect.csv", sizes.lsmdc_test))  # fmt: skip
    adjectives = ("Silent", "Crimson", "Hidden", "Golden", "Broken", "Distant", "Electric", "Paper", "Winter", "Lucky")
    nouns = ("Harbor", "Garden", "Summer", "River", "Machine", "Island", "Letters", "Window", "Horizon", "Station")
    movie_number = 1
    for split, name, n in files:
        rng, lines, i = _rng(seed, "lsmdc", split, "movies"), [], 0
        while i < n:
            movie = f"{movie_number:04d}_{rng.choice(adjectives)}_{rng.choice(nouns)}"
            clock = rng.uniform(30, 120)
            for _ in range(min(rng.randint(20, 40), n - i)):
                scene = _single_scene(seed, "lsmdc", split, i)
                start, end = clock, clock + scene.duration
                clip_id = f"{movie}_{_lsmdc_time(start)}-{_lsmdc_time(end)}"
                sentence = _sentence(_clip_caption(_rng(seed, "lsmdc", split, i, "text"), scene))
                extracted = (max(0.0, start - rng.uniform(0, 0.3)), end + rng.uniform(0, 0.3))
                stamps = map(_lsmdc_time, (start, end, *extracted))
                lines.append("\t".join([clip_id, *stamps, sentence]))
                c.media(f"lsmdc/avi/{movie}/{clip_id}.avi", "avi", scene)
                c.captions.append(sentence)
                clock, i = end + rng.uniform(1, 30), i + 1
            movie_number += 1
        c.text(f"lsmdc/{name}", "".join(line + "\n" for line in lines))


def _segmented_scene(seed: int, dataset: str, split: str, index: int, didemo: bool) -> Scene:
    """A clip chaining 2-4 motions: random segment lengths (ActivityNet) or fixed units (DiDeMo)."""
    rng = _rng(seed, dataset, split, index)
    look, canvas = _sample_look(rng), _sample_canvas(rng)
    if didemo:
        unit = round(DIDEMO_SEGMENT_SECONDS * canvas.fps)
        frames = [j * unit for j in range(rng.randint(2, 4) + 1)]
    else:
        frames = _cut_frames(rng, canvas)
    return _plan_scene(rng, look, canvas, frames, None)


def _plan_activitynet(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """`v_` + 11 YouTube-id characters; consecutive timestamps, one sentence per segment."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    splits = (("train", "train.json", sizes.activitynet_train), ("val_1", "val_1.json", sizes.activitynet_val))
    for split, name, n in splits:
        annotations = {}
        for i in range(n):
            scene = _segmented_scene(seed, "activitynet", split, i, didemo=False)
            rng = _rng(seed, "activitynet", split, i, "text")
            video_id = "v_" + "".join(rng.choices(alphabet, k=11))
            times = [k[0] / scene.canvas.fps for k in scene.keyframes[:-1]] + [scene.duration]
            sentences = _segment_texts(rng, scene, paragraph=True)
            annotations[video_id] = {"duration": round(scene.duration, 2),
                                     "timestamps": [[round(a, 2), round(b, 2)] for a, b in zip(times, times[1:])],
                                     "sentences": sentences}  # fmt: skip
            c.media(f"activitynet/videos/{video_id}.mp4", "mp4", scene)
            c.captions += sentences
        c.text(f"activitynet/{name}", _json_text(annotations))


def _plan_didemo(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """One entry per segment; `times` lists four annotators' [start, end] unit indices
    (inclusive), as in the real files, here all agreeing on the segment described."""
    annotation_id = 0
    for split, n in (("train", sizes.didemo_train), ("val", sizes.didemo_val), ("test", sizes.didemo_test)):
        entries = []
        for i in range(n):
            scene = _segmented_scene(seed, "didemo", split, i, didemo=True)
            rng = _rng(seed, "didemo", split, i, "text")
            user, photo = f"{rng.randrange(10**7, 10**8)}@N{rng.randrange(10):02d}", rng.randrange(10**9, 10**10)
            stem = f"{user}_{photo}_{rng.getrandbits(40):010x}"  # Flickr-style, like the real names
            for j, description in enumerate(_segment_texts(rng, scene, paragraph=False)):
                entries.append({"annotation_id": annotation_id, "description": description, "video": f"{stem}.mp4",
                                "times": [[j, j]] * 4, "num_segments": len(scene.motions),
                                "dl_link": f"https://example.com/didemo/{stem}"})  # fmt: skip
                annotation_id += 1
                c.captions.append(description)
            c.media(f"didemo/videos/{stem}.mp4", "mp4", scene)
        c.text(f"didemo/{split}_data.json", _json_text(entries))


def _action_scene(seed: int, dataset: str, motion: str, index: int, look: Look | None = None) -> Scene:
    """A one-motion clip of a given class; circles are excluded from `rotate`."""
    rng = _rng(seed, dataset, motion, index)
    shapes = tuple(s for s in SHAPES if motion in _allowed_motions(s))
    look = look or _sample_look(rng, shapes)
    canvas = _sample_canvas(rng)
    return _plan_scene(rng, look, canvas, _single_frames(rng, canvas), motion)


def _plan_hmdb51(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """Split file lines `name.avi 1|2|0` (train / test / unused): ~30% test, ~10% unused."""
    n = sizes.action_per_class
    for motion in MOTIONS:
        order = list(range(n))
        _rng(seed, "hmdb51", motion, "split").shuffle(order)
        n_test, n_unused = max(1, round(0.3 * n)), n // 10
        label = {j: "2" if r < n_test else "0" if r < n_test + n_unused else "1" for r, j in enumerate(order)}
        lines = []
        for j in range(n):
            scene = _action_scene(seed, "hmdb51", motion, j)
            name = f"shapes_demo_{j:03d}_{motion}_f_nm_np{scene.look.count}_fr_med_0.avi"
            c.media(f"hmdb51/videos/{motion}/{name}", "avi", scene)
            lines.append(f"{name} {label[j]}\n")
        c.text(f"hmdb51/splits/{motion}_test_split1.txt", "".join(lines))


def _plan_ucf101(c: _Corpus, seed: int, sizes: DemoSizes) -> None:
    """Groups (gNN) share a look like UCF's groups share actor and scene; split 1 tests on
    the first ~28% of the groups (real: groups 1-7 of 25), trains on the rest."""
    n = sizes.action_per_class
    per_group = min(4, max(1, n // 2))
    n_groups = math.ceil(n / per_group)
    test_groups = max(1, round(0.28 * n_groups))
    class_ind, train, test = [], [], []
    for number, motion in enumerate(MOTIONS, start=1):
        name = UCF_CLASSES[motion]
        class_ind.append(f"{number} {name}\n")
        shapes = tuple(s for s in SHAPES if motion in _allowed_motions(s))
        for j in range(n):
            group, clip = j // per_group + 1, j % per_group + 1
            look = _sample_look(_rng(seed, "ucf101", motion, "group", group), shapes)
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
            c.media(f"ucf101/UCF-101/{rel}", "avi", _action_scene(seed, "ucf101", motion, j, look))
            (test.append(f"{rel}\n") if group <= test_groups else train.append(f"{rel} {number}\n"))
    c.text("ucf101/ucfTrainTestlist/classInd.txt", "".join(class_ind))
    c.text("ucf101/ucfTrainTestlist/trainlist01.txt", "".join(train))
    c.text("ucf101/ucfTrainTestlist/testlist01.txt", "".join(test))


def _plan_corpus(root: Path, seed: int, sizes: DemoSizes) -> _Corpus:
    corpus = _Corpus(root)
    for plan in (_plan_webvid, _plan_cc3m, _plan_msrvtt, _plan_lsmdc, _plan_activitynet, _plan_didemo):
        plan(corpus, seed, sizes)
    for plan in (_plan_hmdb51, _plan_ucf101):
        plan(corpus, seed, sizes)
    return corpus


# ----------------------------------------------------------------------------- files


def _train_tokenizer(lines: list[str], out: Path) -> None:
    """Lowercase WordPiece with BERT's special tokens, saved so that
    `AutoTokenizer.from_pretrained(out)` loads it as for distilbert-base-uncased.

    The vocabulary is every word of the corpus (most frequent first, ties alphabetical),
    after the special tokens and every character, plain and as a `##` continuation, so an
    unseen word splits into characters instead of becoming [UNK]. It is derived directly
    rather than with `WordPieceTrainer`, whose merge order breaks ties through hash-seeded
    maps and so changes token ids from one process to the next: the same seed must give the
    same token ids.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(w for line in lines for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({ch for word in counts for ch in word})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted((w for w in counts if w not in chars), key=lambda w: (-counts[w], w))
    vocab = {token: i for i, token in enumerate(specials + chars + [f"##{ch}" for ch in chars] + words)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.decoder = decoders.WordPiece()
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=True, model_max_length=512)
    fast.save_pretrained(str(out))


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _prepare_root(root: Path, config: dict) -> bool:
    """Mark the run as partial; return whether it resumes a run of the same settings.

    A previous demo corpus (recognised by its marker) of other settings is removed so no
    stale files survive; folders without our marker are never deleted.
    """
    previous = _read_json(root / DONE_FILE) or _read_json(root / PARTIAL_FILE)
    (root / DONE_FILE).unlink(missing_ok=True)
    if previous is not None and previous != config:
        for name in OWNED_DIRS:
            shutil.rmtree(root / name, ignore_errors=True)
    _write_text(root / PARTIAL_FILE, json.dumps(config) + "\n")
    return previous == config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic demo corpus in the real datasets' layouts.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a few items per split, for tests")
    args = parser.parse_args(argv)
    sizes = DemoSizes.tiny() if args.tiny else DemoSizes()
    print(generate_demo_corpus(args.root, seed=args.seed, sizes=sizes, workers=args.workers))


if __name__ == "__main__":
    main()
