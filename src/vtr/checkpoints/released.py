"""Checkpoints of the released Frozen-in-Time and MILES models: their key names mapped to ours
and the architecture read off the tensors' shapes.

Their ``state_dict`` holds ``video_model.*`` (our space-time ViT, with ``norm3`` / ``timeattn``
for the temporal norm and attention), ``text_model.*`` (the Hugging Face model), ``vid_proj.0.*``
and ``text_proj.1.*`` (MILES) or ``txt_proj.1.*`` (Frozen), each key prefixed by ``module.`` when
saved from DataParallel. No tensor needs reshaping. They have no mask token and no temperature
parameter (fixed at 0.05). The text tower's width, depth, feed-forward width and position count
are read off its tensors. Heads cannot be read from shapes: the text tower's come from the config
of the text model the user names (``model.text.name_or_path``, when a config of it is on disk),
whose sizes must then agree with the tensors; otherwise, like the video tower's, they are taken as
width / 64 (ViT-B and BERT-base), unless given.
"""

from __future__ import annotations

import re

from torch import Tensor
from transformers import AutoConfig

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


# The text tower's sizes, by our name: (DistilBERT's config name, BERT's config name).
_TEXT_SIZE_NAMES = {
    "width": ("dim", "hidden_size"),
    "depth": ("n_layers", "num_hidden_layers"),
    "heads": ("n_heads", "num_attention_heads"),
    "ffn_width": ("hidden_dim", "intermediate_size"),
    "max_positions": ("max_position_embeddings", "max_position_embeddings"),
    "vocab_size": ("vocab_size", "vocab_size"),
}


class TextConfigMismatch(ValueError):
    """The text model the user named is not the checkpoint's text tower (a size disagrees)."""


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
        raise ValueError(
            "text_model.* keys are neither DistilBERT's (transformer.layer.N) nor BERT's (encoder.layer.N)"
        )
    text = _text_sizes(state, family, depth)
    text["heads"] = text_heads or _named_text_heads(text_model, family, text) or text["width"] // 64
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
            **{k: v for k, v in text.items() if k != "vocab_size"},
        },
        "embed_dim": state["video_proj.weight"].shape[0],
        "temperature": 0.05,
        "learn_temperature": False,
    }



def _text_sizes(state: dict[str, Tensor], family: str, depth: int) -> dict[str, int]:
    """Width, depth, feed-forward width, position and vocabulary counts of the text tower's tensors."""
    ffn = "transformer.layer.0.ffn.lin1" if family == "distilbert" else "encoder.layer.0.intermediate.dense"
    words = state["text.model.embeddings.word_embeddings.weight"]
    return {
        "width": words.shape[1],
        "depth": depth,
        "ffn_width": state[f"text.model.{ffn}.weight"].shape[0],
        "max_positions": state["text.model.embeddings.position_embeddings.weight"].shape[0],
        "vocab_size": words.shape[0],
    }


def _named_text_heads(text_model: str, family: str, sizes: dict[str, int]) -> int | None:
    """The heads of the config of ``text_model`` (a folder, or a hub name already in the local
    cache: nothing is downloaded), after checking its other sizes against the tensors; None
    when no config of it is on disk. A disagreement is an error naming the size and both values."""
    try:
        named = AutoConfig.from_pretrained(text_model, local_files_only=True)
    except (OSError, ValueError):
        return None
    if named.model_type != family:
        raise TextConfigMismatch(
            f"model.text.name_or_path={text_model} is a {named.model_type} model; "
            f"the checkpoint's text tower is {family}"
        )
    column = 0 if family == "distilbert" else 1
    for ours, value in sizes.items():
        name = _TEXT_SIZE_NAMES[ours][column]
        if getattr(named, name) != value:
            raise TextConfigMismatch(
                f"model.text.name_or_path={text_model} has {name}={getattr(named, name)}, "
                f"the checkpoint's text tower {value}"
            )
    return getattr(named, _TEXT_SIZE_NAMES["heads"][column])
