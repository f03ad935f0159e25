"""Real `asrserve serve` and `asrserve worker` processes on loopback ports, started and stopped
for the end-to-end tests and the benchmarks (bench/).

Each process runs this interpreter's `python -m asrserve.cli` with only the ASRSERVE_*
settings given here (none from the caller's environment) and is ready once it answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 180
"""How long a server or worker process may take to answer /health (a first model load)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass
class ServerProcess(_Process):
    url: str
    data_dir: Path


def start_server(tmp: Path, name: str = "server", **settings: str) -> ServerProcess:
    """`settings` are ASRSERVE_* variables without the prefix, e.g. max_upload_mb="1"."""
    port = free_port()
    data_dir = Path(settings.pop("data_dir", str(tmp / f"{name}-data")))
    env = server_env(port, data_dir, settings)
    tls = settings.get("tls_self_signed") == "true" or bool(settings.get("tls_certfile"))
    scheme = "https" if tls else "http"
    return launch(f"{scheme}://127.0.0.1:{port}", tmp / f"{name}.log", data_dir, env)


def launch(url: str, log_path: Path, data_dir: Path, env: dict[str, str]) -> ServerProcess:
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "asrserve.cli", "serve"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = ServerProcess(proc, log_path, env, url=url, data_dir=data_dir)
    _wait_ready(server, f"{url}/ready", "server")
    return server


def _wait_ready(process: _Process, url: str, what: str) -> None:
    """Until `url` answers 200; a process that exits or stays unready is reported with its log
    (and killed)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.proc.returncode}:\n{process.log[-4000:]}"
            )
        try:
            if httpx.get(url, timeout=2, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.stop(signal.SIGKILL)
    raise RuntimeError(f"{what} not ready within {READY_TIMEOUT_S} s:\n{process.log[-4000:]}")


def restart(server: ServerProcess) -> ServerProcess:
    """Start the same server again (same port, data and settings) after it stopped."""
    return launch(server.url, server.log_path, server.data_dir, server.env)


@dataclass
class WorkerProcess(_Process):
    health_url: str


def server_env(port: int | None, data_dir: Path, settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASRSERVE_")}
    if port is not None:
        env["ASRSERVE_PORT"] = str(port)
    env.update(
        ASRSERVE_HOST="127.0.0.1",
        ASRSERVE_DATA_DIR=str(data_dir),
        ASRSERVE_LOG_LEVEL="info",
        ASRSERVE_LOG_FORMAT="json",
        **{f"ASRSERVE_{k.upper()}": v for k, v in settings.items()},
    )
    return env


def start_worker(tmp: Path, name: str = "worker", **settings: str) -> WorkerProcess:
    """`asrserve worker` with ASRSERVE_* `settings`; ready once its /health answers 200."""
    port = free_port()
    env = server_env(None, tmp / f"{name}-data", {**settings, "worker_port": str(port)})
    log_path = tmp / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "asrserve.cli", "worker"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    worker = WorkerProcess(proc, log_path, env, health_url=f"http://127.0.0.1:{port}/health")
    _wait_ready(worker, worker.health_url, "worker")
    return worker
