"""Reading ``torch.save`` files without running code from them.

``torch.load(weights_only=True)`` comes first. Files that also pickle objects of their own
classes (the released Frozen-in-Time / MILES trainer stores its ``parse_config.ConfigParser``,
from a module users do not have) are then read by a restricted unpickler, plugged into torch's
own loading as its ``pickle_module``: tensors, storages and the containers torch allows for
``weights_only`` are rebuilt; every other global becomes an inert :class:`ForeignObject` that
records the arguments and state it was given. Nothing is imported, nothing is called, and a
one-line warning names what was ignored.
"""

from __future__ import annotations

import logging
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch._weights_only_unpickler import _get_allowed_globals

log = logging.getLogger(__name__)


class ForeignObject:
    """Stands for an object of a class that was not loaded: its name, args and state, nothing else."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []

    def __new__(cls, *args: Any, **kwargs: Any) -> ForeignObject:
        return super().__new__(cls)

    def __call__(self, *args: Any, **kwargs: Any) -> ForeignObject:  # e.g. a placeholder method
        return type(self)(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __repr__(self) -> str:
        return f"<ignored {self.qualname}>"


class RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` that resolves only torch's ``weights_only`` allowlist; anything else gets a
    placeholder subclass of :class:`ForeignObject` (also callable, so a ``REDUCE`` of it is inert).
    Names of the placeholders made are added to ``seen``."""

    seen: set[str]

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        allowed = _get_allowed_globals()
        if qualname in allowed:
            return allowed[qualname]
        self.seen.add(qualname)
        return type(name.rsplit(".", 1)[-1], (ForeignObject,), {"qualname": qualname, "__module__": __name__})


def _restricted_pickle_module(seen: set[str]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module, as ``torch.load(pickle_module=...)`` takes it."""
    unpickler = type("Unpickler", (RestrictedUnpickler,), {"seen": seen})
    module = types.ModuleType("restricted_pickle")
    module.Unpickler = unpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kw: unpickler(file, **kw).load()  # type: ignore[attr-defined]
    return module


def safe_torch_load(path: str | Path) -> Any:
    """The object ``torch.save`` wrote to ``path``, on the CPU, without executing code from it.
    Zip-format files are memory-mapped, so reading a few tensors of a big file is cheap."""
    path = Path(path)
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", mmap=mmap, weights_only=True)
    except pickle.UnpicklingError:
        pass  # foreign objects: read again below, with placeholders for them
    seen: set[str] = set()
    obj = torch.load(path, map_location="cpu", mmap=mmap, weights_only=False, pickle_module=_restricted_pickle_module(seen))
    names = sorted(seen)
    noun = "object" if len(names) == 1 else "objects"
    log.warning(f"{path}: ignored {len(names)} foreign {noun}: {', '.join(names)}")
    return obj
