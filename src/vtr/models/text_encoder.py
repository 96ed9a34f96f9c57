"""Any Hugging Face encoder as the text tower, by hub name or local folder.

The sentence feature is the first ([CLS]) hidden state, as in Frozen and MILES; BERT's pooler
output (``pooling=pooler``), as released Frozen-in-Time models with BERT use; or the mean over
real tokens (``pooling=mean``): a randomly initialised post-LN BERT's [CLS] output is nearly the
same for every caption (cosine about 0.9999 between any two captions), so a model
trained from scratch learns far faster from the mean. The features and their padding mask are
kept for MASCOT's text-conditioned completion decoder. ``pretrained=False`` builds a randomly
initialised encoder of the configured size around the folder's tokenizer: that is how the demo
and the tests run without downloading weights, and how released checkpoints are rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig

from ..config import TextEncoderConfig

# Families whose config names the sizes differently from BERT's hidden_size / num_hidden_layers /
# num_attention_heads / intermediate_size (the names every other family takes).
_SIZE_NAMES = {"distilbert": ("dim", "n_layers", "n_heads", "hidden_dim")}
_BERT_NAMES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def sized_config(cfg: TextEncoderConfig, vocab_size: int, pad_token_id: int | None) -> PretrainedConfig:
    """A ``model_type`` config of the configured width, depth, heads, feed-forward width (4 x width
    unless set) and position count (the family's default unless set)."""
    names = _SIZE_NAMES.get(cfg.model_type, _BERT_NAMES)
    ffn_width = cfg.ffn_width or 4 * cfg.width
    sizes = dict(zip(names, (cfg.width, cfg.depth, cfg.heads, ffn_width), strict=True))
    if cfg.max_positions:
        sizes["max_position_embeddings"] = cfg.max_positions
    return AutoConfig.for_model(cfg.model_type, vocab_size=vocab_size, pad_token_id=pad_token_id, **sizes)


@dataclass
class TextEncoderOutput:
    sentence: Tensor  # (B, D) sentence feature (see ``pooling``)
    tokens: Tensor  # (B, L, D)
    attention_mask: Tensor  # (B, L), 1 = real token


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextEncoderConfig, load_weights: bool = True) -> None:
        """``load_weights=False`` builds a ``pretrained`` model's architecture without reading its
        weights (they are about to come from a checkpoint)."""
        super().__init__()
        if cfg.pretrained and load_weights:
            self.model = AutoModel.from_pretrained(cfg.name_or_path)
        elif cfg.pretrained:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(cfg.name_or_path))
        else:
            tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path)
            self.model = AutoModel.from_config(sized_config(cfg, len(tokenizer), tokenizer.pad_token_id))
        self.pooling = cfg.pooling
        has_pooler = getattr(self.model, "pooler", None) is not None
        if self.pooling == "pooler" and not has_pooler:
            raise ValueError(f"model.text.pooling=pooler: the {self.model.config.model_type} text model has no pooler")
        if has_pooler and self.pooling != "pooler":
            self.model.pooler = None  # unused; unused parameters would break DDP
        if cfg.grad_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.frozen = cfg.freeze
        if self.frozen:
            self.model.requires_grad_(False).eval()
        self.width = self.model.config.hidden_size

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen tower stays in eval mode (no dropout) while the rest of the model trains."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> TextEncoderOutput:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            sentence = hidden[:, 0]
        elif self.pooling == "pooler":
            sentence = out.pooler_output
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            sentence = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return TextEncoderOutput(sentence, hidden, attention_mask)
