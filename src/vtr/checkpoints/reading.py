"""Which kind of checkpoint a path is, and its weights and metadata, read safely.

Three kinds: a ``torch.save`` file (our Lightning ``.ckpt``, a released ``.pth``, a bare state
dict), the folder of a sharded checkpoint (``torch.distributed.checkpoint`` files plus
``meta.pt``, written with ``fsdp.sharded_checkpoint``), and ``.safetensors`` (``vtr convert``
writes one with a ``.json`` beside it that holds the model config).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import Tensor

from .safe_load import safe_torch_load

Kind = Literal["torch", "sharded", "safetensors"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


@dataclass
class RawCheckpoint:
    state: dict[str, Tensor]  # the weights, keys as stored
    meta: dict[str, Any] = field(default_factory=dict)  # Lightning's hyper_parameters, or a .safetensors' JSON


def checkpoint_kind(path: str | Path) -> Kind | None:
    """The kind of checkpoint at ``path``, None if there is none."""
    path = Path(path)
    if path.is_dir():
        return "sharded" if (path / "meta.pt").is_file() else None
    if not path.is_file():
        return None
    return "safetensors" if path.suffix == ".safetensors" else "torch"


def is_checkpoint(path: str | Path) -> bool:
    return checkpoint_kind(path) is not None


def sidecar(path: str | Path) -> Path:
    """The JSON written beside a converted ``.safetensors`` file."""
    return Path(path).with_suffix(".json")


def read_checkpoint(path: str | Path) -> RawCheckpoint:
    """The weights and metadata of any kind of checkpoint; errors name the file."""
    kind = checkpoint_kind(path)
    if kind is None:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            meta = json.loads(sidecar(path).read_text()) if sidecar(path).is_file() else {}
            return RawCheckpoint(load_file(str(path)), meta)
        if kind == "sharded":
            meta = safe_torch_load(Path(path) / "meta.pt")
            return RawCheckpoint(read_sharded_state_dict(path), meta.get("hyper_parameters") or {})
        return _unwrap(safe_torch_load(path))
    except CheckpointError:
        raise
    except Exception as err:  # corrupt or truncated file: say which
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None


def _unwrap(obj: Any) -> RawCheckpoint:
    """A bare state dict, or the one a training checkpoint holds under ``state_dict`` (Lightning,
    the released trainer), ``model`` or ``module``."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"holds a {type(obj).__name__}, not a state dict")
    meta = obj.get("hyper_parameters") if isinstance(obj.get("hyper_parameters"), dict) else {}
    for key in ("state_dict", "model", "module"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"entries that are not tensors: {', '.join(map(str, bad[:5]))}")
    return RawCheckpoint(obj, meta)


def read_sharded_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The full model state dict of a sharded checkpoint folder, in one process without a
    process group (what Lightning's ``consolidate_checkpoint`` does, minus the optimizer states).
    FSDP2 folders store the weights under ``state_dict``, FSDP1 ones under ``model``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import (
        _load_state_dict,  # as Lightning's consolidation
    )

    path = Path(path)
    keys = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata.keys()
    top = {key.split(".", 1)[0] for key in keys} & {"state_dict", "model"}
    if not top:
        raise CheckpointError(f"sharded checkpoint {path} holds no model weights (no 'state_dict' or 'model' entries)")
    state: dict[str, Any] = {}
    with warnings.catch_warnings():  # "torch.distributed is disabled ... load in a single process": intended
        warnings.simplefilter("ignore", UserWarning)
        _load_state_dict(state, storage_reader=dcp.FileSystemReader(str(path)), planner=_EmptyStateDictLoadPlanner(keys=top), no_dist=True)
    return state[top.pop()]
