"""Key names that earlier versions of this project wrote, mapped to today's.

The objectives became modules of their own: MILES' prediction head moved from ``mvm_head`` to
``mvm.head`` and MASCOT's completion decoder from ``completion`` to ``mascot.decoder``.
"""

from __future__ import annotations

from typing import TypeVar

V = TypeVar("V")

LEGACY_PREFIXES: dict[str, str] = {"mvm_head.": "mvm.head.", "completion.": "mascot.decoder."}


def remap_legacy_keys(state: dict[str, V]) -> dict[str, V]:
    """A state dict with every key that starts with an old prefix renamed; other keys unchanged."""
    return {current_key(key): value for key, value in state.items()}


def current_key(key: str) -> str:
    """Today's name of ``key``, which may be a name of the old layout."""
    for old, new in LEGACY_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def legacy_key(key: str) -> str:
    """The name ``key`` had in the old layout (the inverse of :func:`remap_legacy_keys`), so that a
    folder written in that layout can be read into today's state dict under the names it holds."""
    for old, new in LEGACY_PREFIXES.items():
        if key.startswith(new):
            return old + key[len(new) :]
    return key
