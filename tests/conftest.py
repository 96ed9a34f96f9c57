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


@pytest.fixture(scope="session")
def tiny_demo_shards(tiny_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``data.shards`` overrides that read the tiny demo's training sets from shards."""
    from helpers.shards import shard_demo_train_sets

    folders = shard_demo_train_sets(tiny_demo_root, tmp_path_factory.mktemp("shards"))
    return [f"data.shards.{name}={folder}" for name, folder in folders.items()]
