"""Structured run configuration.

Every knob of a run lives in one dataclass tree. The YAML files in ``experiments/`` and the
``key=value`` overrides on the command line are merged onto it by OmegaConf, which rejects
unknown keys and wrong types with the offending key in the message. The defaults are the
paper-scale recipe (ViT-B/16, DistilBERT, 4 frames at 224 px); the demo YAMLs shrink them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data_modules.config import DATA_CHOICES, DATA_FRACTIONS, DataConfig


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key or file at fault."""


@dataclass(frozen=True)
class LoadHooks:
    """What loading needs from the layers above this one, which every other module imports and
    which therefore imports nothing of vtr (that closed an import cycle through the checkpoints).
    ``vtr/__init__.py`` installs them, so they are there whenever this module is imported."""

    finish: Callable[[DictConfig], None]  # fill the machine's precision for `auto` and the eval preset
    is_checkpoint: Callable[[str], bool]
    trained_model_config: Callable[[str], dict | None]  # init_from's model section; ConfigError if unreadable


_hooks: LoadHooks | None = None


def install_hooks(hooks: LoadHooks) -> None:
    """Called once, by the package's ``__init__``."""
    global _hooks
    _hooks = hooks


def _installed() -> LoadHooks:
    if _hooks is None:
        raise RuntimeError("vtr.config was loaded outside the vtr package: the hooks of vtr/__init__.py are missing")
    return _hooks


EVAL_PROTOCOLS = ("ours", "released")


@dataclass
class EvalConfig:
    """Test-time switches; null takes the value of the ``eval_protocol`` preset (the table in vtr/protocol.py)."""

    frame_sampling: str | None = None  # ours | released
    transform: str | None = None  # ours | released
    caption_truncation: str | None = None  # cap (data.max_text_length) | model_max (the tokenizer's)
    unreadable: str | None = None  # skip | black
    precision: str | None = None  # precision of `evaluate`; ours: trainer.precision
    t2v_tie_break: str | None = None  # average | optimistic | mean; ours: the top-level tie_break
    v2t_tie_break: str | None = None


EVAL_CHOICES = {
    "eval.frame_sampling": ("ours", "released"),
    "eval.transform": ("ours", "released"),
    "eval.caption_truncation": ("cap", "model_max"),
    "eval.unreadable": ("skip", "black"),
    "eval.t2v_tie_break": ("average", "optimistic", "mean"),
    "eval.v2t_tie_break": ("average", "optimistic", "mean"),
}


@dataclass
class VideoEncoderConfig:
    img_size: int = 224
    patch_size: int = 16
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    num_frames: int = 4  # temporal embeddings learned; more frames at run time are interpolated
    drop_path_rate: float = 0.0
    # timm model name (ImageNet weights from the hub) or a local state-dict file; null = random init
    pretrained: str | None = "vit_base_patch16_224.orig_in21k_ft_in1k"
    grad_checkpointing: bool = False
    # released: Frozen-in-Time / MILES blocks, the temporal attention's output feeds only the spatial
    # attention's input. residual_temporal: it is also added to the residual stream (this project's
    # checkpoints from before the key existed, which are read with it so they keep their function)
    block_wiring: str = "released"


@dataclass
class TextEncoderConfig:
    # Hugging Face model name or local folder; the tokenizer is always read from here
    name_or_path: str = "distilbert-base-uncased"
    pretrained: bool = True  # false: random init of a `model_type` encoder of the size below
    model_type: str = "bert"
    # cls: the [CLS] hidden state (Frozen, MILES). mean: average over real tokens; the demo's
    # random-init BERT needs it, as its [CLS] barely depends on the input at init. pooler: BERT's
    # pooler output (tanh dense layer on [CLS]), what released Frozen-in-Time models with BERT use.
    pooling: str = "cls"
    width: int = 768
    depth: int = 12
    heads: int = 12
    ffn_width: int | None = None  # feed-forward width; null: 4 x width (BERT's and DistilBERT's ratio)
    max_positions: int | None = None  # position embeddings; null: the family's default (512)
    grad_checkpointing: bool = False
    # a pre-trained tower kept as it is (weights fixed, dropout off), only the projection trains:
    # language knowledge from step 0 at the cost of a forward pass (LiT's locked text tower)
    freeze: bool = False


@dataclass
class MVMConfig:
    """MILES masked visual modeling (what the paper leaves open are our defaults)."""

    enabled: bool = False
    mask_type: str = "blockwise"  # random | tube | blockwise
    mask_ratio: float = 0.5
    ema_momentum: float = 0.999
    ema_schedule: str = "constant"  # constant | cosine (momentum -> 1.0 over training)
    target: str = "tokens"  # tokens: layer-normed last-layer patch tokens | joint: projected to the joint space
    target_norm: bool = False  # joint targets layer-normed per token as well (tokens targets always are)
    head: str = "linear"  # linear | mlp
    loss: str = "mse"  # mse | smooth_l1 | cosine
    weight: float = 1.0
    start_step: int = 0
    contrastive_view: str = "masked"  # masked | full (second, unmasked forward) | both (mean of the two losses)
    ema_start_step: int = 0  # the snapshot is copied from the online encoder at this step, EMA-updated after it
    # with init_from: the snapshot starts as a copy of the loaded video encoder (encoder: text-aligned
    # targets from step 0), or keeps the checkpoint's own stored snapshot (checkpoint)
    snapshot_init: str = "encoder"


@dataclass
class MascotConfig:
    """MASCOT, reconstructed from the paper's abstract. Its targets come
    from the snapshot encoder, whose EMA settings are ``model.mvm.ema_momentum`` / ``ema_schedule`` /
    ``ema_start_step``."""

    enabled: bool = False
    # random: two attention-blind masks, every patch counted as informed (chosen on the demo: it
    # fine-tunes better than sampled, benchmarks/README.md, E3);
    # sampled: both masks drawn in proportion to the [CLS] attention (high) and its reversed rank (low);
    # split: each mask drawn from the top-rho (high) or the other patches (low), needs rho > mask_ratio
    masking: str = "random"
    rho: float = 0.5  # fraction of patches called high-informed (those the completion loss counts)
    mask_ratio: float = 0.5
    decoder_depth: int = 1
    decoder_heads: int = 8
    text_context: bool = True
    reconstruct_low: bool = False  # ablation: also reconstruct low-informed masked patches
    dual_mask: bool = True
    completion_weight: float = 1.0
    dual_contrastive_weight: float = 1.0  # relative to masked_contrastive_weight
    masked_contrastive_weight: float = 1.0  # both masked views' contrastive losses (the unmasked view's is 1)
    # sym_kl: between the two masked views; kl_to_full: each masked view toward the detached
    # unmasked one (needs full_view); none
    consistency: str = "sym_kl"
    consistency_weight: float = 1.0
    full_view: bool = False  # also the unmasked clip's contrastive loss, beside the two masked views


@dataclass
class ModelConfig:
    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    embed_dim: int = 256
    temperature: float = 0.05
    learn_temperature: bool = False
    max_logit_scale: float = 100.0
    mvm: MVMConfig = field(default_factory=MVMConfig)
    mascot: MascotConfig = field(default_factory=MascotConfig)
    # torch.compile the video, text and snapshot encoders when the model is set up. Off: on the
    # 2-core CPU it was measured on it did not pay (benchmarks/bench_train_step.py --compile)
    compile: bool = False


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.0


@dataclass
class TrainerConfig:
    """Passed one to one to ``lightning.Trainer``."""

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp | fsdp2 (sharded: see FSDPConfig) | any other Lightning name
    # auto: bf16-mixed where the hardware has native bf16 (CUDA with bf16, a CPU with AVX512-BF16
    # or AMX), else 32-true; resolved when the config is loaded (vtr/precision.py)
    precision: str = "auto"
    max_steps: int = -1
    max_epochs: int | None = None
    gradient_clip_val: float | None = 1.0
    accumulate_grad_batches: int = 1
    val_check_interval: Any | None = None
    check_val_every_n_epoch: int | None = 1
    log_every_n_steps: int = 50
    limit_train_batches: Any | None = None
    limit_val_batches: Any | None = None
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    deterministic: bool = False


@dataclass
class FSDPConfig:
    """Sharded training, read when ``trainer.strategy`` is ``fsdp`` (Lightning's FSDPStrategy,
    FSDP1, GPU only) or ``fsdp2`` (ModelParallelStrategy with ``fully_shard`` per transformer
    block, then per encoder, then the whole module; CPU with gloo too). bf16 mixed precision is
    ``trainer.precision=bf16-mixed``: bf16 compute and all-gathers, fp32 weights and gradient
    reduction. Any other strategy ignores this section."""

    activation_checkpointing: bool = False  # recompute each video / text transformer block in backward
    # false: a full state dict gathered on rank 0, one .ckpt file like any other run's.
    # true: each rank writes its shard, the checkpoint is a folder (DCP files + meta.pt); init_from,
    # resume and evaluate read such folders as well (vtr.checkpoints).
    sharded_checkpoint: bool = False


@dataclass
class ProbeConfig:
    """The demo corpus's instruments of the test phase (``vtr.probes``): labels come from the
    scenes, so ``enabled`` needs ``data.root`` to be a demo corpus (its ``DONE`` gives the seed)."""

    enabled: bool = False
    fit_clips: int = 160  # held-out clips the patch probe is fitted on
    score_clips: int = 80  # other held-out clips it is scored on
    grounding_clips: int = 80  # clips of two or three different still shapes, for the grounding probe
    middle_block: int | None = None  # 0-based block read besides the final tokens; null: (depth - 1) // 2


@dataclass
class RunConfig:
    task: str = "pretrain"  # pretrain | finetune | evaluate
    experiment: str = "default"
    version: str | None = None  # default: $SLURM_JOB_ID, else the next free version_N
    output_dir: str = "checkpoints"
    seed: int = 0
    init_from: str | None = None  # a checkpoint whose weights start the run (fine-tuning)
    resume: str | None = None  # a last.ckpt to continue
    # Ranks of tied scores: average (expected rank) | optimistic | mean (of the tied positions); both
    # directions under eval_protocol=ours, unless eval.t2v_tie_break / eval.v2t_tie_break say otherwise
    tie_break: str = "average"
    report_dual_softmax: bool = False  # also report test-time dual-softmax t2v, beside the raw numbers
    # Sets of more videos than this are also scored as disjoint galleries of this many (mean and
    # spread of R@K over them); null: never
    gallery_size: int | None = None
    # Test-time pipeline: ours | released (the released MSR-VTT evaluation's); presets for `eval` (vtr/protocol.py)
    eval_protocol: str = "ours"
    # A training step whose loss is NaN or infinite: stop (an error naming the step and the loss
    # terms, before anything is saved) | skip (no optimizer or EMA update; counted as train/nonfinite_skipped)
    nonfinite_loss: str = "stop"
    # Pictures in TensorBoard after every validation: masks of a few training clips, retrieval examples
    log_images: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)


_CHOICES = {
    "task": ("pretrain", "finetune", "evaluate"),
    "tie_break": ("average", "optimistic", "mean"),
    "eval_protocol": EVAL_PROTOCOLS,
    **EVAL_CHOICES,
    "nonfinite_loss": ("stop", "skip"),
    "model.video.block_wiring": ("released", "residual_temporal"),
    "model.text.pooling": ("cls", "mean", "pooler"),
    "model.mvm.mask_type": ("random", "tube", "blockwise"),
    "model.mvm.ema_schedule": ("constant", "cosine"),
    "model.mvm.snapshot_init": ("encoder", "checkpoint"),
    "model.mvm.target": ("tokens", "joint"),
    "model.mvm.head": ("linear", "mlp"),
    "model.mvm.loss": ("mse", "smooth_l1", "cosine"),
    "model.mvm.contrastive_view": ("masked", "full", "both"),
    "model.mascot.masking": ("random", "sampled", "split"),
    "model.mascot.consistency": ("sym_kl", "kl_to_full", "none"),
    **{f"data.{key}": allowed for key, allowed in DATA_CHOICES.items()},
    "optim.schedule": ("cosine", "constant"),
}
_FRACTIONS = (
    "model.mvm.mask_ratio", "model.mascot.rho", "model.mascot.mask_ratio", "model.mvm.ema_momentum",
    *(f"data.{key}" for key in DATA_FRACTIONS),
)  # fmt: skip


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Merge a YAML file and ``key=value`` overrides onto the schema, then validate.

    With ``init_from`` (fine-tuning, evaluation) the model section starts from the one the
    checkpoint was trained with, so a fine-tuning recipe fits any pre-trained model; the YAML and
    the overrides still win (e.g. to switch MVM off or MASCOT on)."""
    try:
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
        layers = [read_yaml(Path(path))] if path is not None else []
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), *layers)
        trained_with = checkpoint_model_config(cfg.init_from) if cfg.init_from else None
        if trained_with is not None:
            cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), {"model": trained_with}, *layers)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err)) from None
    validate(cfg)
    return cfg


def checkpoint_model_config(path: str) -> dict | None:
    """The ``model`` section of the checkpoint ``path`` (the one it was trained with, or the one
    its weights imply for released Frozen-in-Time / MILES files); None if it says nothing."""
    hooks = _installed()
    if not hooks.is_checkpoint(path):
        raise ConfigError(f"config key 'init_from': checkpoint not found: {path}")
    return hooks.trained_model_config(path)


def read_yaml(path: Path) -> DictConfig:
    """A YAML file, on top of the file its ``_base_`` key names (relative to it), recursively."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    node = OmegaConf.load(path)
    base = node.pop("_base_", None)
    if base is None:
        return node
    base_path = path.parent / base
    if not base_path.is_file():
        raise ConfigError(f"{path}: _base_ file not found: {base_path}")
    return OmegaConf.merge(read_yaml(base_path), node)


def _describe(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None)
    msg = str(err).splitlines()[0]
    return f"config key '{key}': {msg}" if key else msg


def validate(cfg: DictConfig) -> None:
    """Checks that the type system cannot express; every message names its key."""
    _installed().finish(cfg)  # before the checks, which then cover the eval keys it fills
    for key, allowed in _CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {', '.join(allowed)}")
    for key in _FRACTIONS:
        value = OmegaConf.select(cfg, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"config key '{key}': {value} is outside [0, 1]")
    if cfg.model.mvm.enabled and cfg.model.mascot.enabled:
        raise ConfigError(
            "config keys 'model.mvm.enabled' and 'model.mascot.enabled': MASCOT's completion replaces MILES' "
            "masked modeling (both regress the snapshot's features); enable one"
        )
    mascot = cfg.model.mascot
    if mascot.masking == "split" and mascot.rho <= mascot.mask_ratio:
        raise ConfigError(
            f"config keys 'model.mascot.rho' ({mascot.rho}) and 'model.mascot.mask_ratio' ({mascot.mask_ratio}): "
            "split masking needs rho > mask_ratio, else both masks take whole sets and are fixed complements"
        )
    if mascot.consistency == "kl_to_full" and not mascot.full_view:
        raise ConfigError(
            "config keys 'model.mascot.consistency' and 'model.mascot.full_view': kl_to_full pulls the masked "
            "views toward the unmasked one, which only model.mascot.full_view=true computes"
        )
    if cfg.data.worker_nice is not None and not 0 <= cfg.data.worker_nice <= 19:
        raise ConfigError(f"config key 'data.worker_nice': {cfg.data.worker_nice} is not a niceness from 0 to 19")
    if cfg.model.text.freeze and not cfg.model.text.pretrained:
        raise ConfigError("config key 'model.text.freeze': a randomly initialised text tower would stay random")
    video = cfg.model.video
    if video.img_size % video.patch_size:
        raise ConfigError("config key 'model.video.img_size': must be a multiple of model.video.patch_size")
    if video.width % video.heads:
        raise ConfigError("config key 'model.video.width': must be divisible by model.video.heads")
    if cfg.data.input_res is None:
        cfg.data.input_res = video.img_size
    if cfg.data.input_res != video.img_size:
        raise ConfigError(
            f"config key 'data.input_res': {cfg.data.input_res} differs from model.video.img_size {video.img_size}"
        )
    if cfg.trainer.strategy == "fsdp" and cfg.trainer.accelerator == "cpu":
        raise ConfigError(
            "config key 'trainer.strategy': fsdp (Lightning's FSDPStrategy) needs GPUs; on the CPU use fsdp2 or ddp"
        )
    if cfg.gallery_size is not None and cfg.gallery_size < 1:
        raise ConfigError(f"config key 'gallery_size': {cfg.gallery_size} is not a positive number of videos")
    for key in ("fit_clips", "score_clips", "grounding_clips"):
        if cfg.probes[key] < 1:
            raise ConfigError(f"config key 'probes.{key}': {cfg.probes[key]} is not a positive number of clips")
    if cfg.probes.middle_block is not None and not 0 <= cfg.probes.middle_block < video.depth:
        raise ConfigError(
            f"config key 'probes.middle_block': {cfg.probes.middle_block} is not a block of the "
            f"{video.depth}-block video encoder (0-based)"
        )
    if cfg.task != "evaluate" and not cfg.data.train:
        raise ConfigError("config key 'data.train': no training dataset named")
    unused = sorted(set(cfg.data.shards) - set(cfg.data.train))
    if unused:
        raise ConfigError(
            f"config key 'data.shards': {', '.join(unused)} not in data.train (shards are read for training only)"
        )
    if cfg.data.shard_mix < 1:
        raise ConfigError(f"config key 'data.shard_mix': {cfg.data.shard_mix} shards at a time; at least 1")
    for key in ("init_from", "resume"):
        value = cfg[key]
        if value is not None and not _installed().is_checkpoint(value):
            raise ConfigError(f"config key '{key}': checkpoint not found: {value}")


def resolve_run_dir(cfg: DictConfig) -> Path:
    """``{output_dir}/{experiment}/{version}``, with no timestamp so a requeued SLURM job finds its folder."""
    base = Path(cfg.output_dir) / cfg.experiment
    version = cfg.version or os.environ.get("SLURM_JOB_ID")
    if version is None:
        taken = {p.name for p in base.glob("version_*")} if base.is_dir() else set()
        n = 0
        while f"version_{n}" in taken:
            n += 1
        version = f"version_{n}"
    return base / str(version)
