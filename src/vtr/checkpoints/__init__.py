"""Everything about reading, checking and converting weights lives in this package."""

from .legacy import remap_legacy_keys

__all__ = ["remap_legacy_keys"]
