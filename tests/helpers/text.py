"""A tokenizer for tests, built from a word list: no download, and every word a test writes is known."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import BertTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def word_tokenizer(folder: Path, words: Iterable[str], **options: Any) -> BertTokenizerFast:
    """A BERT WordPiece tokenizer whose vocabulary (``folder/vocab.txt``) is the special tokens and ``words``."""
    vocab = Path(folder) / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL_TOKENS, *words]) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab), **options)
