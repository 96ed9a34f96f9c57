"""The architecture (the ``model`` config section) a checkpoint holds or implies.

Our Lightning checkpoints (files and sharded folders) carry the run's config in their
``hyper_parameters``; a ``.safetensors`` from ``vtr convert`` carries it in its JSON; a released
Frozen-in-Time / MILES checkpoint implies it through its tensors' shapes.
"""

from __future__ import annotations

import copy
from pathlib import Path

from .reading import CheckpointError, RawCheckpoint, read_checkpoint
from .released import TextConfigMismatch, is_released, released_model_config

DEFAULT_TEXT_MODEL = "distilbert-base-uncased"  # the text tower both released models use


def model_config_of(
    raw: RawCheckpoint, source: str, text_model: str | None = None, heads: int | None = None
) -> dict | None:
    """The ``model`` section of a read checkpoint, None if it holds none and implies none.

    Our checkpoints written before ``model.video.block_wiring`` existed computed the
    ``residual_temporal`` wiring, so that is what their config says when read."""
    if isinstance(raw.meta.get("model"), dict):  # vtr convert's JSON
        model = copy.deepcopy(raw.meta["model"])
    elif isinstance(raw.meta.get("config"), dict) and "model" in raw.meta["config"]:  # Lightning's hyper_parameters
        model = copy.deepcopy(raw.meta["config"]["model"])
        model.setdefault("video", {}).setdefault("block_wiring", "residual_temporal")
    elif is_released(raw.state):
        try:
            return released_model_config(raw.state, text_model or DEFAULT_TEXT_MODEL, heads=heads)
        except TextConfigMismatch as err:
            raise CheckpointError(f"{source}: {err}") from None
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{source}: not a complete Frozen-in-Time / MILES checkpoint: {err}") from None
    else:
        return None
    if text_model:
        model.setdefault("text", {})["name_or_path"] = text_model
    if heads:
        model["video"]["heads"] = heads
    return model


def stored_model_config(path: str | Path, text_model: str | None = None) -> dict | None:
    """:func:`model_config_of` the checkpoint at ``path`` (tensors memory-mapped where possible)."""
    return model_config_of(read_checkpoint(path), str(path), text_model)
