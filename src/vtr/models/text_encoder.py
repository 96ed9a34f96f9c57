"""Any Hugging Face encoder as the text tower, by hub name or local folder.

The sentence feature is the first ([CLS]) hidden state, as in Frozen and MILES, or the mean over
real tokens (``pooling=mean``): a randomly initialised post-LN BERT's [CLS] output is nearly the
same for every caption (cosine 0.9999 between captions, measured on the demo), so a model
trained from scratch learns far faster from the mean. The
features and their padding mask are kept for MASCOT's text-conditioned completion decoder.
``pretrained=False`` builds a randomly initialised encoder of the configured size around the
folder's tokenizer: that is how the demo and the tests run without downloading weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ..config import TextEncoderConfig


@dataclass
class TextEncoderOutput:
    sentence: Tensor  # (B, D) [CLS] hidden state
    tokens: Tensor  # (B, L, D)
    attention_mask: Tensor  # (B, L), 1 = real token


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        if cfg.pretrained:
            self.model = AutoModel.from_pretrained(cfg.name_or_path)
        else:
            tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path)
            config = AutoConfig.for_model(
                cfg.model_type,
                vocab_size=len(tokenizer),
                hidden_size=cfg.width,
                num_hidden_layers=cfg.depth,
                num_attention_heads=cfg.heads,
                intermediate_size=4 * cfg.width,
                pad_token_id=tokenizer.pad_token_id,
            )
            self.model = AutoModel.from_config(config)
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None  # unused (we take [CLS]); unused parameters would break DDP
        if cfg.grad_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.width = self.model.config.hidden_size
        self.pooling = cfg.pooling

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> TextEncoderOutput:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            sentence = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            sentence = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return TextEncoderOutput(sentence, hidden, attention_mask)
