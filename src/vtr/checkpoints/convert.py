"""``vtr convert``: any checkpoint's dual encoder as ``.safetensors`` plus its model config in JSON.

The result holds the weights only (no optimizer, no snapshot, no pickled objects) and is read
back by :func:`~vtr.checkpoints.load_model` like any other checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from .loading import load_checkpoint
from .reading import sidecar


def convert(source: str | Path, out: str | Path, text_model: str | None = None) -> Path:
    """Write ``out`` (``.safetensors``) and ``out`` with ``.json``; returns the JSON's path."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"convert: the output must end in .safetensors, got {out}")
    loaded = load_checkpoint(source, text_model)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(state, str(out), metadata={"format": "pt", "source": str(source)})
    meta = {"model": loaded.model_config, "tokenizer": loaded.tokenizer, "weights_hash": loaded.weights_hash}
    sidecar(out).write_text(json.dumps(meta, indent=2) + "\n")
    return sidecar(out)
