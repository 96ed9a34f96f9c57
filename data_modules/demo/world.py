"""The demo world: colours, shapes, sizes, motions, and the records a clip is planned into.

Each clip shows one to three shapes of one kind (circle, square, triangle, star, diamond, cross),
in one of six well-separated colours, small or large, on a plain black, gray or white background
(slightly tinted per clip). All shapes perform one motion: move left/right/up/down, grow, shrink,
rotate (never circles) or stay still. Frames are 64-128 px a side (even, often non-square),
8-10 fps, 2-4 s. Every random choice comes from ``keyed_rng``, so an item's content depends on
its key alone, never on generation order or on the number of workers.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import NamedTuple

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
SUPERSAMPLE = 2  # shapes are drawn this many times larger, then box-downsampled (anti-aliased edges)

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


@dataclass(frozen=True)
class Look:
    """Appearance shared by all shapes of an item: what the noun phrase says."""

    count: int
    size: str
    colour: str
    shape: str


class Part(NamedTuple):
    """One shape of a scene whose shapes differ (the binding split): its kind, its colour,
    and whether it performs the scene's motion or stays still at scale 1."""

    shape: str
    colour: str
    moves: bool


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
    linearly. Keyframe k to k+1 is segment k, performing `motions[k]`. With `parts`, each
    shape has its own kind and colour and only those that `move` follow the keyframes; `look`
    then gives the count and size alone.
    """

    look: Look
    canvas: Canvas
    centres: Points
    angles: tuple[float, ...]
    radius: float  # circumradius in px at scale 1
    motions: tuple[str, ...]
    keyframes: tuple[Keyframe, ...]
    parts: tuple[Part, ...] | None = None

    @property
    def shape_parts(self) -> tuple[Part, ...]:
        """Each shape's kind, colour and whether it moves: `parts`, else all alike as `look` says."""
        return self.parts or (Part(self.look.shape, self.look.colour, True),) * len(self.centres)

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


def keyed_rng(seed: int, *key: object) -> random.Random:
    """Independent RNG per (seed, dataset, split, index, purpose): order-free determinism."""
    digest = hashlib.blake2b("/".join(map(str, (seed, *key))).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def allowed_motions(shape: str) -> tuple[str, ...]:
    """A rotating circle looks static, so circles never rotate."""
    return tuple(m for m in MOTIONS if not (m == "rotate" and shape == "circle"))


def sample_look(rng: random.Random, shapes: tuple[str, ...] = SHAPES) -> Look:
    count = rng.choices((1, 2, 3), weights=(4, 3, 3))[0]
    return Look(count, rng.choice(tuple(SIZES)), rng.choice(tuple(COLOURS)), rng.choice(shapes))


def sample_canvas(rng: random.Random) -> Canvas:
    """Even frame sides (yuv420p), 8-10 fps, a neutral background with a slight tint."""
    background = rng.choice(tuple(BACKGROUNDS))
    rgb = tuple(min(255, max(0, c + rng.randint(-12, 12))) for c in BACKGROUNDS[background])
    return Canvas(2 * rng.randint(32, 64), 2 * rng.randint(32, 64), rng.choice(FPS_CHOICES), background, rgb)
