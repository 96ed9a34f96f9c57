"""Checkpoints of the released Frozen-in-Time and MILES models: their key names mapped to ours
and the architecture read off the tensors' shapes.

Their ``state_dict`` holds ``video_model.*`` (our space-time ViT, with ``norm3`` / ``timeattn``
for the temporal norm and attention), ``text_model.*`` (the Hugging Face model), ``vid_proj.0.*``
and ``text_proj.1.*`` (MILES) or ``txt_proj.1.*`` (Frozen), each key prefixed by ``module.`` when
saved from DataParallel. No tensor needs reshaping. They have no mask token and no temperature
parameter (fixed at 0.05); heads cannot be read from shapes and are taken as width / 64 (ViT-B
and BERT-base), unless given.
"""

from __future__ import annotations

import re

from torch import Tensor

_RENAMES = (  # released prefix -> ours (DualEncoder names), first match wins
    ("video_model.", "video."),
    ("text_model.", "text.model."),
    ("vid_proj.0.", "video_proj."),
    ("text_proj.1.", "text_proj.1."),
    ("txt_proj.1.", "text_proj.1."),
)
_BLOCK_RENAMES = ((".norm3.", ".norm_time."), (".timeattn.", ".attn_time."))
# Stored by older transformers versions as buffers, rebuilt by today's: not weights.
IGNORED = ("text.model.embeddings.position_ids",)


def strip_module_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def is_released(state: dict[str, Tensor]) -> bool:
    keys = strip_module_prefix(state).keys()
    return any(k.startswith("video_model.") for k in keys) and any(k.startswith("vid_proj.0.") for k in keys)


def remap_released(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Released keys -> :class:`~vtr.models.DualEncoder` keys (minus :data:`IGNORED` buffers)."""
    out = {}
    for key, value in strip_module_prefix(state).items():
        for old, new in _RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        if key.startswith("video.blocks."):
            for old, new in _BLOCK_RENAMES:
                key = key.replace(old, new)
        if key not in IGNORED:
            out[key] = value
    return out


def _count(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def released_model_config(
    state: dict[str, Tensor], text_model: str, heads: int | None = None, text_heads: int | None = None
) -> dict:
    """The ``model`` config section (ModelConfig-shaped) that a released state dict implies.
    ``text_model`` gives the tokenizer (its vocabulary must be the checkpoint's). Frozen (its
    ``txt_proj``) with BERT took BERT's pooler output, everything else the [CLS] hidden state."""
    frozen = any(k.startswith("txt_proj.") for k in strip_module_prefix(state))
    state = remap_released(state)
    pos = state["video.pos_embed"]
    width = pos.shape[-1]
    patch = state["video.patch_embed.proj.weight"].shape[-1]
    grid = round((pos.shape[1] - 1) ** 0.5)
    keys = list(state)
    if any(k.startswith("text.model.transformer.layer.") for k in keys):
        family, depth = "distilbert", _count(keys, r"text\.model\.transformer\.layer\.(\d+)\.")
    elif any(k.startswith("text.model.encoder.layer.") for k in keys):
        family, depth = "bert", _count(keys, r"text\.model\.encoder\.layer\.(\d+)\.")
    else:
        raise ValueError("text_model.* keys are neither DistilBERT's (transformer.layer.N) nor BERT's (encoder.layer.N)")
    text_width = state["text.model.embeddings.word_embeddings.weight"].shape[1]
    frozen_bert = frozen and family == "bert"
    return {
        "video": {
            "img_size": grid * patch,
            "patch_size": patch,
            "width": width,
            "depth": _count(keys, r"video\.blocks\.(\d+)\."),
            "heads": heads or width // 64,
            "mlp_ratio": state["video.blocks.0.mlp.fc1.weight"].shape[0] / width,
            "num_frames": state["video.temporal_embed"].shape[1],
            "pretrained": None,
            "block_wiring": "released",
        },
        "text": {
            "name_or_path": text_model,
            "pretrained": False,
            "model_type": family,
            "pooling": "pooler" if frozen_bert else "cls",
            "width": text_width,
            "depth": depth,
            "heads": text_heads or text_width // 64,
        },
        "embed_dim": state["video_proj.weight"].shape[0],
        "temperature": 0.05,
        "learn_temperature": False,
    }

