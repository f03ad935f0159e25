"""`/health` and `/metrics` over plain HTTP for processes that have no API (job workers)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable

from asrserve.observability.metrics import Metrics


class HealthServer:
    """A small threaded HTTP server: `/health` answers 200 while `healthy()` is true (503
    otherwise), `/metrics` the process's Prometheus metrics. Port 0 picks a free one."""

    def __init__(self, host: str, port: int, metrics: Metrics, healthy: Callable[[], bool]) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] == "/health":
                    ok = outer.healthy()
                    self._answer(
                        200 if ok else 503, b"ok\n" if ok else b"unhealthy\n", "text/plain"
                    )
                elif self.path.split("?", 1)[0] == "/metrics":
                    payload, content_type = outer.metrics.render()
                    self._answer(200, payload, content_type)
                else:
                    self._answer(404, b"not found\n", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # probes every few seconds would flood the log

        self.metrics = metrics
        self.healthy = healthy
        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="asrserve-health", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
