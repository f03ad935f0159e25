"""A streamed (SSE) transcription gives back its admission slot and its model however the
client leaves: before the headers, or in the middle of the events. Driven at the ASGI level
in process, with the real default model, because only there can a test be the client that
vanishes at a chosen moment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message, Scope

from asrserve.config import Settings
from asrserve.evaluation.devset import Clip
from asrserve.runtime.server import create_app


class ClientGone(OSError):
    """What the ASGI server's `send` raises once the client's socket is closed."""


def asgi_request(audio: Path) -> tuple[Scope, bytes]:
    request = httpx.Request(
        "POST",
        "http://127.0.0.1/v1/audio/transcriptions",
        files={"file": (audio.name, audio.read_bytes(), "audio/wav")},
        data={"stream": "true", "language": "en"},
    )
    body = request.read()
    scope = {
        "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/audio/transcriptions", "raw_path": b"/v1/audio/transcriptions",
        "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    return scope, body


@pytest.mark.parametrize(
    ("spec_version", "leaves"),
    [
        # ASGI 2.4 servers raise from send() once the client is gone: here at the headers, so
        # the body (the events generator) is never started.
        ("2.4", "before the headers"),
        # Older servers report http.disconnect; Starlette then cancels the body mid-stream.
        ("2.3", "after the headers"),
    ],
)
def test_a_client_that_leaves_gives_back_the_slot_and_the_model(
    tmp_path: Path, jfk: Clip, spec_version: str, leaves: str
) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    scope, body = asgi_request(jfk.audio)
    scope["asgi"] = {"version": "3.0", "spec_version": spec_version}
    sent: list[str] = []
    headers_sent = asyncio.Event()

    async def receive_then_disconnect() -> AsyncIterator[Message]:
        yield {"type": "http.request", "body": body, "more_body": False}
        await headers_sent.wait()
        yield {"type": "http.disconnect"}

    async def run() -> tuple[int, int, list[int]]:
        async with app.router.lifespan_context(app):
            services = app.state.services
            messages = receive_then_disconnect()

            async def receive() -> Message:
                return await anext(messages)

            async def send(message: Message) -> None:
                sent.append(message["type"])
                if message["type"] == "http.response.start":
                    headers_sent.set()
                    if leaves == "before the headers":
                        raise ClientGone("the client closed the connection")

            with contextlib.suppress(ClientDisconnect):  # how Starlette reports ClientGone
                await asyncio.wait_for(app(scope, receive, send), timeout=120)
            refs = [m.refs for m in services.registry.loaded()]
            return services.admission.active, services.admission.waiting, refs

    active, waiting, refs = asyncio.run(run())
    assert "http.response.start" in sent, "the request must have reached the response"
    assert (active, waiting) == (0, 0), f"admission slot kept after the client left {leaves}"
    assert refs and all(r == 0 for r in refs), f"model references kept: {refs}"
