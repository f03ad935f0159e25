"""deploy/compose.yaml run for real on a Docker daemon of our own (asrserve.evaluation.docker),
with the host-networking override.

Shared by tests/deploy/test_compose.py and bench/load.py. Compose v1 cannot drop a list in an
override, so the stack runs compose.yaml less its published ports (host networking refuses
them), its relative paths still resolved from deploy/; tests/deploy/compose.hostnet.yaml puts
every service on the host's network at its own loopback address.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from asrserve.evaluation.docker import ROOT, SERVICES_IMAGE, DockerDaemon

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
HOSTNET = ROOT / "tests" / "deploy" / "compose.hostnet.yaml"
NGINX = "http://127.0.77.7:8080"
PROMETHEUS = "http://127.0.77.8:9090"
PROJECT = "asrserve-test"
SECRETS = {"POSTGRES_PASSWORD": "compose-test-password", "GRAFANA_ADMIN_PASSWORD": "unused"}
SERVICES = 8


@dataclass
class Stack:
    daemon: DockerDaemon
    files: tuple[Path, ...]
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.daemon.compose(
            self.files, PROJECT, *args, env=self.env, timeout=timeout, directory=DEPLOY
        )

    def logs(self, *services: str, tail: int = 60) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", *services, timeout=120).stdout

    def wait_healthy(self, timeout_s: float = 600) -> None:
        ids = self.compose("ps", "--quiet", timeout=60).stdout.split()
        assert len(ids) == SERVICES, self.compose("ps", timeout=60).stdout
        deadline = time.monotonic() + timeout_s
        while True:
            states = {}
            for container in ids:
                info = self.daemon.inspect(container)
                state = info["State"]
                assert isinstance(state, dict)
                states[str(info["Name"])] = state.get("Health", {}).get("Status", "none")
            if all(s == "healthy" for s in states.values()):
                return
            assert time.monotonic() < deadline, f"{states}\n{self.logs()[-12000:]}"
            time.sleep(2)


@contextmanager
def running_stack(daemon: DockerDaemon, scratch: Path, image: str) -> Iterator[Stack]:
    """The whole stack up and healthy; taken down, volumes and all, afterwards."""
    daemon.import_rootfs("services", SERVICES_IMAGE)
    # deploy/nginx/nginx.conf as it is, listening at nginx's own loopback address.
    conf = (DEPLOY / "nginx/nginx.conf").read_text()
    assert conf.count("listen 8080;") == 1
    (scratch / "nginx.conf").write_text(conf.replace("listen 8080;", "listen 127.0.77.7:8080;"))
    services = yaml.safe_load(COMPOSE.read_text())
    for service in services["services"].values():
        service.pop("ports", None)
    unpublished = scratch / "compose.yaml"
    unpublished.write_text(yaml.safe_dump(services, sort_keys=False))
    stack = Stack(
        daemon,
        (unpublished, HOSTNET),
        {
            **SECRETS,
            "ASRSERVE_IMAGE": image,
            "SERVICES_IMAGE": SERVICES_IMAGE,
            "STANDINS": str(HOSTNET.parent / "standins"),
            "NGINX_CONF": str(scratch / "nginx.conf"),
        },
    )
    started = time.monotonic()
    # `up` returns once every service is started, each after those it depends on are healthy.
    up = stack.compose("up", "--detach", "--no-build", timeout=900)
    try:
        assert up.returncode == 0, up.stderr[-4000:] + stack.logs()[-8000:]
        stack.wait_healthy()
        # Shown by the tests (-rA) and the benchmark alike: how long the stack took to come up.
        print(  # noqa: T201
            f"compose: all {SERVICES} services healthy {time.monotonic() - started:.0f} s after up"
        )
        yield stack
    finally:
        down = stack.compose("down", "--volumes", "--timeout=40", timeout=300)
        print(f"compose down: exit {down.returncode}")  # noqa: T201
