"""Pictures in TensorBoard after every validation: what the objectives hide, and what retrieval finds.

- ``masks/mvm``: a few fixed training clips, each as its frames above the same frames with the
  patches MILES' masked visual modeling hides (of the configured ``mask_type``) tinted dark.
- ``masks/mascot``: the same clips, each as its frames, MASCOT's high-informed mask, its
  low-informed mask, and the snapshot's [CLS]-to-patch attention as a heat map (red = most).
- ``retrieval/examples``: a few fixed captions of the first validation set, each above its
  top-3 retrieved clips, framed green where the clip is the caption's video and red where not.

The clips and captions are the first items of the first training / validation set, read with a
fixed seed, and the masks are drawn from a generator seeded by ``seed`` alone, so that one
validation's pictures compare with the next: what changes is the model, not the sample. Retrieval
reuses the embeddings ``RetrievalEvaluator`` has just scored, so it costs a few clip reads.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from data_modules.dataset import VideoTextDataset

from .. import visualize as vis
from ..objectives.snapshot import snapshot_forward
from .retrieval_eval import RetrievalEvaluator


def fixed_clips(dataset: VideoTextDataset, count: int, seed: int) -> Tensor:
    """The first ``count`` readable clips of ``dataset`` (B, T, C, H, W), read with ``seed`` (the
    global RNGs stay untouched, so logging pictures does not change a run's training)."""
    clips = []
    for index in range(len(dataset)):
        item = dataset[(index, seed)]
        if item is not None:
            clips.append(item["video"])
        if len(clips) == count:
            break
    return torch.stack(clips) if clips else torch.zeros(0)


class TensorBoardImages(L.Callback):
    """Logs the pictures at the end of every validation (not the sanity check), when the logger
    is TensorBoard. Every rank runs the snapshot on the clips (a sharded snapshot needs them all);
    rank 0 draws and logs."""

    def __init__(self, evaluator: RetrievalEvaluator, seed: int, num_clips: int = 4, num_captions: int = 4) -> None:
        self.evaluator = evaluator
        self.seed = seed
        self.num_clips = num_clips
        self.num_captions = num_captions
        self._clips: Tensor | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not isinstance(trainer.logger, TensorBoardLogger):
            return
        images = self._mask_images(trainer, pl_module)
        if trainer.is_global_zero:
            if trainer.datamodule.val_names:
                images["retrieval/examples"] = self._retrieval_image(trainer)
            for tag, image in images.items():
                if image is not None:
                    trainer.logger.experiment.add_image(tag, image, trainer.global_step, dataformats="HWC")

    # ------------------------------------------------------------------------------ masks
    def _train_clips(self, trainer: L.Trainer) -> Tensor:
        if self._clips is None:
            sets = trainer.datamodule.train_sets
            self._clips = fixed_clips(next(iter(sets.values())), self.num_clips, self.seed) if sets else torch.zeros(0)
        return self._clips

    @torch.no_grad()
    def _mask_images(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, np.ndarray]:
        mvm, mascot = getattr(pl_module, "mvm", None), getattr(pl_module, "mascot", None)
        if mvm is None and mascot is None:
            return {}
        clips = self._train_clips(trainer)
        if not clips.shape[0]:
            return {}
        grid = pl_module.model.video.patch_embed.grid_size
        frames = [vis.frames_uint8(clip) for clip in clips]
        images = {}
        if mvm is not None:
            mask = mvm.draw_mask(clips, grid, torch.Generator().manual_seed(self.seed))
            rows = [
                row for f, m in zip(frames, mask) for row in (vis.strip(f), vis.strip(vis.overlay_mask(f, m, grid)))
            ]
            images["masks/mvm"] = self._panel("per clip: frames / MVM mask (dark = hidden)", rows)
        if mascot is not None:
            plugin = trainer.precision_plugin
            video = plugin.convert_input(clips.to(pl_module.device))
            with plugin.forward_context():
                attn = snapshot_forward(pl_module.snapshot, video, with_attention=True).cls_attn.float()
            generator = torch.Generator().manual_seed(self.seed)
            _, high, low = (m.cpu() for m in mascot.draw_masks(video, attn, grid, generator))
            rows = []
            for f, h, lo, a in zip(frames, high, low, attn.cpu()):
                overlays = (vis.overlay_mask(f, h, grid), vis.overlay_mask(f, lo, grid), vis.attention_heat(f, a, grid))
                rows += [vis.strip(f), *(vis.strip(o) for o in overlays)]
            random = mascot.cfg.masking == "random"
            views = "random mask 1 / random mask 2" if random else "high-informed / low-informed mask"
            title = f"per clip: frames / {views} / snapshot's [CLS] attention"
            images["masks/mascot"] = self._panel(title, rows)
        return images

    @staticmethod
    def _panel(title: str, rows: list[np.ndarray]) -> np.ndarray:
        return vis.stack([vis.text_band(title, rows[0].shape[1]), *rows])

    # -------------------------------------------------------------------------- retrieval
    def _retrieval_image(self, trainer: L.Trainer) -> np.ndarray | None:
        name = trainer.datamodule.val_names[0]
        scored = self.evaluator.embeddings.get("val", {}).get(name)
        if not scored or not scored["video_ids"]:
            return None
        dataset = trainer.datamodule.val_sets[name]
        index = {record.video_id: i for i, record in enumerate(dataset.records)}
        row_of = {cid: i for i, cid in enumerate(scored["caption_ids"])}
        examples = []
        for record in dataset.records[: self.num_captions]:
            caption_id = record.caption_ids[0] if record.caption_ids else f"{record.video_id}#0"
            if caption_id not in row_of:  # its video was unreadable
                continue
            relevant = {vid for cid, vid in scored["pairs"] if cid == caption_id}
            text = scored["text"][row_of[caption_id]]
            ranked = vis.ranked_videos(text, scored["video"], scored["video_ids"], relevant)
            strips = [vis.strip(vis.frames_uint8(dataset[(index[vid], self.seed)]["video"])) for vid, _, _ in ranked]
            examples.append(vis.retrieval_example(record.captions[0], ranked, strips))
        return vis.stack(examples) if examples else None
