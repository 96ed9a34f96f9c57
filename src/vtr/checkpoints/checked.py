"""Loading a state dict so that every mismatch is named.

The official code silently started from ImageNet weights when a checkpoint did not fit, which
cost its users weeks; here missing, unexpected and mis-shaped keys are one error listing them.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..models.video_encoder import resize_temporal_embed
from .reading import CheckpointError


class CheckpointMismatch(CheckpointError):
    """The weights do not fit the configured architecture."""


def _describe(missing: list[str], unexpected: list[str], shapes: list[str], source: str) -> str:
    lines = [f"weights from {source} do not fit the configured model:"]
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
            lines.append(f"  {title}: {shown}")
    return "\n".join(lines)


def load_checked(
    module: nn.Module, state: dict[str, Tensor], source: str, may_miss: tuple[str, ...] = (), may_ignore: tuple[str, ...] = ()
) -> list[str]:
    """``load_state_dict`` that names every mismatch; keys containing a string of ``may_miss``
    may be absent and those containing one of ``may_ignore`` may be extra. Returns the keys
    left missing (their values stay as they were)."""
    own = module.state_dict()
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not any(p in k for p in may_ignore)]
    bad_missing = [k for k in missing if not any(p in k for p in may_miss)]
    if bad_missing or unexpected or shapes:
        raise CheckpointMismatch(_describe(bad_missing, unexpected, shapes, source))
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return missing


def fit_temporal_embeds(state: dict[str, Tensor], module: nn.Module) -> None:
    """Cut or stretch (in place) every ``*temporal_embed`` of ``state`` to the number of frames the
    module was built for, by the rule clips use at run time (``resize_temporal_embed``)."""
    own = module.state_dict()
    for key, value in list(state.items()):
        if key.endswith("temporal_embed") and key in own and value.ndim == 3 and value.shape[1] != own[key].shape[1]:
            state[key] = resize_temporal_embed(value, own[key].shape[1]).contiguous()
