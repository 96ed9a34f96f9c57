"""Test-time protocol: ours, or the released MSR-VTT evaluation's, switch by switch.

Published retrieval numbers depend on choices beyond the model: which frames are decoded, how
they are resized, how long captions may be, what happens to an unreadable video, how ties are
ranked. ``eval_protocol`` (a top-level key) picks a preset for all of them; each switch is also a
key of the ``eval`` section, and one set there (not null) overrides the preset. So
``eval_protocol=released`` reproduces the released numbers, and ``eval_protocol=released
eval.transform=ours`` shows how much that one choice moves them. The switches apply to the test
loop only; validation (checkpoint selection) always runs our pipeline.

Each switch, ours (the default) -> released:

- ``eval.frame_sampling``: ours takes the middle frame of each of k equal segments (``(start +
  end - 1) // 2`` over integer edges ``i * n // k``) and repeats frames of a video shorter than k.
  released takes ``(start + end - 1) // 2`` over ``numpy.linspace(0, n, k + 1).astype(int)``
  segments, then the frame before it (its cv2 reader seeks to ``index - 1``; OpenCV clamps -1 to
  frame 0); a video of n < k frames gives n frames followed by k - n all-zero (normalised) frames.
- ``eval.transform``: ours resizes (antialiased) uint8 frames to 256/224 of the input size,
  centre-crops, resizes to the input size, then converts to float and normalises. released
  converts to float in [0, 1] first, then Resize(256), CenterCrop(256), Resize(input) bilinear
  without antialiasing (the tensor resize of its torchvision), ImageNet normalisation.
- ``eval.caption_truncation``: ours ``cap`` (``data.max_text_length`` tokens, as in training);
  released ``model_max`` (the tokenizer's maximum, 512 for BERT-family models).
- ``eval.unreadable``: ours ``skip`` (dropped and counted); released ``black`` (its "lax"
  loading: one black frame, normalised, then all-zero frames; counted as ``blank_videos``).
- ``eval.precision``: ours ``trainer.precision``; released ``32-true``.
- ``eval.t2v_tie_break`` / ``eval.v2t_tie_break``: ours the top-level ``tie_break``
  (``average``) for both; released ``optimistic`` for text-to-video and ``mean`` (of the tied
  positions, thresholded for R@K) for video-to-text.

Why ours differs: antialiased resizing of uint8 frames is what current torchvision does by
default and avoids the aliasing of a 256 -> 224 (or any) downscale without a low-pass filter;
the off-by-one of the frame reader is a bug, not a choice; a black clip in the test set is a
fake item that still competes for every query, whereas a skipped one is reported; 32 tokens are
what training sees; averaging over ties gives a collapsed model (a constant similarity matrix)
chance-level scores instead of perfect ones (see ``vtr.metrics``). With real-valued scores and
readable videos the tie rules and the unreadable rule change nothing.

``eval.precision`` sets the precision of ``python -m vtr evaluate``; a pre-training or fine-tuning
run tests with the precision it trained with, and the metrics' protocol block says which.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def eval_preset(cfg: DictConfig) -> dict[str, Any]:
    """The ``eval`` values that ``cfg.eval_protocol`` stands for."""
    if cfg.eval_protocol == "released":
        return {
            "frame_sampling": "released",
            "transform": "released",
            "caption_truncation": "model_max",
            "unreadable": "black",
            "precision": "32-true",
            "t2v_tie_break": "optimistic",
            "v2t_tie_break": "mean",
        }
    return {
        "frame_sampling": "ours",
        "transform": "ours",
        "caption_truncation": "cap",
        "unreadable": "skip",
        "precision": cfg.trainer.precision,
        "t2v_tie_break": cfg.tie_break,
        "v2t_tie_break": cfg.tie_break,
    }


def apply_eval_protocol(cfg: DictConfig) -> None:
    """Fill the ``eval`` keys left null from the preset; ``evaluate`` then runs at ``eval.precision``."""
    for key, value in eval_preset(cfg).items():
        if cfg.eval[key] is None:
            cfg.eval[key] = value
    if cfg.task == "evaluate":
        cfg.trainer.precision = cfg.eval.precision
