"""TensorBoard pictures: mask overlays of MILES / MASCOT and retrieval examples."""

import io
from pathlib import Path

import numpy as np
import torch
from helpers.runs import tiny_overrides
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from data_modules.video import IMAGENET_MEAN, IMAGENET_STD
from vtr import visualize as vis
from vtr.build import build_datamodule, build_module, run
from vtr.config import load_config, resolve_run_dir
from vtr.objectives.masking import attention_sampled_masks, make_mask
from vtr.objectives.snapshot import snapshot_forward

ROOT = Path(__file__).resolve().parents[1]


def _images(run_dir: Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0}).Reload()
    return {
        tag: [
            (e.step, np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB"))) for e in acc.Images(tag)
        ]
        for tag in acc.Tags()["images"]
    }


def _tiny_run(recipe: str, root: Path, out: Path, extra: list[str] = ()):
    cfg = load_config(
        ROOT / "experiments/pretrain" / recipe, tiny_overrides(root, out, steps=2) + ["data.test=[]", *extra]
    )
    run(cfg)
    return cfg, resolve_run_dir(cfg).parent / "version_0"


def _first_training_clips(cfg, count: int = 4) -> torch.Tensor:
    """The first readable clips of the first training set, read as the callback promises (seeded by ``seed``)."""
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    dataset = datamodule.train_sets[cfg.data.train[0]]
    items = [dataset[(i, cfg.seed)] for i in range(len(dataset))]
    return torch.stack([item["video"] for item in items if item is not None][:count])


def _display(clips: torch.Tensor) -> np.ndarray:
    """(B, T, 3, H, W) normalised -> (B, H, T*W, 3) pixel values, in float64."""
    x = clips.double() * torch.tensor(IMAGENET_STD, dtype=torch.float64).view(3, 1, 1)
    x = (x + torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(3, 1, 1)).clamp(0, 1) * 255
    b, t, _, h, w = x.shape
    return x.permute(0, 3, 1, 4, 2).reshape(b, h, t * w, 3).numpy()


def _rows(image: np.ndarray, count: int, height: int) -> list[np.ndarray]:
    """The last ``count`` rows of ``height`` pixels of a stacked panel (a title band sits above them)."""
    bottom = image.shape[0]
    tops = [bottom - (count - k) * height - (count - 1 - k) * vis.PAD for k in range(count)]
    return [image[top : top + height] for top in tops]


def _hidden_blocks(plain: np.ndarray, shown: np.ndarray, frames: int, grid: tuple[int, int], patch: int) -> np.ndarray:
    """(T, N) bool: the patch blocks where ``shown`` differs from ``plain``."""
    gh, gw = grid
    width = gw * patch
    out = np.zeros((frames, gh * gw), dtype=bool)
    for t in range(frames):
        for r in range(gh):
            for c in range(gw):
                ys, xs = slice(r * patch, (r + 1) * patch), slice(t * width + c * patch, t * width + (c + 1) * patch)
                out[t, r * gw + c] = not np.array_equal(plain[ys, xs], shown[ys, xs])
    return out


def test_miles_run_logs_its_mask_on_fixed_clips_and_retrieval_examples(tiny_demo_root, tmp_path):
    cfg, run_dir = _tiny_run("demo.yaml", tiny_demo_root, tmp_path)
    images = _images(run_dir)
    assert set(images) == {"masks/mvm", "retrieval/examples"}  # no mascot, and nothing at the sanity check
    [(step, panel)] = images["masks/mvm"]
    assert step == 2
    clips = _first_training_clips(cfg)
    b, t, _, h, w = clips.shape
    patch = cfg.model.video.patch_size
    grid = (h // patch, w // patch)
    mvm = cfg.model.mvm
    mask = make_mask(mvm.mask_type, b, t, grid, mvm.mask_ratio, torch.Generator().manual_seed(cfg.seed))
    assert mvm.mask_type == "blockwise" and 0 < mask.sum() < mask.numel()
    assert panel.shape[1] == t * w
    rows = _rows(panel, 2 * b, h)
    expected = _display(clips)
    for i in range(b):
        plain, shown = rows[2 * i].astype(np.float64), rows[2 * i + 1]
        assert np.abs(plain - expected[i]).max() <= 1  # the clip's own frames, un-normalised
        hidden = _hidden_blocks(rows[2 * i], shown, t, grid, patch)
        assert np.array_equal(hidden, mask[i].numpy()), i  # tinted exactly where the mask hides
        darker = shown.astype(np.float64).sum(-1) < plain.sum(-1) - 1
        assert darker.any()
    [(step, examples)] = images["retrieval/examples"]
    assert step == 2 and examples.ndim == 3
    frame = [(examples == colour).all(-1).sum() for colour in (vis.RIGHT, vis.WRONG)]
    assert sum(frame) > 0  # every retrieved clip is framed right or wrong


def test_mascot_run_logs_high_and_low_masks_of_the_snapshot_attention(tiny_demo_root, tmp_path):
    # attention-sampled masks (random ones, the default, ignore the attention the panel shows)
    cfg, run_dir = _tiny_run("demo_mascot.yaml", tiny_demo_root, tmp_path, ["model.mascot.masking=sampled"])
    images = _images(run_dir)
    assert set(images) == {"masks/mascot", "retrieval/examples"}
    [(step, panel)] = images["masks/mascot"]
    assert step == 2
    # The snapshot at that validation (the run's last step) from the checkpoint, its masks by hand.
    module = build_module(cfg)
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    module.load_state_dict(ckpt["state_dict"])
    clips = _first_training_clips(cfg)
    b, t, _, h, w = clips.shape
    patch = cfg.model.video.patch_size
    grid = (h // patch, w // patch)
    attn = snapshot_forward(module.snapshot, clips, with_attention=True).cls_attn
    m = cfg.model.mascot
    informed, high, low = attention_sampled_masks(attn, m.rho, m.mask_ratio, torch.Generator().manual_seed(cfg.seed))
    rows = _rows(panel, 4 * b, h)
    for i in range(b):
        plain = rows[4 * i]
        assert np.array_equal(_hidden_blocks(plain, rows[4 * i + 1], t, grid, patch), high[i].numpy()), i
        assert np.array_equal(_hidden_blocks(plain, rows[4 * i + 2], t, grid, patch), low[i].numpy()), i
        # the heat map: the most attended patch of each frame is the red end of the map, the least the blue
        heat = rows[4 * i + 3].astype(np.float64) - plain / 2
        for f in range(t):
            top, bottom = attn[i, f].argmax().item(), attn[i, f].argmin().item()
            for n, channel in ((top, 0), (bottom, 2)):
                r, c = divmod(n, grid[1])
                block = heat[r * patch : (r + 1) * patch, f * w + c * patch : f * w + (c + 1) * patch]
                assert block[..., channel].mean() > block[..., 2 - channel].mean() + 20, (i, f, channel)
    assert (high & informed).sum() > (low & informed).sum()  # the high mask favours the attended patches


def test_log_images_false_writes_no_images(tiny_demo_root, tmp_path):
    _, run_dir = _tiny_run("demo.yaml", tiny_demo_root, tmp_path, ["log_images=false"])
    assert _images(run_dir) == {}


def test_retrieval_example_ranks_by_cosine_and_frames_only_the_captions_video_green():
    video_ids = ["a", "b", "c", "d", "e"]
    # Unit-norm by hand; cosines with the caption (1, 0): a 0, b 0.6, c 0.8, d -1, e 1.
    video = torch.tensor([[0.0, 1.0], [0.6, 0.8], [0.8, 0.6], [-1.0, 0.0], [1.0, 0.0]])
    ranked = vis.ranked_videos(torch.tensor([2.0, 0.0]), video, video_ids, relevant={"c"})
    assert [vid for vid, _, _ in ranked] == ["e", "c", "b"]
    assert np.allclose([s for _, s, _ in ranked], [1.0, 0.8, 0.6])
    assert [ok for _, _, ok in ranked] == [False, True, False]
    # a clip of one flat colour each (no grey of the black caption's antialiasing), to find it in the picture
    colour = {"e": (10, 160, 250), "c": (250, 160, 10), "b": (160, 10, 250)}
    strips = [np.full((8, 16, 3), colour[vid], dtype=np.uint8) for vid, _, _ in ranked]
    image = vis.retrieval_example("a caption", ranked, strips)
    lefts = []
    for vid, _, ok in ranked:
        ys, xs = np.nonzero((image == colour[vid]).all(-1))
        assert len(ys) == 8 * 16  # the whole clip, once
        top, left = ys.min(), xs.min()
        lefts.append(left)
        expected = (0, 200, 0) if ok else (220, 0, 0)
        assert tuple(image[top - 1, left - 1]) == expected and tuple(image[top + 8, left + 16]) == expected, vid
    assert lefts == sorted(lefts)  # best first, left to right
    assert not (image == (0, 200, 0)).all(-1)[:, lefts[0] - 3 : lefts[1] - 4].any()  # only one green frame
