"""Runs the demo corpus's probes (``vtr.probes``) at the end of the test phase.

After ``RetrievalEvaluator`` has scored the test sets (it runs first), this callback renders the
held-out probe clips from the corpus seed, reads the frozen encoder's patch tokens, and adds to
the run's results, under ``probes``: the patch probe, the grounding probe, and for each test set
whose videos' scenes are known the per-attribute error table of its failed text-to-video
queries. ``metrics.json`` is rewritten with them, and the printed report shows them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch

from data_modules.demo.truth import grounding_scene, probe_scene, video_attributes
from data_modules.demo.world import Scene

from ..probes.clips import ProbeClips, render_clips
from ..probes.errors import attribute_errors
from ..probes.features import middle_block, patch_tokens
from ..probes.grounding import grounding_probe
from ..probes.patch import patch_probe
from .retrieval_eval import RetrievalEvaluator


@contextlib.contextmanager
def _root_unsharded(module: L.LightningModule) -> Iterator[None]:
    """Under FSDP2 the root unit's own parameters (the projections) are gathered only around its
    forward, which the probes do not call; the encoders and blocks gather their own as they run."""
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(module, FSDPModule):
        yield
        return
    module.unshard()
    try:
        yield
    finally:
        module.reshard()


class DemoProbes(L.Callback):
    def __init__(self, evaluator: RetrievalEvaluator, corpus_seed: int, cfg: Any, tokenizer: Any) -> None:
        """``cfg``: the run's config (``probes``, the video model's geometry, the eval frames)."""
        self.evaluator = evaluator
        self.seed = corpus_seed
        self.probes = cfg.probes
        self.num_frames = cfg.data.eval_num_frames or cfg.data.num_frames
        self.input_res = cfg.data.input_res
        self.patch_size = cfg.model.video.patch_size
        self.tokenizer = tokenizer
        self.max_length = cfg.data.max_text_length

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """On every rank alike: under FSDP2 each forward pass all-gathers the parameters, so a rank
        that skipped the probes would leave the others waiting. Rank 0 writes the results."""
        model = pl_module.model
        with _root_unsharded(pl_module):
            results = {"corpus_seed": self.seed, **self._features(model), "errors": self._errors()}
        self.evaluator.results["probes"] = results
        if trainer.is_global_zero:
            self.evaluator.save()

    def _render(self, scenes: list[Scene]) -> ProbeClips:
        return render_clips(scenes, self.num_frames, self.input_res, self.patch_size)

    def _features(self, model: Any) -> dict[str, Any]:
        p, block = self.probes, middle_block(model, self.probes.middle_block)
        fit = self._render([probe_scene(self.seed, "fit", i) for i in range(p.fit_clips)])
        score = self._render([probe_scene(self.seed, "score", i) for i in range(p.score_clips)])
        ground = self._render([grounding_scene(self.seed, i) for i in range(p.grounding_clips)])
        tokens = [patch_tokens(model, clips.video, block) for clips in (fit, score, ground)]
        patch = {"middle_block": block, **patch_probe(fit, tokens[0], score, tokens[1])}
        return {"patch": patch, "grounding": grounding_probe(ground, tokens[2]["joint"], self._embed_text(model))}

    def _embed_text(self, model: Any) -> Callable[[list[str]], torch.Tensor]:
        device = next(model.parameters()).device

        @torch.no_grad()
        def embed(phrases: list[str]) -> torch.Tensor:
            tokens = self.tokenizer(phrases, padding="longest", truncation=True, max_length=self.max_length,
                                    return_tensors="pt")  # fmt: skip
            return model.embed_text({k: v.to(device) for k, v in tokens.items()})[0].float().cpu()

        return embed

    def _errors(self) -> dict[str, Any]:
        out = {}
        for name, emb in self.evaluator.embeddings.get("test", {}).items():
            attributes = video_attributes(self.seed, name, emb["video_ids"])
            if attributes is None:
                continue
            captions, videos = emb["caption_ids"], emb["video_ids"]
            video_of = dict(emb["pairs"])  # one video a caption on these sets
            relevant = torch.zeros(len(captions), len(videos), dtype=torch.bool)
            index = {v: i for i, v in enumerate(videos)}
            for c, caption in enumerate(captions):
                relevant[c, index[video_of[caption]]] = True
            sim = emb["text"] @ emb["video"].T
            out[name] = attribute_errors(sim, relevant, [video_of[c] for c in captions], videos, attributes)
        return out
