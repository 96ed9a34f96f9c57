"""Pictures for TensorBoard, drawn with numpy and PIL: frame strips, patch masks, attention heat
maps, retrieval examples. Every picture is an (H, W, 3) uint8 array.

Images here are for looking at, so the layout is plain: rows stacked top to bottom with ``PAD``
pixels of background between them, a strip is a clip's frames side by side with no gap (a
patch's block in frame t of a strip starts at ``t * W + col * patch``), and text sits in bands
of ``LINE`` pixels a line above what it describes.
"""

from __future__ import annotations

import textwrap

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from data_modules.video import IMAGENET_MEAN, IMAGENET_STD

PAD = 4  # background pixels between stacked rows and between side-by-side strips
LINE = 14  # pixels per line of text
BORDER = 3  # the right/wrong frame around a retrieved clip
BACKGROUND = (255, 255, 255)
HIDDEN_TINT = np.array([0, 0, 80], dtype=np.float32)  # hidden patches: darkened towards navy
HIDDEN_ALPHA = 0.65  # weight of the tint in a hidden patch
RIGHT = (0, 200, 0)
WRONG = (220, 0, 0)


def frames_uint8(video: Tensor) -> np.ndarray:
    """A normalised clip (T, 3, H, W) back to displayable (T, H, W, 3) uint8."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = (video.detach().float().cpu() * std + mean).clamp(0, 1) * 255
    return pixels.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def strip(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) frames side by side: (H, T * W, 3)."""
    return np.concatenate(list(frames), axis=1)


def _blocks(values: np.ndarray, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Per-patch values (T, N) blown up to per-pixel (T, H, W): each patch fills its block."""
    t = values.shape[0]
    ph, pw = size[0] // grid[0], size[1] // grid[1]
    return np.kron(values.reshape(t, *grid), np.ones((1, ph, pw), dtype=values.dtype))


def overlay_mask(frames: np.ndarray, mask: Tensor, grid: tuple[int, int]) -> np.ndarray:
    """Frames (T, H, W, 3) with the hidden patches of ``mask`` (T, N), True = hidden, tinted."""
    hidden = _blocks(mask.cpu().numpy(), grid, frames.shape[1:3])[..., None]
    tinted = frames * (1 - HIDDEN_ALPHA) + HIDDEN_TINT * HIDDEN_ALPHA
    return np.where(hidden, tinted.round(), frames).astype(np.uint8)


def jet(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] to a jet-like colour map (blue - cyan - yellow - red), (..., 3) uint8."""
    x = np.clip(x, 0, 1)[..., None]
    rgb = np.clip(1.5 - np.abs(4 * x - np.array([3.0, 2.0, 1.0])), 0, 1)
    return (rgb * 255).round().astype(np.uint8)


def attention_heat(frames: np.ndarray, attn: Tensor, grid: tuple[int, int]) -> np.ndarray:
    """Frames (T, H, W, 3) under a heat map of the [CLS]-to-patch attention (T, N), each frame's
    scaled to its own range (the attention's spread, not its level, is what tells foreground)."""
    a = attn.float().cpu().numpy()
    low, high = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
    heat = jet(_blocks((a - low) / np.maximum(high - low, 1e-12), grid, frames.shape[1:3]))
    return (0.5 * frames + 0.5 * heat).round().astype(np.uint8)


def text_band(text: str, width: int) -> np.ndarray:
    """``text`` wrapped to ``width`` pixels on the background, ``LINE`` pixels a line."""
    font = ImageFont.load_default()
    chars = max(1, width // max(1, int(font.getlength("n"))))
    lines = [line for paragraph in text.split("\n") for line in textwrap.wrap(paragraph, chars) or [""]]
    image = Image.new("RGB", (width, LINE * len(lines)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((0, i * LINE), line, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def _pad_to_width(image: np.ndarray, width: int) -> np.ndarray:
    fill = np.full((image.shape[0], width - image.shape[1], 3), BACKGROUND, dtype=np.uint8)
    return np.concatenate([image, fill], axis=1)


def stack(rows: list[np.ndarray]) -> np.ndarray:
    """Rows top to bottom, left-aligned, ``PAD`` pixels apart, padded to the widest."""
    width = max(r.shape[1] for r in rows)
    gap = np.full((PAD, width, 3), BACKGROUND, dtype=np.uint8)
    out = [part for r in rows for part in (_pad_to_width(r, width), gap)][:-1]
    return np.concatenate(out, axis=0)


def side_by_side(images: list[np.ndarray]) -> np.ndarray:
    """Images left to right, top-aligned, ``PAD`` pixels apart."""
    height = max(i.shape[0] for i in images)
    parts = []
    for image in images:
        below = np.full((height - image.shape[0], image.shape[1], 3), BACKGROUND, dtype=np.uint8)
        parts += [np.concatenate([image, below]), np.full((height, PAD, 3), BACKGROUND, dtype=np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def framed(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """``image`` inside a ``BORDER``-pixel frame of ``colour``."""
    out = np.full((image.shape[0] + 2 * BORDER, image.shape[1] + 2 * BORDER, 3), colour, dtype=np.uint8)
    out[BORDER:-BORDER, BORDER:-BORDER] = image
    return out


def ranked_videos(
    text: Tensor, video: Tensor, video_ids: list[str], relevant: set[str], k: int = 3
) -> list[tuple[str, float, bool]]:
    """The ``k`` videos nearest a caption embedding (E,) among ``video`` (V, E), best first, as
    (id, cosine, whether the id is one of the caption's ``relevant`` videos)."""
    sim = torch.nn.functional.cosine_similarity(video.float(), text.float()[None], dim=-1)
    scores, order = sim.topk(min(k, len(video_ids)))
    return [(video_ids[i], float(s), video_ids[i] in relevant) for s, i in zip(scores.tolist(), order.tolist())]


def retrieval_example(caption: str, ranked: list[tuple[str, float, bool]], strips: list[np.ndarray]) -> np.ndarray:
    """A caption above its retrieved clips, best first, each framed green if it is the caption's
    video (``ranked`` holds id, cosine, correct) and red if not."""
    clips = [framed(s, RIGHT if ok else WRONG) for s, (_, _, ok) in zip(strips, ranked)]
    row = side_by_side(clips)
    scores = "  ".join(f"#{i + 1} {vid} ({score:.2f})" for i, (vid, score, _) in enumerate(ranked))
    return stack([text_band(f'"{caption}"\n{scores}', row.shape[1]), row])
