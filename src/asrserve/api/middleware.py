"""ASGI middleware: request ids, access logs and metrics, and the upload size cap.

Written as plain ASGI (not BaseHTTPMiddleware) so streamed responses (SSE) pass through
untouched and the body cap can act on each chunk as it arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asrserve.api.errors import BODY_TOO_LARGE, body_refusal, shutdown_refusal
from asrserve.observability.logging import request_id
from asrserve.observability.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("asrserve.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


async def send_json(
    send: Send, status: int, body: dict[str, object], headers: list | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Gives every request an id (the client's X-Request-ID if sane), logs and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.monotonic()
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # In this server a request is cancelled from outside before it answered when
            # uvicorn's shutdown grace is over; uvicorn's own answer would be a plain-text 500
            # that OpenAI clients cannot parse.
            if not responded:
                await send_json(send_with_id, 503, shutdown_refusal(),
                                [(b"retry-after", b"1"), (b"connection", b"close")])  # fmt: skip
            raise
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.monotonic() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.track_request(scope["method"], route, status, elapsed)
            log.info(
                "request",
                extra={"method": scope["method"], "path": scope["path"], "route": route,
                       "status": status, "seconds": round(elapsed, 4)},
            )  # fmt: skip
            request_id.reset(token)


class BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Refuses a body over `max_bytes` with 413 as soon as that is known: at once from
    Content-Length, or while the body streams in, before it is buffered anywhere."""

    def __init__(self, app: ASGIApp, max_bytes: int | None, metrics: Metrics) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    def _refusal(self) -> dict[str, object]:
        return body_refusal(self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        max_bytes = self.max_bytes
        if scope["type"] != "http" or max_bytes is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            self.metrics.track_rejected("upload_too_large")
            await send_json(send, 413, self._refusal(), [(b"connection", b"close")])
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    scope[BODY_TOO_LARGE] = max_bytes
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            self.metrics.track_rejected("upload_too_large")
            if not started:
                await send_json(send, 413, self._refusal(), [(b"connection", b"close")])
