"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_modules.demo import DemoSizes, generate_demo_corpus


@pytest.fixture(scope="session")
def tiny_demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic demo corpus (every layout, a few items a split), built once per session."""
    return generate_demo_corpus(
        tmp_path_factory.mktemp("demo"), seed=0, sizes=DemoSizes.tiny(), workers=1, progress=False
    )
