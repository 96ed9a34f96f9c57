"""Planning a scene: where the shapes start and what each segment's motion does to them.

A plan is checked before anything is drawn: every state keeps all shapes inside the frame and
apart, a move covers a good part of the frame, a grow or shrink changes the size visibly, so
that a caption's motion is always what the pixels show. Plans are found by rejection sampling.
"""

from __future__ import annotations

import math
import random

from data_modules.demo.world import (
    ACTIVITYNET_SECONDS,
    CLIP_SECONDS,
    DIDEMO_SEGMENT_SECONDS,
    GAP,
    MARGIN,
    MIN_SCALE_FACTOR,
    MIN_SEGMENT_SECONDS,
    MIN_TRAVEL,
    ROTATION_DEG_PER_S,
    SCALE_MAX,
    SCALE_MIN,
    SHAPE_EXTENT,
    SHAPES,
    SIZES,
    START_BAND,
    TRANSLATIONS,
    Canvas,
    Geometry,
    Keyframe,
    Look,
    Points,
    Scene,
    State,
    allowed_motions,
    keyed_rng,
    sample_canvas,
    sample_look,
)


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
        candidates = [first] if not motions else [m for m in allowed_motions(look.shape) if m != motions[-1]]
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


def plan_scene(rng: random.Random, look: Look, canvas: Canvas, frames: list[int], motion: str | None) -> Scene:
    """Lay out a scene whose first segment shows `motion` (random if None); later segments
    (multi-segment clips) get other feasible motions, each different from the one before.

    Rejection sampling; if a crowded layout keeps failing (three large shapes growing on a
    64 px frame), the shapes get 10% smaller and sampling starts again.
    """
    first = motion or rng.choice(allowed_motions(look.shape))
    radius = SIZES[look.size] * min(canvas.width, canvas.height) * SHAPE_EXTENT[look.shape]
    while True:
        for _ in range(100):
            scene = _try_scene(rng, look, canvas, frames, first, radius)
            if scene is not None:
                return scene
        radius *= 0.9


def single_frames(rng: random.Random, canvas: Canvas) -> list[int]:
    n = round(rng.uniform(*CLIP_SECONDS) * canvas.fps)
    return [0, n - 1]


def cut_frames(rng: random.Random, canvas: Canvas) -> list[int]:
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
    rng = keyed_rng(seed, dataset, split, "pair", index // 2)
    look = sample_look(rng)
    motions = rng.sample(allowed_motions(look.shape), 2)
    return look, motions[index % 2]


def single_scene(seed: int, dataset: str, split: str, index: int) -> Scene:
    """A one-motion clip, half of a contrast pair."""
    look, motion = _contrast_pair(seed, dataset, split, index)
    rng = keyed_rng(seed, dataset, split, index)
    canvas = sample_canvas(rng)
    return plan_scene(rng, look, canvas, single_frames(rng, canvas), motion)


def segmented_scene(seed: int, dataset: str, split: str, index: int, didemo: bool) -> Scene:
    """A clip chaining 2-4 motions: random segment lengths (ActivityNet) or fixed units (DiDeMo)."""
    rng = keyed_rng(seed, dataset, split, index)
    look, canvas = sample_look(rng), sample_canvas(rng)
    if didemo:
        unit = round(DIDEMO_SEGMENT_SECONDS * canvas.fps)
        frames = [j * unit for j in range(rng.randint(2, 4) + 1)]
    else:
        frames = cut_frames(rng, canvas)
    return plan_scene(rng, look, canvas, frames, None)


def action_scene(seed: int, dataset: str, motion: str, index: int, look: Look | None = None) -> Scene:
    """A one-motion clip of a given class; circles are excluded from `rotate`."""
    rng = keyed_rng(seed, dataset, motion, index)
    shapes = tuple(s for s in SHAPES if motion in allowed_motions(s))
    look = look or sample_look(rng, shapes)
    canvas = sample_canvas(rng)
    return plan_scene(rng, look, canvas, single_frames(rng, canvas), motion)
