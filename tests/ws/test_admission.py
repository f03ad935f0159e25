"""New streams are refused with server_busy while the models are behind, whatever max_streams."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from asrserve.engine import ModelRegistry
from asrserve.observability.metrics import Metrics
from asrserve.ws.load import LiveLoad, StreamCapacity
from asrserve.ws.options import StreamServerOptions
from asrserve.ws.server import StreamServer
from tests.ws.conftest import NotDraining


def refusal(lag_s: float, max_streams: int | None) -> tuple[dict[str, Any], int, bytes]:
    metrics = Metrics()
    # Refused before any model is touched: no registry needed.
    server = StreamServer(
        cast(ModelRegistry, None), StreamServerOptions(max_streams=max_streams), metrics,
        NotDraining(),
    )  # fmt: skip
    server.load = LiveLoad(lambda: lag_s)
    server.capacity = StreamCapacity(lambda: None)
    app = Starlette(routes=[WebSocketRoute("/", server.handle)])
    with TestClient(app) as client, client.websocket_connect("/") as ws:
        message = json.loads(ws.receive_text())
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    return message, closed.value.code, metrics.render()[0]


@pytest.mark.parametrize("max_streams", [None, 16])
def test_a_server_behind_refuses_new_streams(max_streams: int | None) -> None:
    message, code, scrape = refusal(2.5, max_streams)
    assert message["code"] == "server_busy" and "behind" in message["error"]
    assert code == 1013
    assert b'asrserve_requests_rejected_total{reason="streams_behind"} 1.0' in scrape
    assert b"asrserve_stream_load_level 3.0" in scrape
    assert b"asrserve_stream_limit 256.0" in scrape or max_streams == 16
