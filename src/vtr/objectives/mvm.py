"""MILES masked visual modeling: regress the snapshot encoder's features at masked patches.

The online video encoder sees the masked clip; a prediction head maps its patch tokens to the
targets, which the snapshot encoder (an EMA copy of the online one, no gradients) computes on
the unmasked clip. Only masked positions count: visible patches are trivially predictable from
themselves and would dilute the signal. The masked clip's embedding is also the view that the
contrastive loss aligns with the caption.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from timm.layers import Mlp
from torch import Tensor, nn

from ..models import DualEncoder, TextEncoderOutput
from ..models.video_encoder import SpaceTimeViT, VideoEncoderOutput
from .base import Objective, ObjectiveOutput
from .contrastive import is_distributed
from .masking import make_mask
from .snapshot import cls_cosine, regression_targets, snapshot_forward


def build_head(kind: str, width: int, out_dim: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(width, out_dim)
    return Mlp(in_features=width, hidden_features=width, out_features=out_dim, act_layer=nn.GELU)


def masked_regression_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "mse") -> Tensor:
    """Mean over masked positions of a per-patch loss. pred/target (B, L, D), mask (B, L) bool."""
    pred, target = pred[mask].float(), target[mask].float()
    if kind == "mse":
        per_patch = (pred - target).pow(2).mean(-1)
    elif kind == "smooth_l1":
        per_patch = F.smooth_l1_loss(pred, target, reduction="none").mean(-1)
    elif kind == "cosine":
        per_patch = 1 - F.cosine_similarity(pred, target, dim=-1)
    else:
        raise ValueError(f"unknown regression loss {kind!r}")
    return per_patch.sum() / max(per_patch.numel(), 1)  # no masked patch: zero, not NaN


@torch.no_grad()
def regression_diagnostics(pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Scale-free readings of the regression at masked patches, each of shape (1,).

    ``mvm_target_var``: the targets' variance over masked patches, per dimension, averaged over
    dimensions (what an MSE is to be compared with); ``mvm_nmse``: the MSE over it (1 = no better
    than predicting the mean target, whatever the targets' scale); ``mvm_cos``: the mean cosine
    between prediction and target. Joint-space targets follow a weight-decayed projection whose
    norm drifts, so their raw MSE rises and falls with that scale alone; these do not.
    """
    p, t = pred[mask].float(), target[mask].float()
    if not len(t):
        return {}
    var = t.var(0, unbiased=False).mean()
    nmse = (p - t).pow(2).mean() / var.clamp_min(1e-12)
    cos = F.cosine_similarity(p, t, dim=-1).mean()
    return {"mvm_target_var": var.view(1), "mvm_nmse": nmse.view(1), "mvm_cos": cos.view(1)}


class MaskedModeling(NamedTuple):
    embedding: Tensor  # the masked clip's joint embedding
    loss: Tensor  # the regression loss at its masked patches
    snapshot_out: VideoEncoderOutput  # the snapshot on the unmasked clip
    unmasked: tuple[Tensor, VideoEncoderOutput] | None  # the online encoder on the unmasked clip, if asked for
    diagnostics: dict[str, Tensor]  # ``regression_diagnostics``


class MaskedVisualModeling(Objective):
    """``model.mvm``: owns the prediction head (``mvm.head.*``); masks from ``start_step`` on."""

    def __init__(self, cfg: DictConfig, width: int, target_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.head = build_head(cfg.head, width, target_dim)

    def draw_mask(self, video: Tensor, grid: tuple[int, int], generator: torch.Generator) -> Tensor:
        """The configured mask of clips (B, T, C, H, W): (B, T, N) bool on the CPU, True = hidden."""
        c = self.cfg
        return make_mask(c.mask_type, video.shape[0], video.shape[1], grid, c.mask_ratio, generator)

    def masked_modeling(
        self,
        video: Tensor,
        encoder: DualEncoder,
        snapshot: SpaceTimeViT,
        generator: torch.Generator,
        with_unmasked: bool = False,
        measure: bool = True,
    ) -> MaskedModeling:
        """The masked view and its loss; with ``with_unmasked``, the online encoder's view of the
        unmasked clip too, computed in the same forward pass as the masked one; with ``measure``,
        the regression's readings (only logged steps ask for them)."""
        c = self.cfg
        mask = self.draw_mask(video, encoder.video.patch_embed.grid_size, generator).to(video.device).flatten(1)
        views = encoder.embed_video_views(video, [mask, None] if with_unmasked else [mask])
        emb, out = views[0]
        pred = self.head(out.tokens[:, 1:])
        snap = snapshot_forward(snapshot, video)
        target = regression_targets(snap, encoder, c.target, c.target_norm)
        loss = masked_regression_loss(pred, target, mask, c.loss)
        unmasked = views[1] if with_unmasked else None
        readings = regression_diagnostics(pred, target, mask) if measure else {}
        return MaskedModeling(emb, loss, snap, unmasked, readings)

    def forward(
        self,
        video: Tensor,
        text: TextEncoderOutput,
        encoder: DualEncoder,
        snapshot: SpaceTimeViT,
        generator: torch.Generator,
        step: int,
        measure: bool = False,
    ) -> ObjectiveOutput:
        """Views by ``contrastive_view``: the masked clip (``contrastive``), the unmasked clip
        (``full_contrastive``, with gradients, stacked with the masked one in one pass), or both
        with half the weight each (the mean of the two losses). Before ``start_step`` only the unmasked clip's view."""
        c = self.cfg
        if step < c.start_step:  # warm-up: contrastive only, on the unmasked clip
            emb, out = encoder.embed_video(video)
            losses = {}
            if is_distributed():
                # The head and the mask token get no gradient yet, which DDP refuses: an exact
                # zero term gives them zero gradients instead.
                unused = [*self.head.parameters(), encoder.video.mask_token]
                losses["mvm"] = sum(p.sum() for p in unused) * 0.0
            metrics = {}
            if measure:
                metrics["snapshot_cls_cos"] = cls_cosine(snapshot_forward(snapshot, video), encoder.video, video, out)
            return ObjectiveOutput({"contrastive": emb}, losses, {"contrastive": 1.0, "mvm": c.weight}, metrics)
        with_unmasked = c.contrastive_view != "masked"
        emb, loss, snap, unmasked, diagnostics = self.masked_modeling(
            video, encoder, snapshot, generator, with_unmasked, measure
        )
        views, full_out = {}, None
        if c.contrastive_view != "full":
            views["contrastive"] = emb
        if unmasked is not None:
            views["full_contrastive"], full_out = unmasked
        weights = {**dict.fromkeys(views, 1.0 / len(views)), "mvm": c.weight}
        metrics = (
            {"snapshot_cls_cos": cls_cosine(snap, encoder.video, video, full_out), **diagnostics} if measure else {}
        )
        return ObjectiveOutput(views, {"mvm": loss}, weights, metrics)
