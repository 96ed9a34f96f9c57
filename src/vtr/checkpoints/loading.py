"""A ready dual encoder from any checkpoint, and the same weights into a training module.

Project-only parts that released checkpoints lack (the mask token, the temperature) are filled
in (zeros; the configured fixed temperature) and said so in one line; objective parts of our
training module (MILES / MASCOT heads, the snapshot) are optional when fine-tuning.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from ..config import ModelConfig
from ..models import DualEncoder
from .architecture import model_config_of
from .checked import fit_temporal_embeds, load_checked
from .legacy import remap_legacy_keys
from .reading import CheckpointError, RawCheckpoint, read_checkpoint
from .released import is_released, remap_released

log = logging.getLogger(__name__)

FILLABLE = ("model.video.mask_token", "model.logit_scale")  # not in weights-only checkpoints
_UNUSED_POOLER = ("model.text.model.pooler.",)  # stored by BERT checkpoints whose pooler we do not use


@dataclass
class ModuleWeights:
    state: dict[str, Tensor]  # keyed like our training module: model.* (the DualEncoder), snapshot.*, heads
    may_fill: tuple[str, ...]  # keys the checkpoint may lack and the model then fills in


def module_weights(raw: RawCheckpoint) -> ModuleWeights:
    """The weights of any checkpoint, keyed like our training module's state dict."""
    if is_released(raw.state):
        return ModuleWeights({f"model.{k}": v for k, v in remap_released(raw.state).items()}, FILLABLE)
    if any(k.startswith("model.") for k in raw.state):  # a training module's (Lightning) state dict
        return ModuleWeights(remap_legacy_keys(raw.state), ())
    return ModuleWeights({f"model.{k}": v for k, v in raw.state.items()}, ())  # a DualEncoder's (vtr convert)


def load_into_module(module: nn.Module, path: str | Path) -> list[str]:
    """``init_from``: a checkpoint's weights into our training module; parts outside the dual
    encoder (snapshot, objective heads) may be missing or extra. Returns the keys left missing."""
    weights = module_weights(read_checkpoint(path))
    fit_temporal_embeds(weights.state, module)
    optional = tuple(sorted({k.split(".", 1)[0] + "." for k in module.state_dict() if not k.startswith("model.")}))
    missing = load_checked(module, weights.state, str(path), optional + weights.may_fill, optional + _UNUSED_POOLER)
    _say_filled([k for k in missing if k in weights.may_fill], path)
    return missing


@dataclass
class LoadedCheckpoint:
    model: DualEncoder  # in eval mode, on the CPU
    model_config: dict  # the ``model`` config section (ModelConfig-shaped) it was built from
    tokenizer: str  # Hugging Face name or folder of the tokenizer for its captions
    weights_hash: str  # sha256 of the model's state dict (names, dtypes, shapes, values)


def load_checkpoint(
    path: str | Path, text_model: str | None = None, heads: int | None = None
) -> LoadedCheckpoint:
    """A dual encoder from our checkpoints (Lightning ``.ckpt``, sharded folder, ``vtr convert``
    ``.safetensors``) or a released Frozen-in-Time / MILES one. ``text_model`` names the tokenizer
    (and, for our checkpoints, replaces the stored text model name); ``heads`` the video heads
    of a released checkpoint (default width / 64)."""
    raw = read_checkpoint(path)
    model_cfg = model_config_of(raw, str(path), text_model, heads)
    if model_cfg is None:
        raise CheckpointError(f"{path}: no model config (not written by vtr, not a Frozen-in-Time / MILES checkpoint)")
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), model_cfg)
    model = DualEncoder(cfg, load_text_weights=False)
    weights = module_weights(raw)
    state = {k[len("model.") :]: v for k, v in weights.state.items() if k.startswith("model.")}
    fill = tuple(k[len("model.") :] for k in weights.may_fill)
    missing = load_checked(model, state, str(path), may_miss=fill, may_ignore=("text.model.pooler.",))
    if "video.mask_token" in missing:
        nn.init.zeros_(model.video.mask_token)  # unused by embeddings; zero keeps the hash deterministic
    _say_filled(missing, path)
    return LoadedCheckpoint(model.eval(), OmegaConf.to_container(cfg), cfg.text.name_or_path, weights_hash(model))


def load_model(path: str | Path, text_model: str | None = None) -> DualEncoder:
    """The dual encoder of any checkpoint :func:`load_checkpoint` reads, in eval mode:
    ``embed_video(frames)`` and ``embed_text(tokens)`` return unit-norm joint embeddings first."""
    return load_checkpoint(path, text_model).model


def weights_hash(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _say_filled(keys: list[str], path: str | Path) -> None:
    if keys:
        log.warning(f"{path}: filled in project-only parts the checkpoint lacks: {', '.join(keys)}")
