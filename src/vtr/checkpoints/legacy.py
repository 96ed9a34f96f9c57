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
    out: dict[str, V] = {}
    for key, value in state.items():
        for old, new in LEGACY_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out
