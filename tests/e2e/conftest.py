"""Real servers for the end-to-end tests, started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asrserve.evaluation.processes import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default configuration: embedded model, no auth, generous limits."""
    proc = start_server(tmp_path_factory.mktemp("server"))
    yield proc
    proc.stop()
