"""A stream whose client sends nothing still has its lag checked, on a fake clock for the lag."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from starlette.websockets import WebSocket

from asrserve.engine import ModelRegistry
from asrserve.engine.streaming import LiveSession
from asrserve.observability.metrics import Metrics
from asrserve.ws import server as ws_server
from asrserve.ws.load import LoadOptions, StreamLag
from asrserve.ws.options import StreamServerOptions
from asrserve.ws.server import Connection, StreamOverloadedError, StreamServer
from tests.ws.conftest import FakeClock, NotDraining


def quiet(idle_timeout_s: float, late_s: float | None) -> bool:
    """Waits for a frame that never comes on a started stream (a final `late_s` past due, or
    none late); what `_await_frame` says."""

    async def wait() -> bool:
        options = StreamServerOptions(
            idle_timeout_s=idle_timeout_s, load=LoadOptions(overloaded_lag_s=1.0)
        )
        # No model is touched: the stream's session is a stand-in that is never fed.
        server = StreamServer(cast(ModelRegistry, None), options, Metrics(), NotDraining())
        connection = Connection(server, cast(WebSocket, None))
        connection.session = cast(LiveSession, object())
        clock = FakeClock()
        connection.lag = StreamLag(clock)
        if late_s is not None:
            connection.lag.waiting(1, clock.now - late_s)
        loop = asyncio.get_running_loop()
        connection._receiving = loop.create_future()
        connection._drain_begun = loop.create_future()
        # Bounded, so a check that never comes fails the test instead of hanging it.
        return await asyncio.wait_for(connection._await_frame(), 30)

    return asyncio.run(wait())


@pytest.fixture(autouse=True)
def frequent_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_server, "LAG_CHECK_S", 0.01)


def test_a_quiet_client_whose_final_is_late_is_told_server_overloaded() -> None:
    # Before: only a frame's arrival checked the lag, so a client that had sent its audio
    # (without the end message) waited for the idle timeout instead.
    with pytest.raises(StreamOverloadedError, match="behind real time"):
        quiet(idle_timeout_s=300.0, late_s=2.0)


def test_a_quiet_client_with_nothing_late_times_out_as_idle() -> None:
    assert quiet(idle_timeout_s=0.05, late_s=0.5) is False
    assert quiet(idle_timeout_s=0.05, late_s=None) is False
