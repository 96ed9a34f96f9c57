"""MASCOT: informed semantics completion and dual-mask co-learning.

A reconstruction from the paper's description, not from its code: every number is a config key
under ``model.mascot``. The clip is masked twice, guided by the [CLS]
attention of the unmasked clip: once hiding mostly high-informed patches (the foreground the caption
is about), once mostly low-informed ones (background). ``masking=sampled`` draws both masks in
proportion to the attention so they stay random; ``split`` draws them from the top-``rho`` set and
the rest.

- Completion: a light cross-attention decoder takes the encoder's outputs at the hidden
  high-informed positions as queries and the visible tokens plus the caption's token features as
  keys/values, and predicts the snapshot encoder's features of those patches. Hidden
  low-informed patches are not reconstructed (``reconstruct_low`` turns that back on).
- Co-learning: both masked views are aligned with the caption by the contrastive loss, and a
  symmetric KL between their text-similarity distributions ties the two views together
  (``consistency=kl_to_full`` instead pulls each toward the detached unmasked view's distribution).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from timm.layers import Mlp
from torch import Tensor, nn

from ..models import DualEncoder, TextEncoderOutput
from ..models.video_encoder import SpaceTimeViT
from .base import Objective, ObjectiveOutput
from .masking import attention_guided_masks, attention_sampled_masks, random_mask
from .mvm import masked_regression_loss
from .snapshot import cls_cosine, regression_targets, snapshot_forward


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention (queries attend to a padded context) followed by an MLP."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim, act_layer=nn.GELU)

    def forward(self, x: Tensor, context: Tensor, context_valid: Tensor) -> Tensor:
        b, nq, d = x.shape
        h = self.heads
        q = self.q(self.norm_q(x)).reshape(b, nq, h, d // h).transpose(1, 2)
        k, v = self.kv(self.norm_kv(context)).reshape(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=context_valid[:, None, None, :])
        x = x + self.proj(out.transpose(1, 2).reshape(b, nq, d))
        return x + self.mlp(self.norm_mlp(x))


class CompletionDecoder(nn.Module):
    """Predicts target features at hidden positions from visible tokens (and the caption)."""

    def __init__(self, width: int, text_width: int, out_dim: int, depth: int, heads: int, text_context: bool) -> None:
        super().__init__()
        self.text_context = text_context
        self.text_proj = nn.Linear(text_width, width) if text_context else None
        self.blocks = nn.ModuleList(CrossAttentionBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)

    def forward(
        self, queries: Tensor, visible: Tensor, text_tokens: Tensor | None = None, text_mask: Tensor | None = None
    ) -> Tensor:
        """queries (B, Q, D); visible (B, V, D); text_tokens (B, L, Dt) with text_mask (B, L)."""
        context = visible
        valid = torch.ones(visible.shape[:2], dtype=torch.bool, device=visible.device)
        if self.text_context:
            context = torch.cat([visible, self.text_proj(text_tokens)], dim=1)
            valid = torch.cat([valid, text_mask.bool()], dim=1)
        x = queries
        for block in self.blocks:
            x = block(x, context, valid)
        return self.head(self.norm(x))


def split_by_mask(tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(hidden, visible) patch tokens, each (B, count, D); every row hides the same count."""
    b, _, d = tokens.shape
    return tokens[mask].reshape(b, -1, d), tokens[~mask].reshape(b, -1, d)


def mean_over_reconstructed(losses: Sequence[Tensor], counts: Sequence[Tensor]) -> Tensor:
    """Mean of the views' completion losses over the views that reconstruct any patch: a view with
    none (the low one under ``masking=random``, which counts every patch as informed) has loss 0,
    and averaging it in would halve the loss. Zero when no view reconstructs anything."""
    reconstructed = (torch.stack(counts) > 0).float()
    return (torch.stack(losses) * reconstructed).sum() / reconstructed.sum().clamp_min(1)


def _log_caption_probs(video: Tensor, text: Tensor, scale: Tensor | float) -> Tensor:
    return F.log_softmax((scale * video @ text.T).float(), dim=-1)


def kl_to_full(masked: Sequence[Tensor], full: Tensor, text: Tensor, scale: Tensor | float) -> Tensor:
    """Mean over the masked views of KL(full || view) of their distributions over the batch's
    captions, the unmasked view's detached: the clip as evaluated (unmasked) is the teacher, and
    the masked views are pulled toward it, never it toward them."""
    log_full = _log_caption_probs(full, text, scale).detach()
    kls = [
        F.kl_div(_log_caption_probs(view, text, scale), log_full, log_target=True, reduction="batchmean")
        for view in masked
    ]
    return torch.stack(kls).mean()


def symmetric_kl(video_a: Tensor, video_b: Tensor, text: Tensor, scale: Tensor | float) -> Tensor:
    """Symmetric KL between the two views' distributions over the batch's captions."""
    log_a, log_b = _log_caption_probs(video_a, text, scale), _log_caption_probs(video_b, text, scale)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="batchmean")
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="batchmean")
    return (kl_ab + kl_ba) / 2


class Mascot(Objective):
    """``model.mascot``: owns the completion decoder (``mascot.decoder.*``). Its targets are the
    snapshot's, of the kind and with the loss that ``model.mvm.target`` / ``model.mvm.loss`` name."""

    def __init__(self, cfg: DictConfig, target: str, loss: str, width: int, text_width: int, target_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.target = target
        self.loss = loss
        self.decoder = CompletionDecoder(
            width, text_width, target_dim, cfg.decoder_depth, cfg.decoder_heads, cfg.text_context
        )

    def draw_masks(
        self, video: Tensor, cls_attn: Tensor | None, grid: tuple[int, int], generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(high_informed, high_mask, low_mask), each (B, T, N) bool on the clips' device, from the
        snapshot's [CLS] attention (B, T, N) of clips (B, T, C, H, W); ``masking=random`` ignores it."""
        m = self.cfg
        if m.masking != "random":
            draw = attention_sampled_masks if m.masking == "sampled" else attention_guided_masks
            return draw(cls_attn, m.rho, m.mask_ratio, generator)
        # ablation: two random masks, every patch counted as informed
        b, t = video.shape[:2]
        high_mask, low_mask = (random_mask(b, t, grid, m.mask_ratio, generator).to(video.device) for _ in range(2))
        return torch.ones_like(high_mask), high_mask, low_mask

    def _complete(
        self, tokens: Tensor, mask: Tensor, counted: Tensor, target: Tensor, text: TextEncoderOutput
    ) -> tuple[Tensor, Tensor]:
        """Completion loss of one masked view over the hidden positions flagged in ``counted``, and
        how many such positions there are."""
        queries, visible = split_by_mask(tokens, mask)
        pred = self.decoder(queries, visible, text.tokens, text.attention_mask)
        hidden_target, _ = split_by_mask(target, mask)
        hidden_counted, _ = split_by_mask(counted.unsqueeze(-1), mask)
        hidden_counted = hidden_counted.squeeze(-1)
        return masked_regression_loss(pred, hidden_target, hidden_counted, self.loss), hidden_counted.sum()

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
        """The high-informed masked view (``contrastive``), the low-informed one
        (``dual_contrastive``), with ``full_view`` the unmasked clip (``full_contrastive``, with
        gradients; every view in one stacked forward pass), and the completion loss."""
        m = self.cfg
        snap = snapshot_forward(snapshot, video, with_attention=m.masking != "random")
        target = regression_targets(snap, encoder, self.target)
        masks = self.draw_masks(video, snap.cls_attn, encoder.video.patch_embed.grid_size, generator)
        informed, high_mask, low_mask = (mask.flatten(1) for mask in masks)

        # Every view of the clips in one forward pass: high-informed, [low-informed], [unmasked].
        stacked = encoder.embed_video_views(video, [high_mask] + [low_mask] * m.dual_mask + [None] * m.full_view)
        emb_high, out_high = stacked.pop(0)
        completion = [self._complete(out_high.tokens[:, 1:], high_mask, informed, target, text)]
        views = {"contrastive": emb_high}
        weights = {
            "contrastive": m.masked_contrastive_weight,
            "completion": m.completion_weight,
            "consistency": m.consistency_weight,
        }
        if m.dual_mask:
            emb_low, out_low = stacked.pop(0)
            views["dual_contrastive"] = emb_low
            weights["dual_contrastive"] = m.masked_contrastive_weight * m.dual_contrastive_weight
            if m.reconstruct_low:  # ablation: also reconstruct the hidden background
                completion.append(self._complete(out_low.tokens[:, 1:], low_mask, ~informed, target, text))
        full_out = None
        if m.full_view:
            views["full_contrastive"], full_out = stacked.pop(0)
            weights["full_contrastive"] = 1.0
        metrics = {"snapshot_cls_cos": cls_cosine(snap, encoder.video, video, full_out)} if measure else {}
        return ObjectiveOutput(views, {"completion": mean_over_reconstructed(*zip(*completion))}, weights, metrics)

    def pooled_losses(self, views: dict[str, Tensor], text: Tensor, scale: Tensor | float) -> dict[str, Tensor]:
        """The consistency of the views' caption distributions, over the whole batch: ``sym_kl`` between
        the two masked views, ``kl_to_full`` of each masked view toward the unmasked one."""
        kind = self.cfg.consistency
        if kind == "sym_kl" and "dual_contrastive" in views:
            return {"consistency": symmetric_kl(views["contrastive"], views["dual_contrastive"], text, scale)}
        if kind == "kl_to_full":
            masked = [views[name] for name in ("contrastive", "dual_contrastive") if name in views]
            return {"consistency": kl_to_full(masked, views["full_contrastive"], text, scale)}
        return {}
