"""Everything about reading, checking and converting weights lives in this package.

Every read goes through :func:`~vtr.checkpoints.safe_load.safe_torch_load` (or safetensors): no
checkpoint runs code when loaded. Only Lightning's own ``resume`` path unpickles its checkpoints.
"""

from .architecture import model_config_of, stored_model_config
from .checked import CheckpointMismatch, fit_temporal_embeds, load_checked
from .convert import convert
from .image_vit import load_image_vit
from .legacy import remap_legacy_keys
from .loading import (
    LoadedCheckpoint,
    load_checkpoint,
    load_into_module,
    load_model,
    module_weights,
    weights_hash,
)
from .reading import (
    CheckpointError,
    checkpoint_kind,
    is_checkpoint,
    read_checkpoint,
    read_sharded_state_dict,
)
from .safe_load import safe_torch_load

__all__ = [
    "CheckpointError",
    "CheckpointMismatch",
    "LoadedCheckpoint",
    "checkpoint_kind",
    "convert",
    "fit_temporal_embeds",
    "is_checkpoint",
    "load_checked",
    "load_checkpoint",
    "load_image_vit",
    "load_into_module",
    "load_model",
    "model_config_of",
    "module_weights",
    "read_checkpoint",
    "read_sharded_state_dict",
    "remap_legacy_keys",
    "safe_torch_load",
    "stored_model_config",
    "weights_hash",
]
