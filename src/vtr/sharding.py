"""Sharded data parallelism: ``trainer.strategy`` = ``fsdp`` (FSDP1) or ``fsdp2`` (FSDP2).

Both shard at the same boundaries: every transformer block of the video encoder, of the MILES
snapshot and of the text encoder is its own unit, then each encoder, then the whole module.
The snapshot is a frozen copy of the video encoder, sharded exactly like it, so the EMA update
(``callbacks/snapshot_ema.py``) is an elementwise ``lerp_`` of a rank's local shards.

* ``fsdp``: Lightning's ``FSDPStrategy`` (GPU only: Lightning refuses it on the CPU) with an
  auto-wrap policy on those classes, ``use_orig_params`` (frozen and trainable parameters share
  units), activation checkpointing of the blocks on request, and bf16 ``MixedPrecision``.
* ``fsdp2``: Lightning's ``ModelParallelStrategy`` as pure data parallelism (data-parallel size =
  world size, tensor-parallel size 1); ``VideoTextModule.configure_model`` calls
  :func:`apply_fully_shard`. It runs on the CPU with gloo as well, which is how it is tested.

Checkpoints are full state dicts on rank 0 (one ``.ckpt`` file in a DDP run's layout, optimizer
state included, so DDP and FSDP2 runs resume each other's) unless
``fsdp.sharded_checkpoint=true``: then each rank writes its shard into a folder
(``torch.distributed.checkpoint`` files plus ``meta.pt``), which ``resume`` reads back in a run of
the same strategy and :func:`vtr.checkpoints.read_sharded_state_dict` turns into a full state dict for
``init_from`` / ``make finetune CKPT=`` / ``make evaluate`` (any strategy, one process, no GPU).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy, Strategy
from omegaconf import DictConfig
from torch import nn

from .checkpoints.legacy import LEGACY_PREFIXES, current_key, legacy_key, remap_legacy_keys
from .models.layers import DividedSpaceTimeBlock
from .models.text_encoder import TextEncoder
from .models.video_encoder import SpaceTimeViT


def text_block_classes() -> set[type[nn.Module]]:
    """The Hugging Face transformer layer classes of the text encoders we build (BERT, DistilBERT);
    another architecture's layers are not units of their own, its whole encoder is one."""
    from transformers.models.bert.modeling_bert import BertLayer
    from transformers.models.distilbert.modeling_distilbert import TransformerBlock

    return {BertLayer, TransformerBlock}


def block_classes() -> set[type[nn.Module]]:
    """Transformer blocks: the units of sharding and of activation checkpointing."""
    return {DividedSpaceTimeBlock, *text_block_classes()}


def wrap_classes() -> set[type[nn.Module]]:
    """FSDP1 auto-wrap classes: the blocks, then each encoder. Wrapping ``SpaceTimeViT`` gives the
    online encoder and the snapshot identical flat parameters, hence identical local shards."""
    return {*block_classes(), SpaceTimeViT, TextEncoder}


def bf16_mixed(precision: str) -> bool:
    return str(precision) == "bf16-mixed"


# ---------------------------------------------------------------------------------------- FSDP1
def fsdp_strategy(cfg: DictConfig) -> FSDPStrategy:
    """``trainer.strategy=fsdp``: Lightning's FSDPStrategy for this model (constructed, not run, on the CPU)."""
    from torch.distributed.fsdp import MixedPrecision

    mixed = None
    if bf16_mixed(cfg.trainer.precision):  # bf16 compute and all-gathers; fp32 master weights and reductions
        mixed = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.float32)
    return FSDPStrategy(
        auto_wrap_policy=wrap_classes(),
        activation_checkpointing_policy=block_classes() if cfg.fsdp.activation_checkpointing else None,
        mixed_precision=mixed,
        sharding_strategy="FULL_SHARD",
        state_dict_type="sharded" if cfg.fsdp.sharded_checkpoint else "full",
        use_orig_params=True,  # frozen (snapshot, fixed temperature) and trainable parameters in one unit
    )


# ---------------------------------------------------------------------------------------- FSDP2
class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy`` as plain FSDP2 data parallelism, with two changes:

    * the data-parallel size is the world size (devices x nodes), tensor parallelism off;
    * training / validation / test steps run through the LightningModule's ``__call__`` (the same
      forward redirection Lightning uses for DDP and FSDP1), so the hooks of the root FSDP unit,
      which owns the projections, heads and temperature, all-gather those before the step.
    """

    def __init__(self, save_distributed_checkpoint: bool = False, **kwargs: Any) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            **kwargs,
        )

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()

    def _redirect(self, name: str, *args: Any, **kwargs: Any) -> Any:
        assert self.lightning_module is not None and self.model is not None
        return self._forward_redirection(self.model, self.lightning_module, name, *args, **kwargs)

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.train_step_context():
            return self._redirect("training_step", *args, **kwargs)

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.val_step_context():
            return self._redirect("validation_step", *args, **kwargs)

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision_plugin.test_step_context():
            return self._redirect("test_step", *args, **kwargs)

    # Full (single-file) checkpoints hold the optimizer state in PyTorch's own layout, parameters
    # numbered in the optimizer's order, as a DDP run writes it; Lightning numbers them in
    # ``named_parameters`` order instead, so that a DDP checkpoint could not be resumed with FSDP2
    # (nor an FSDP2 one with DDP). Sharded (folder) checkpoints keep Lightning's name-keyed layout.
    def _param_names(self, optimizer) -> list[str]:
        assert self.model is not None
        names = {id(p): name for name, p in self.model.named_parameters()}
        return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]

    def optimizer_state(self, optimizer) -> dict[str, Any]:
        if self._save_distributed_checkpoint:
            return super().optimizer_state(optimizer)
        from lightning.pytorch.core.optimizer import LightningOptimizer
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        if isinstance(optimizer, LightningOptimizer):
            optimizer = optimizer._optimizer
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_optimizer_state_dict(self.model, optimizer, options=options)  # keyed by name; empty off rank 0
        if not state:
            return state
        index = {name: i for i, name in enumerate(self._param_names(optimizer))}
        groups = [{**g, "params": [index[name] for name in g["params"]]} for g in state["param_groups"]]
        return {"state": {index[name]: s for name, s in state["state"].items()}, "param_groups": groups}

    def load_checkpoint(self, checkpoint_path: Any, weights_only: Any = None) -> dict[str, Any]:
        path = Path(self.broadcast(checkpoint_path))
        if not path.is_file():  # a sharded folder: Lightning's own loading, unless in the old key layout
            if _holds_legacy_keys(path):
                return self._load_legacy_folder(path, weights_only)
            return super().load_checkpoint(path, weights_only)
        from lightning.fabric.strategies.model_parallel import _load_raw_module_state
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        assert self.model is not None and self.lightning_module is not None
        strict = self.lightning_module.strict_loading
        checkpoint = torch.load(path, mmap=True, map_location="cpu", weights_only=bool(weights_only))
        # the module's on_load_checkpoint (the key remap of older checkpoints) runs only after this
        state = remap_legacy_keys(checkpoint.pop("state_dict"))
        _load_raw_module_state(state, self.model, strict=strict)
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=strict)
        for optimizer, saved in zip(self.optimizers, checkpoint.get("optimizer_states", [])):
            names = self._param_names(optimizer)
            by_name = {
                "state": {names[i]: s for i, s in saved["state"].items()},
                "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]],
            }
            set_optimizer_state_dict(self.model, optimizer, optim_state_dict=by_name, options=options)
        return checkpoint

    def _load_legacy_folder(self, path: Path, weights_only: Any) -> dict[str, Any]:
        """Lightning's sharded resume, each weight and its optimizer state read under the name the
        folder holds it by: the module's on_load_checkpoint remap never sees a folder's weights."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        assert self.model is not None and self.lightning_module is not None
        weights = get_model_state_dict(self.model)
        dcp.load({"state_dict": {legacy_key(k): v for k, v in weights.items()}}, checkpoint_id=path)  # in place
        self.model.load_state_dict(weights, strict=self.lightning_module.strict_loading)
        for i, optimizer in enumerate(self.optimizers):
            stored = {f"optimizer_{i}": _renamed(get_optimizer_state_dict(self.model, optimizer), legacy_key)}
            dcp.load(stored, checkpoint_id=path)  # tensors in place, param groups replaced
            restored = _renamed(stored[f"optimizer_{i}"], current_key)
            set_optimizer_state_dict(self.model, optimizer, restored, options=StateDictOptions(cpu_offload=True))
        return torch.load(path / "meta.pt", weights_only=weights_only)


def _renamed(optimizer_state: dict[str, Any], rename: Callable[[str], str]) -> dict[str, Any]:
    """A name-keyed optimizer state dict (``get_optimizer_state_dict``) with every parameter renamed."""
    groups = [{**g, "params": [rename(name) for name in g["params"]]} for g in optimizer_state["param_groups"]]
    return {"state": {rename(k): v for k, v in optimizer_state["state"].items()}, "param_groups": groups}


def _holds_legacy_keys(folder: Path) -> bool:
    """Whether a sharded folder was written before the objectives were modules (``mvm_head.*``, ``completion.*``)."""
    import torch.distributed.checkpoint as dcp

    keys = dcp.FileSystemReader(str(folder)).read_metadata().state_dict_metadata.keys()
    return any(key.startswith(f"state_dict.{old}") for key in keys for old in LEGACY_PREFIXES)


def fsdp2_mp_policy(precision: str):
    """FSDP2's mixed precision for ``bf16-mixed`` (None otherwise): bf16 parameters in compute
    and all-gathers, gradients reduced in fp32 into fp32 shards."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if bf16_mixed(precision):
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return None


def apply_fully_shard(
    module: nn.Module, mesh, precision: str = "32-true", activation_checkpointing: bool = False
) -> None:
    """FSDP2 ``fully_shard`` of a ``VideoTextModule``: each transformer block (online video,
    snapshot, text), then each encoder, then the module itself (the root, with what is left:
    projections, heads, temperature). Every unit reshards after forward, so between steps all
    parameters are DTensors sharded on dim 0 over ``mesh`` (the EMA then updates local shards).
    Idempotent: Lightning calls ``configure_model`` again for the test after fitting."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if isinstance(module, FSDPModule):
        return
    kwargs: dict[str, Any] = {"mesh": mesh, "reshard_after_forward": True}
    if (policy := fsdp2_mp_policy(precision)) is not None:
        kwargs["mp_policy"] = policy
    blocks = tuple(block_classes())
    encoders = [m for m in module.modules() if isinstance(m, (SpaceTimeViT, TextEncoder))]
    if activation_checkpointing:
        for encoder in encoders:
            enable_activation_checkpointing(encoder)
    for sub in list(module.modules()):
        if isinstance(sub, blocks):
            fully_shard(sub, **kwargs)
    for encoder in encoders:
        fully_shard(encoder, **kwargs)
    # fully_shard takes no 0-dim parameters (the log temperature): such ones stay replicated,
    # their gradient averaged over the mesh by a hook, as DDP would
    scalars = {p for p in module.parameters() if p.ndim == 0}
    for param in scalars:
        if param.requires_grad:
            param.register_post_accumulate_grad_hook(_average_grad(mesh))
    fully_shard(module, ignored_params=scalars or None, **kwargs)


def _average_grad(mesh):
    def hook(param: torch.Tensor) -> None:
        import torch.distributed as dist

        dist.all_reduce(param.grad, group=mesh.get_group())
        param.grad /= mesh.size()

    return hook


def enable_activation_checkpointing(encoder: nn.Module) -> None:
    """Block-wise recomputation in backward, through the encoders' own (non-reentrant) switches."""
    if isinstance(encoder, SpaceTimeViT):
        encoder.grad_checkpointing = True
    elif isinstance(encoder, TextEncoder):
        encoder.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


# ---------------------------------------------------------------------------------- config -> strategy
def build_strategy(cfg: DictConfig) -> str | Strategy:
    """``trainer.strategy`` as Lightning takes it: ``fsdp`` / ``fsdp2`` become configured
    strategy objects, anything else (``auto``, ``ddp``, ...) is passed through by name."""
    name = str(cfg.trainer.strategy)
    if name == "fsdp":
        return fsdp_strategy(cfg)
    if name == "fsdp2":
        return FSDP2Strategy(save_distributed_checkpoint=cfg.fsdp.sharded_checkpoint)
    return name
