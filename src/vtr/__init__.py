"""vtr: video-text retrieval with masked visual modeling (MILES, MASCOT) in PyTorch Lightning.

``from vtr import load_model`` gives a ready dual encoder from any checkpoint; the import of torch
and the models waits until it is first used.

This is also where ``vtr.config``, the lowest layer, gets what loading a config needs from the
layers above it (precision, eval preset, checkpoints): the hooks below import them when called."""

from typing import Any

from . import config as _config

__version__ = "0.1.0"
__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from .checkpoints import load_model

        return load_model
    raise AttributeError(f"module 'vtr' has no attribute {name!r}")


def _finish(cfg: Any) -> None:
    """The precision ``auto`` stands for on this machine (torch), then the eval preset."""
    from .precision import resolve_precision
    from .protocol import apply_eval_protocol

    cfg.trainer.precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    apply_eval_protocol(cfg)


def _is_checkpoint(path: str) -> bool:
    from .checkpoints import is_checkpoint  # torch: only when a checkpoint is named

    return is_checkpoint(path)


def _trained_model_config(path: str) -> dict | None:
    """The model section ``init_from`` was trained with; a truncated or foreign file is named."""
    from .checkpoints import CheckpointError, stored_model_config

    try:
        return stored_model_config(path)
    except CheckpointError as err:
        raise _config.ConfigError(f"config key 'init_from': {err}") from None


_config.install_hooks(_config.LoadHooks(_finish, _is_checkpoint, _trained_model_config))
