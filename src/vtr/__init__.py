"""vtr: video-text retrieval with masked visual modeling (MILES, MASCOT) in PyTorch Lightning.

``from vtr import load_model`` gives a ready dual encoder from any checkpoint; the import of torch
and the models waits until it is first used."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from .checkpoints import load_model

        return load_model
    raise AttributeError(f"module 'vtr' has no attribute {name!r}")
