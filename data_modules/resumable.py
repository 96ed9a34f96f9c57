"""A training loader that a checkpoint can stop and restart mid-epoch, drawing the same data.

Exact resume (``resume=last.ckpt``) needs the batches after the checkpoint to be those an
uninterrupted run would have drawn: the same clips in the same order, with the same caption,
frames and crop. ``RandomSampler`` and the dataset's use of the global / worker RNGs cannot give
that, so here everything random about the data is a function of the run's seed and the item's
place in the data stream:

* Each training loader is an endless stream of cycles (passes over its dataset); cycle ``c`` is
  a permutation seeded by (seed, c). ``ResumableSampler`` shards it by rank like
  ``DistributedSampler`` (which it subclasses, so Lightning keeps it under DDP instead of
  swapping in its own) and skips the items a resumed run already consumed.
* It yields ``(index, sample_seed)``; ``VideoTextDataset`` draws the caption, the frame offsets
  and the crop from ``sample_seed`` alone, so an item is the same whichever worker, or no worker,
  loads it.
* ``ResumableLoader`` counts the batches it has handed out. Its iteration never ends: it goes
  on from one cycle to the next, and a new iteration continues where the last one stopped.
  Lightning ends an epoch after ``len(loader)`` batches (of the longest dataset, under
  ``max_size_cycle``), so the stream does not depend on where epochs start, which after a
  resume is not always where an uninterrupted run starts them (Lightning can make the first
  resumed epoch a short one). Its ``state_dict`` / ``load_state_dict`` are saved in the
  checkpoint and restored before the first batch of a resumed run by Lightning's fit loop
  (through ``CombinedLoader``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


def mix_seed(*parts: Any) -> int:
    """A 63-bit seed from a tuple of ints / strings, the same on every platform and Python."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class ResumableSampler(DistributedSampler):
    """This rank's share of a seeded permutation; ``cycle`` and ``skip`` are set by the loader.

    The padding to a multiple of the world size is ``DistributedSampler``'s (``len`` is the full
    share); its ``epoch`` (Lightning's ``set_epoch``) is not used, the loader counts cycles.
    """

    def __init__(self, dataset: Dataset, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.cycle = 0
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        n = len(self.dataset)  # type: ignore[arg-type]
        order = self.permutation(torch.Generator().manual_seed(mix_seed(self.seed, self.cycle)))
        order += (order * (self.total_size // max(n, 1) + 1))[: self.total_size - n]
        share = order[self.rank : self.total_size : self.num_replicas][self.skip :]
        return iter([(i, mix_seed(self.seed, self.cycle, i)) for i in share])

    def permutation(self, generator: torch.Generator) -> list[int]:
        """The order of a pass over the dataset (before padding and sharding by rank)."""
        return torch.randperm(len(self.dataset), generator=generator).tolist()  # type: ignore[arg-type]


class ResumableLoader(DataLoader):
    """An endless ``DataLoader`` over a ``ResumableSampler`` (``drop_last`` batches; ``len`` is
    one cycle) whose position, (cycle, batches handed out in it), can be saved and restored."""

    sampler: ResumableSampler

    def __init__(self, dataset: Dataset, sampler: ResumableSampler, batch_size: int, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **kwargs)
        self._cycle = 0
        self._batches = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if len(self) == 0:
            raise ValueError("a training loader without a full batch")
        while True:
            if self._batches >= len(self):  # else continue the unfinished cycle
                self._cycle, self._batches = self._cycle + 1, 0
            self.sampler.cycle, self.sampler.skip = self._cycle, self._batches * self.batch_size  # type: ignore[operator]
            for batch in super().__iter__():
                self._batches += 1
                yield batch

    def _layout(self) -> dict[str, int]:
        return {"batch_size": self.batch_size, "num_replicas": self.sampler.num_replicas, "length": len(self)}  # type: ignore[dict-item]

    def state_dict(self) -> dict[str, Any]:
        return {"cycle": self._cycle, "batches": self._batches, **self._layout()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        changed = {key: (state.get(key), now) for key, now in self._layout().items() if state.get(key) != now}
        if changed:
            # Another batch size, world size or dataset: the saved position means nothing in this
            # pass's new split, and going on in it would draw some samples twice and others never.
            # A new pass starts instead, in the order its number and the seed give.
            said = ", ".join(f"{key} {before} -> {now}" for key, (before, now) in changed.items())
            rank_zero_warn(
                f"the training data changed since the checkpoint ({said}): the rest of pass {state['cycle']} "
                f"is not drawn, training goes on with pass {state['cycle'] + 1}"
            )
            self._cycle, self._batches = state["cycle"] + 1, 0
            return
        self._cycle, self._batches = state["cycle"], state["batches"]
