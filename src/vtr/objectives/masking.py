"""Patch masks over (frames x patches) for masked visual modeling.

Every generator returns a boolean (B, T, N) tensor, True = hidden, with exactly
``round(ratio * N)`` hidden patches per frame (so ``ratio * T * N`` per clip). They take an
explicit ``torch.Generator``: the training step seeds it from (seed, step, rank), which makes a
resumed run draw the same masks as an uninterrupted one without storing RNG state.

- ``random``: independent patches per frame.
- ``tube``: one random spatial mask repeated over all frames (VideoMAE).
- ``blockwise``: BEiT-style random rectangles, unioned until the ratio is reached, repeated over
  frames (our reading of MILES' space-time masks). Batched: many candidate rectangles are drawn
  at once and the union grows in draw order; the last rectangle is cut off in raster order so
  the count is exact.
- ``attention_guided_masks``: MASCOT's split of patches into high- and low-informed ones by the
  [CLS] attention, and a mask drawn from each set (``masking=split``).
- ``attention_sampled_masks``: MASCOT's two masks drawn in proportion to the [CLS] attention and
  to its reversed ranking (``masking=sampled``); random at every ``rho`` and ratio.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def num_masked(num_patches: int, ratio: float) -> int:
    return int(round(ratio * num_patches))


def _lowest_k(scores: Tensor, k: int) -> Tensor:
    """Boolean mask of the k lowest scores along the last dim."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        mask.scatter_(-1, scores.argsort(dim=-1)[..., :k], True)
    return mask


def random_mask(batch: int, frames: int, grid: tuple[int, int], ratio: float, generator: torch.Generator) -> Tensor:
    n = grid[0] * grid[1]
    noise = torch.rand(batch, frames, n, generator=generator)
    return _lowest_k(noise, num_masked(n, ratio))


def tube_mask(batch: int, frames: int, grid: tuple[int, int], ratio: float, generator: torch.Generator) -> Tensor:
    return random_mask(batch, 1, grid, ratio, generator).expand(-1, frames, -1).contiguous()


def blockwise_mask(
    batch: int,
    frames: int,
    grid: tuple[int, int],
    ratio: float,
    generator: torch.Generator,
    min_block: int = 4,
    aspect: float = 0.3,
) -> Tensor:
    h, w = grid
    n = h * w
    target = num_masked(n, ratio)
    candidates = max(8, 4 * math.ceil(target / min_block))
    u = torch.rand(batch, candidates, 4, generator=generator)
    area = min_block + u[..., 0] * (max(target, min_block) - min_block)
    log_aspect = math.log(aspect) + u[..., 1] * 2 * math.log(1 / aspect)
    bh = (area * log_aspect.exp()).sqrt().round().clamp(1, h)
    bw = (area / log_aspect.exp()).sqrt().round().clamp(1, w)
    top = (u[..., 2] * (h - bh + 1)).floor()
    left = (u[..., 3] * (w - bw + 1)).floor()

    rows = torch.arange(h).view(1, 1, h, 1)
    cols = torch.arange(w).view(1, 1, 1, w)
    cover = (
        (rows >= top[..., None, None])
        & (rows < (top + bh)[..., None, None])
        & (cols >= left[..., None, None])
        & (cols < (left + bw)[..., None, None])
    ).flatten(2)  # (B, K, N)
    union = cover.cumsum(dim=1) > 0  # union of the first k+1 rectangles
    counts = union.sum(-1)  # (B, K), non-decreasing in k
    full = (counts <= target).sum(-1)  # rectangles that fit whole
    rows_b = torch.arange(batch)
    taken = torch.where(
        (full > 0)[:, None], union[rows_b, (full - 1).clamp(min=0)], torch.zeros(batch, n, dtype=torch.bool)
    )
    # Part of the next rectangle, in raster order, to reach the exact count.
    missing = target - taken.sum(-1, keepdim=True)
    nxt = cover[rows_b, full.clamp(max=candidates - 1)] & ~taken
    taken |= nxt & (nxt.cumsum(-1) <= missing)
    # Rarely the candidates run out before the target: top up with random patches.
    missing = target - taken.sum(-1, keepdim=True)
    if (missing > 0).any():
        noise = torch.rand(batch, n, generator=generator) + taken.float() * 2  # visible patches first
        order = noise.argsort(-1).argsort(-1)
        taken |= order < missing
    return taken[:, None, :].expand(-1, frames, -1).contiguous()


MASKS = {"random": random_mask, "tube": tube_mask, "blockwise": blockwise_mask}


def make_mask(
    kind: str, batch: int, frames: int, grid: tuple[int, int], ratio: float, generator: torch.Generator
) -> Tensor:
    return MASKS[kind](batch, frames, grid, ratio, generator)


def informed_patches(cls_attn: Tensor, rho: float) -> Tensor:
    """The ``rho`` fraction of each frame's patches with the highest [CLS] attention."""
    n = cls_attn.shape[-1]
    return ~_lowest_k(cls_attn, n - num_masked(n, rho))


def attention_guided_masks(
    cls_attn: Tensor, rho: float, ratio: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """MASCOT: split patches by [CLS] attention and draw one mask from each part.

    ``cls_attn`` (B, T, N). Per frame, the ``rho`` fraction of patches with the highest attention
    are high-informed. Returns (high_informed, high_mask, low_mask), each (B, T, N) bool:
    ``high_mask`` hides ``ratio * N`` patches drawn at random from the high-informed set first
    (spilling into the low set only if it is smaller than that), ``low_mask`` likewise from the
    low-informed set. When ``rho == ratio`` the draw picks whole sets: both masks are fixed by the
    attention and complement each other, which is why the config requires ``rho > mask_ratio``.
    """
    b, t, n = cls_attn.shape
    high = informed_patches(cls_attn, rho)
    k = num_masked(n, ratio)
    noise = torch.rand(b, t, n, generator=generator).to(cls_attn.device)
    high_mask = _lowest_k(noise - high.float() * 2, k)
    low_mask = _lowest_k(noise + high.float() * 2, k)
    return high, high_mask, low_mask


def _sample_k(weights: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Boolean mask of k patches per row of ``weights`` (R, N) (positive, on the CPU), drawn
    without replacement with probabilities proportional to the weights."""
    mask = torch.zeros_like(weights, dtype=torch.bool)
    if k > 0:
        mask.scatter_(-1, torch.multinomial(weights, k, replacement=False, generator=generator), True)
    return mask


def attention_sampled_masks(
    cls_attn: Tensor, rho: float, ratio: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """MASCOT's masks drawn in proportion to the [CLS] attention, so both stay random at any
    ``rho`` and ratio (the split's are fixed, and complements, when ``rho == ratio``).

    ``cls_attn`` (B, T, N). Returns (high_informed, high_mask, low_mask), each (B, T, N) bool, with
    ``high_informed`` the top-``rho`` patches of each frame (the completion loss counts those).
    ``high_mask`` hides ``ratio * N`` patches per frame drawn with probability proportional to the
    attention (floored, so that a zero weight cannot make the draw impossible); ``low_mask`` as many
    drawn proportionally to the reversed rank (the least attended patch weighs N, the most attended
    1), which favours background without depending on how peaked the attention is.
    """
    b, t, n = cls_attn.shape
    k = num_masked(n, ratio)
    attn = cls_attn.detach().float().cpu().reshape(b * t, n).clamp_min(0)
    high_weights = attn + attn.amax(-1, keepdim=True).clamp_min(1e-12) * 1e-3
    low_weights = attn.argsort(-1, descending=True).argsort(-1).float() + 1  # rank 1 = most attended
    high_mask, low_mask = (
        _sample_k(w, k, generator).reshape(b, t, n).to(cls_attn.device) for w in (high_weights, low_weights)
    )
    return informed_patches(cls_attn, rho), high_mask, low_mask
