"""What a training objective is asked, and what it hands back.

An objective (MILES' masked visual modeling, MASCOT) sees one dataset's part of a batch and
returns its *views*: unit-norm video embeddings, row i matching caption i, each named after the
contrastive loss it gets. The module pools each view over the batch's parts (videos and images
are each other's negatives) and computes that loss on the pooled rows. The objective's own terms
(a regression loss, say) come back as named losses; ``weights`` covers views and losses alike.
Terms that need the pooled views (MASCOT's consistency between two views) come from
:meth:`Objective.pooled_losses`, called once on the pooled views.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..models import DualEncoder, TextEncoderOutput
from ..models.video_encoder import SpaceTimeViT


@dataclass
class ObjectiveOutput:
    views: dict[str, Tensor]  # contrastive loss name -> (B, E) unit-norm video embeddings
    losses: dict[str, Tensor] = field(default_factory=dict)  # the objective's own terms, means over the part
    weights: dict[str, float] = field(default_factory=dict)  # of every view and loss name it returns
    metrics: dict[str, Tensor] = field(default_factory=dict)  # per-clip (B,) diagnostics, logged as train/<name>


class Objective(nn.Module):
    """A training objective with its own trainable parts (a head, a decoder). The snapshot is
    passed in, not owned: it is one module shared by every objective that reads it."""

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
        """Views and losses of one part: clips (B, T, C, H, W) and their captions' encoder output.

        ``generator`` draws the masks (seeded by the caller from seed, step and rank); ``step`` is
        the optimizer step (for warm-ups); ``measure`` asks for the diagnostic ``metrics`` too
        (only on the steps that are logged, as they may cost an extra forward pass)."""
        raise NotImplementedError

    def pooled_losses(self, views: dict[str, Tensor], text: Tensor, scale: Tensor | float) -> dict[str, Tensor]:
        """Losses on the views pooled over the batch's parts (besides each view's contrastive loss)."""
        return {}
