"""``python -m vtr index``: embed every clip of a folder with a checkpoint's video tower.

Re-running embeds only what is new or changed (size, mtime) and drops what was removed. Work is
written in chunks as it goes (``store.py``), so an interrupted run is resumed by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch.utils.data import DataLoader

from data_modules.video import build_transform, video_duration

from ..checkpoints import load_checkpoint
from ..config import ConfigError
from .embed import ChunkWriter, ClipEmbedder, ClipRate
from .files import ClipDataset, collate_clips, listed, plan, scan
from .store import IndexStore

TRAINER_DEFAULTS = {"accelerator": "auto", "devices": 1, "precision": "32-true"}


@dataclass
class IndexReport:
    """What a run did: clips embedded, files resumed / added / dropped, index size, skipped files."""

    embedded: int = 0
    resumed: int = 0  # files an interrupted run had finished, taken over
    added: int = 0
    dropped: int = 0
    entries: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def trainer_options(overrides: list[str]) -> dict[str, Any]:
    """``trainer.key=value`` overrides on top of the defaults (one device, full precision)."""
    try:
        cfg = OmegaConf.merge({"trainer": TRAINER_DEFAULTS}, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise ConfigError(f"index overrides: {err}") from None
    unknown = [k for k in cfg if k != "trainer"]
    if unknown:
        raise ConfigError(f"config key '{unknown[0]}': index takes only trainer.* overrides (e.g. trainer.devices=2)")
    return OmegaConf.to_container(cfg.trainer)


def build_index(
    video_dir: str | Path,
    ckpt: str | Path,
    out: str | Path,
    window: float = 0.0,
    stride: float | None = None,
    batch_size: int = 16,
    workers: int = 2,
    overrides: list[str] = (),
    rebuild: bool = False,
    chunk_clips: int = 512,
    progress: bool = True,
    text_model: str | None = None,
    only: str | Path | None = None,
) -> IndexReport | None:
    """Bring the index in ``out`` up to date with ``video_dir``. Returns the report on rank 0
    (None on other ranks of a multi-device run). ``text_model``: the tokenizer, for checkpoints
    that do not name theirs (released Frozen / MILES ones); recorded so that search uses it too.
    ``only``: a file listing the files to index (paths relative to ``video_dir``, one a line);
    files of the folder it does not list are left out, or dropped from an index that had them."""
    root = Path(video_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    if window < 0 or (stride is not None and stride <= 0):
        raise ConfigError(f"--window must be >= 0 and --stride > 0 (got {window}, {stride})")
    loaded = load_checkpoint(ckpt, text_model)
    video = loaded.model_config["video"]
    num_frames, img_size = video["num_frames"], video["img_size"]
    identity = {"weights_sha256": loaded.weights_hash, "window": window, "stride": (stride or window) if window else 0,
                "num_frames": num_frames, "img_size": img_size}  # fmt: skip
    store = IndexStore(Path(out))
    present = scan(root) if only is None else listed(root, Path(only))
    rank_zero = rank_zero_only.rank == 0  # set from the launcher's environment, before any process group
    if rank_zero:
        store.open(
            identity,
            loaded.model_config["embed_dim"],
            rebuild,
            str(Path(ckpt).resolve()),
            str(root.resolve()),
            text_model,
        )
    # what an interrupted run finished is taken over; removed and changed files are dropped
    first = store.commit(present) if rank_zero else {"added": 0, "dropped": 0}
    # the index now holds only files present and unchanged: those are done
    done = set(store.files()) | {e["path"] for e in store.errors()}
    todo = {p: s for p, s in present.items() if p not in done}
    clips, plan_errors = plan(root, todo, window, identity["stride"], video_duration)
    if clips:
        writer = ChunkWriter(store, clips, loaded.model_config["embed_dim"], chunk_clips)
        dataset = ClipDataset(root, clips, num_frames, build_transform(img_size, train=False))
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_clips,
                            persistent_workers=False, shuffle=False)  # fmt: skip
        callbacks = [writer] + ([ClipRate(len(clips))] if progress else [])
        quiet = {"enable_progress_bar": False, "enable_checkpointing": False, "enable_model_summary": False}
        trainer = L.Trainer(**trainer_options(overrides), logger=False, callbacks=callbacks, **quiet)
        trainer.predict(ClipEmbedder(loaded.model.eval()), dataloaders=loader, return_predictions=False)
        trainer.strategy.barrier("index")  # every rank's chunks are written before rank 0 commits
        if not trainer.is_global_zero:
            return None
    counts = store.commit(present, plan_errors)
    dropped = first["dropped"] + counts["dropped"]
    return IndexReport(counts["embedded"], first["added"], counts["added"], dropped, counts["entries"], store.errors())
