"""What the layout writers produce and how it reaches the disk: the ``Corpus`` of media jobs and
annotation texts, text formats, the corpus tokenizer, and the DONE / partial-run markers."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_modules.demo.render import Job
from data_modules.demo.world import Scene

DONE_FILE = "DONE"
PARTIAL_FILE = ".partial.json"
OWNED_DIRS = ("webvid", "cc3m", "msrvtt", "lsmdc", "activitynet", "didemo", "hmdb51", "ucf101", "msrvtt_1k", "binding",
              "single_attribute", "tokenizer", "shards")  # fmt: skip


@dataclass
class Corpus:
    """What the planners produce: media jobs, annotation texts and all captions."""

    root: Path
    jobs: list[Job] = field(default_factory=list)
    texts: dict[Path, str] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)

    def media(self, rel: str, kind: str, scene: Scene) -> None:
        self.jobs.append(Job(self.root / rel, kind, scene))

    def text(self, rel: str, content: str) -> None:
        self.texts[self.root / rel] = content


def csv_text(header: list[str] | None, rows: list[list[object]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def json_text(obj: object) -> str:
    return json.dumps(obj, indent=1) + "\n"


def slug(text: str) -> str:
    return "-".join("".join(ch for ch in word if ch.isalnum()) for word in text.lower().split())


def train_tokenizer(lines: list[str], out: Path) -> None:
    """Lowercase WordPiece with BERT's special tokens, saved so that
    `AutoTokenizer.from_pretrained(out)` loads it as for distilbert-base-uncased.

    The vocabulary is every word of the corpus (most frequent first, ties alphabetical),
    after the special tokens and every character, plain and as a `##` continuation, so an
    unseen word splits into characters instead of becoming [UNK]. It is derived directly
    rather than with `WordPieceTrainer`, whose merge order breaks ties through hash-seeded
    maps and so changes token ids from one process to the next: the same seed must give the
    same token ids.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(w for line in lines for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({ch for word in counts for ch in word})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted((w for w in counts if w not in chars), key=lambda w: (-counts[w], w))
    vocab = {token: i for i, token in enumerate(specials + chars + [f"##{ch}" for ch in chars] + words)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.decoder = decoders.WordPiece()
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=True, model_max_length=512)
    fast.save_pretrained(str(out))


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def prepare_root(root: Path, config: dict) -> bool:
    """Mark the run as partial; return whether it resumes a run of the same settings.

    A previous demo corpus (recognised by its marker) of other settings is removed so no
    stale files survive; folders without our marker are never deleted.
    """
    previous = read_json(root / DONE_FILE) or read_json(root / PARTIAL_FILE)
    (root / DONE_FILE).unlink(missing_ok=True)
    if previous is not None and previous != config:
        for name in OWNED_DIRS:
            shutil.rmtree(root / name, ignore_errors=True)
    write_text(root / PARTIAL_FILE, json.dumps(config) + "\n")
    return previous == config
