import pytest
import torch

from vtr.objectives.masking import (
    attention_guided_masks,
    attention_sampled_masks,
    blockwise_mask,
    make_mask,
    num_masked,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", ["random", "tube", "blockwise"])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.75, 1.0])
def test_exact_ratio_per_frame(kind, ratio):
    mask = make_mask(kind, 16, 3, (7, 7), ratio, gen())
    assert mask.shape == (16, 3, 49) and mask.dtype == torch.bool
    assert (mask.sum(-1) == num_masked(49, ratio)).all()


@pytest.mark.parametrize("kind", ["tube", "blockwise"])
def test_tube_masks_repeat_over_frames(kind):
    mask = make_mask(kind, 8, 4, (8, 8), 0.5, gen())
    assert (mask == mask[:, :1]).all()


def test_random_masks_differ_across_frames_and_samples():
    mask = make_mask("random", 8, 4, (8, 8), 0.5, gen())
    assert not (mask == mask[:, :1]).all()
    assert not (mask == mask[:1]).all()


def test_seeded():
    for kind in ("random", "tube", "blockwise"):
        assert make_mask(kind, 4, 2, (6, 6), 0.4, gen(3)).equal(make_mask(kind, 4, 2, (6, 6), 0.4, gen(3)))
        assert not make_mask(kind, 4, 2, (6, 6), 0.4, gen(3)).equal(make_mask(kind, 4, 2, (6, 6), 0.4, gen(4)))


def _masked_neighbour_fraction(mask, h, w):
    grid = mask.reshape(-1, h, w).float()
    pad = torch.nn.functional.pad(grid, (1, 1, 1, 1))
    neighbours = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]
    return (neighbours * grid).sum() / (grid.sum() * 4)


def test_blockwise_masks_are_made_of_rectangles():
    """Blocks: a hidden patch's neighbours are far more often hidden than under random masking."""
    block = blockwise_mask(64, 1, (14, 14), 0.4, gen())
    rand = make_mask("random", 64, 1, (14, 14), 0.4, gen())
    assert _masked_neighbour_fraction(block, 14, 14) > 0.7
    assert _masked_neighbour_fraction(rand, 14, 14) < 0.5


def test_blockwise_single_block_is_a_filled_rectangle():
    # Target 4 with minimum block 4: the one block drawn is a rectangle (maybe cut in raster order
    # only when it is larger than 4, which its sampled area prevents).
    mask = blockwise_mask(200, 1, (10, 10), 0.04, gen())[:, 0].reshape(200, 10, 10)
    for m in mask:
        rows, cols = m.nonzero(as_tuple=True)
        box = m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() or box.sum() == 4  # a full rectangle, or a raster-cut L of exactly 4


def test_attention_guided_masks_hide_the_planted_high_attention_patches():
    b, t, n = 3, 2, 16
    attn = torch.rand(b, t, n)
    planted = torch.zeros(b, t, n, dtype=torch.bool)
    planted[..., [1, 4, 6, 9, 11, 12, 14, 15]] = True
    attn = attn + planted * 10  # the planted half has the highest attention
    high, high_mask, low_mask = attention_guided_masks(attn, rho=0.5, ratio=0.25, generator=gen())
    assert high.equal(planted)
    assert (high_mask.sum(-1) == 4).all() and (low_mask.sum(-1) == 4).all()
    assert not (high_mask & ~planted).any()  # hidden patches all high-informed
    assert not (low_mask & planted).any()


def _sampled(attn, seed, rho=0.5, ratio=0.5):
    return attention_sampled_masks(attn, rho=rho, ratio=ratio, generator=gen(seed))


def test_sampled_masks_are_random_at_rho_equal_to_the_ratio():
    # The split at rho == ratio hides whole sets: the same complementary masks for every seed.
    attn = torch.rand(4, 4, 16, generator=gen(100))
    for draw in (attention_guided_masks, attention_sampled_masks):
        masks = [draw(attn, 0.5, 0.5, gen(s))[1:] for s in range(5)]
        differ = any(not h.equal(masks[0][0]) or not lo.equal(masks[0][1]) for h, lo in masks)
        complements = all(h.equal(~lo) for h, lo in masks)
        assert (differ, complements) == ((True, False) if draw is attention_sampled_masks else (False, True))


@pytest.mark.parametrize("rho, ratio", [(0.5, 0.5), (0.25, 0.75), (0.75, 0.25), (0.5, 0.0), (0.5, 1.0)])
def test_sampled_masks_hide_the_requested_count_per_frame(rho, ratio):
    attn = torch.rand(3, 2, 49, generator=gen(1)).softmax(-1)
    attn[0, 0] = 0  # all-zero attention still leaves a valid draw
    informed, high_mask, low_mask = _sampled(attn, 0, rho, ratio)
    assert (high_mask.sum(-1) == num_masked(49, ratio)).all() and (low_mask.sum(-1) == num_masked(49, ratio)).all()
    assert (informed.sum(-1) == num_masked(49, rho)).all()


def test_sampled_high_mask_hides_more_top_attention_patches_than_the_low_mask():
    b, t, n, draws = 4, 2, 16, 200
    attn = torch.rand(b, t, n, generator=gen(7)).softmax(-1)
    top = torch.zeros(b, t, n, dtype=torch.bool)
    top.scatter_(-1, attn.topk(n // 2, dim=-1).indices, True)  # counted independently of the module
    high_hits = low_hits = 0
    for seed in range(draws):
        _, high_mask, low_mask = _sampled(attn, seed)
        high_hits += (high_mask & top).sum().item()
        low_hits += (low_mask & top).sum().item()
    hidden = draws * b * t * num_masked(n, 0.5)
    assert high_hits / hidden > low_hits / hidden + 0.1
