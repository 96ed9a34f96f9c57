"""Where weights come from: timm ImageNet ViTs for the video tower, and our own checkpoints.

Every loader checks keys and shapes and fails with the list of mismatches, because the
official code's habit of silently starting from ImageNet weights when a checkpoint did not fit
cost its users weeks.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models.video_encoder import SpaceTimeViT

# Parts of the video encoder that an image ViT does not have.
_VIDEO_ONLY = ("temporal_embed", "mask_token", ".norm_time.", ".attn_time.")
# Parts of a timm classifier that the encoder does not use.
_CLASSIFIER = ("head.", "fc_norm.", "pre_logits.", "head_drop.")


class CheckpointMismatch(ValueError):
    """The weights do not fit the configured architecture."""


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if path.is_dir() and (path / "meta.pt").is_file():  # a sharded FSDP checkpoint (fsdp.sharded_checkpoint)
        from .sharding import read_sharded_state_dict

        try:
            return read_sharded_state_dict(path)
        except Exception as err:
            raise CheckpointMismatch(f"cannot read sharded checkpoint {path}: {err}") from None
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # corrupt or truncated file: say which
        raise CheckpointMismatch(f"cannot read checkpoint {path}: {err}") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def _describe(missing: list[str], unexpected: list[str], shapes: list[str], source: str) -> str:
    lines = [f"weights from {source} do not fit the configured model:"]
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
            lines.append(f"  {title}: {shown}")
    return "\n".join(lines)


def load_checked(module: nn.Module, state: dict[str, Tensor], source: str, may_miss=(), may_ignore=()) -> list[str]:
    """``load_state_dict`` that names every mismatch; keys starting with a prefix in ``may_miss``
    may be absent and those in ``may_ignore`` may be extra. Returns the keys left missing."""
    own = module.state_dict()
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not any(p in k for p in may_ignore)]
    bad_missing = [k for k in missing if not any(p in k for p in may_miss)]
    if bad_missing or unexpected or shapes:
        raise CheckpointMismatch(_describe(bad_missing, unexpected, shapes, source))
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return missing


def load_image_vit(encoder: SpaceTimeViT, source: str) -> None:
    """Initialise the spatial parts from a timm ViT: a local state-dict file or a timm model name
    (downloaded by timm, e.g. ``vit_base_patch16_224.orig_in21k_ft_in1k``). The position
    embedding is resampled if the patch grid differs; temporal parts keep their fresh init."""
    if Path(source).is_file():
        state = read_state_dict(source)
    else:
        import timm

        state = timm.create_model(source, pretrained=True, num_classes=0).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER)}
    if "pos_embed" in state and state["pos_embed"].shape != encoder.pos_embed.shape:
        from timm.layers import resample_abs_pos_embed

        state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], list(encoder.patch_embed.grid_size))
    load_checked(encoder, state, source, may_miss=_VIDEO_ONLY)


def fit_temporal_embed(state: dict[str, Tensor], key: str, frames: int) -> None:
    """Stretch or cut a checkpoint's temporal embedding to ``frames`` (in place)."""
    if key in state and state[key].shape[1] != frames:
        old = state[key]
        if frames < old.shape[1]:
            state[key] = old[:, :frames]
        else:
            state[key] = F.interpolate(old.transpose(1, 2), size=frames, mode="linear", align_corners=True).transpose(1, 2)
