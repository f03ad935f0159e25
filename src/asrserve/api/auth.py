"""Optional Bearer API keys, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import WebSocketException
from starlette.requests import HTTPConnection

from asrserve.api.errors import ApiError

# The demo page holds no secret; the calls it makes carry the key the user types.
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/demo"})


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def accepts(self, presented: str) -> bool:
        candidate = presented.encode()
        # Compare with every key, always, so timing does not tell how many keys matched.
        matches = [hmac.compare_digest(candidate, key) for key in self._keys]
        return any(matches)

    def check(self, request: HTTPConnection) -> None:
        if not self.enabled or request.url.path in OPEN_PATHS:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if request.scope["type"] == "websocket":
            # Browsers cannot set headers on a WebSocket: the key may come as ?api_key=.
            presented = token.strip() if scheme.lower() == "bearer" else ""
            presented = presented or request.query_params.get("api_key", "")
            if not presented or not self.accepts(presented):
                raise WebSocketException(1008, "An API key is needed: Bearer header or ?api_key=.")
            return
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "This server needs an API key: send 'Authorization: Bearer <key>'.",
                code="missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not self.accepts(token.strip()):
            raise ApiError(
                401, "The API key is not valid.", code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
