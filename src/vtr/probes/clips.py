"""Held-out demo clips as the model sees them at test time, with what covers each patch.

Frames are drawn straight from the scene (no codec round trip: the probes ask what the features
hold, not how the reader copes) at the frames our test-time sampling takes, through our test-time
transform. The per-pixel coverage of each shape (``render.draw_coverage``) goes through the same
geometry and is averaged over each patch. A patch is labelled with the kind and colour of the shape
that covers most of it where shapes cover at least ``MIN_COVER`` of it, else as background: at the
demo's 16-px patches a shape rarely covers half a patch (under 2% of the patches of held-out clips),
so a majority rule would leave almost no shape patches to probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2

from data_modules.demo.render import draw_coverage, draw_frame, state_at
from data_modules.demo.world import COLOURS, SHAPES, Scene
from data_modules.video import build_transform, eval_geometry, sample_frame_indices

BACKGROUND = -1
MIN_COVER = 0.25
COLOUR_NAMES = tuple(COLOURS)


@dataclass
class ProbeClips:
    """``video`` (B, T, 3, H, W) normalised as for the model; per patch, in the encoder's token
    order (frame by frame, rows of the patch grid): ``kind`` and ``colour`` indices into
    ``SHAPES`` / ``COLOUR_NAMES``, ``BACKGROUND`` where the background covers most of it."""

    video: Tensor
    kind: Tensor  # (B, T*N) long
    colour: Tensor  # (B, T*N) long


def patch_owners(coverage: Tensor, patch_size: int) -> Tensor:
    """(T, 1 + shapes, H, W) coverage -> (T*N,) owner of each patch: 1 + i for shape i where the
    shapes cover at least ``MIN_COVER`` of it and shape i the most of them, else 0 (background)."""
    per_patch = F.avg_pool2d(coverage, patch_size).flatten(2).transpose(1, 2).flatten(0, 1)  # (T*N, 1 + shapes)
    shapes = per_patch[:, 1:]
    if shapes.shape[1] == 0:
        return torch.zeros(len(per_patch), dtype=torch.long)
    owner = shapes.argmax(1) + 1
    return torch.where(shapes.sum(1) >= MIN_COVER, owner, 0)


def render_clip(scene: Scene, num_frames: int, input_res: int, patch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """One clip's model input (T, 3, H, W) and its per-patch kind and colour labels."""
    frames = sample_frame_indices(scene.n_frames, num_frames, "uniform")
    states = [state_at(scene.keyframes, t) for t in frames]
    pixels = np.stack([np.asarray(draw_frame(scene, s)) for s in states])
    video = build_transform(input_res, train=False)(torch.from_numpy(pixels).permute(0, 3, 1, 2))
    coverage = torch.from_numpy(np.stack([draw_coverage(scene, s) for s in states]))
    owners = patch_owners(v2.Compose(eval_geometry(input_res))(coverage), patch_size)
    parts = scene.shape_parts
    kinds = torch.tensor([BACKGROUND] + [SHAPES.index(p.shape) for p in parts])
    colours = torch.tensor([BACKGROUND] + [COLOUR_NAMES.index(p.colour) for p in parts])
    return video, kinds[owners], colours[owners]


def render_clips(scenes: list[Scene], num_frames: int, input_res: int, patch_size: int) -> ProbeClips:
    clips = [render_clip(scene, num_frames, input_res, patch_size) for scene in scenes]
    video, kind, colour = (torch.stack(column) for column in zip(*clips))
    return ProbeClips(video, kind, colour)
