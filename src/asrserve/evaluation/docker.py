"""A Docker daemon of our own, and the asrserve images built and run on it, for the deployment
tests (tests/deploy) and the load benchmark's Compose target (bench/load.py).

It works from a checkout of the repository (the editable install `make install` makes): the
build context, the scripts and deploy/ are read from there (ROOT).

DEPLOY-NOTES' rules hold here: the daemon runs with `--bridge=none --iptables=false`, so no
bridge network (a private address range) is ever made, and every container uses the host's
network. No image registry is reachable, so the base images are root filesystems made offline
(`scripts/build_base_image.sh`) and `docker import`ed, and pip in a build installs from a
wheelhouse prepared on the host (`scripts/build_wheelhouse.sh`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
"""The repository checkout: src/asrserve/evaluation/ is three levels below it."""
BASE_IMAGE = "asrserve-base:bookworm"
SERVICES_IMAGE = "asrserve-services:bookworm"


class DockerUnavailableError(RuntimeError):
    """The daemon cannot run on this machine; the message says why."""


def docker_cli() -> str:
    # Debian's client matches Debian's daemon; a newer client elsewhere on PATH also works.
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).exists():
            return candidate
    raise DockerUnavailableError(
        "no docker client (scripts/install_services.sh installs docker.io)"
    )


class DockerDaemon:
    """`dockerd` in a temporary directory of its own, on a socket of its own."""

    def __init__(self) -> None:
        # A short path: the socket's name must fit in sun_path (108 bytes).
        self.directory = Path(tempfile.mkdtemp(prefix="asrd-", dir="/tmp"))
        self.socket = self.directory / "docker.sock"
        self.log = self.directory / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.cli = docker_cli()

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}

    def start(self, timeout_s: float = 60.0) -> DockerDaemon:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise DockerUnavailableError("dockerd is missing (scripts/install_services.sh)")
        if os.geteuid() != 0:
            raise DockerUnavailableError("dockerd needs root")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    dockerd,
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                    f"--data-root={self.directory / 'root'}",
                    f"--exec-root={self.directory / 'exec'}",
                    f"--pidfile={self.directory / 'docker.pid'}",
                    f"--host=unix://{self.socket}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DockerUnavailableError(f"dockerd exited: {self._log_tail()}")
            if self.socket.exists() and self.run("info", check=False, timeout=10).returncode == 0:
                return self
            time.sleep(0.5)
        self.stop()
        raise DockerUnavailableError(f"dockerd did not answer in {timeout_s} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 600,
        stdin: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        with (stdin or Path(os.devnull)).open("rb") as fh:
            result = subprocess.run(
                [self.cli, *args],
                env=self.env,
                stdin=fh,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        if check and result.returncode != 0:
            output = (result.stdout[-3000:] + result.stderr[-3000:]).strip()
            raise RuntimeError(f"docker {' '.join(args)}: {output}")
        return result

    def compose(
        self,
        files: Sequence[Path],
        project: str,
        *args: str,
        env: dict[str, str],
        timeout: float,
        directory: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        compose = shutil.which("docker-compose")
        if compose is None:
            raise DockerUnavailableError("docker-compose is missing (scripts/install_services.sh)")
        command = [compose, "--project-name", project]
        if directory is not None:
            command += ["--project-directory", str(directory)]
        for file in files:
            command += ["--file", str(file)]
        return subprocess.run(
            [*command, *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def inspect(self, container: str) -> dict[str, object]:
        data = json.loads(self.run("inspect", container).stdout)
        return dict(data[0])

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0

    def import_rootfs(self, kind: str, name: str) -> None:
        """`docker import` a root filesystem made by scripts/build_base_image.sh."""
        if self.has_image(name):
            return
        made = subprocess.run(
            [str(ROOT / "scripts" / "build_base_image.sh"), kind],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if made.returncode != 0:
            raise RuntimeError(f"build_base_image.sh {kind}: {made.stderr[-3000:]}")
        self.run("import", "-", name, stdin=Path(made.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Containers first, so the daemon's shutdown does not wait on them.
            running = self.run("ps", "-q", check=False, timeout=30).stdout.split()
            if running:
                self.run("kill", *running, check=False, timeout=60)
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._unmount_leftovers()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _unmount_leftovers(self) -> None:
        # A killed daemon may leave overlay and shm mounts under its root; rmtree cannot pass them.
        mounts = Path("/proc/mounts").read_text().splitlines()
        ours = [line.split()[1] for line in mounts if str(self.directory) in line.split()[1]]
        for mount in sorted(ours, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def build_context(destination: Path) -> Path:
    """The repository's build context (what .dockerignore lets in) plus the wheelhouse, copied
    so that the build never writes into the checkout."""
    for name in ("pyproject.toml", "constraints.txt", "README.md", ".dockerignore"):
        shutil.copy2(ROOT / name, destination / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.whl")
    shutil.copytree(ROOT / "src", destination / "src", ignore=ignore)
    shutil.copytree(ROOT / "deploy" / "docker", destination / "deploy" / "docker", ignore=ignore)
    wheels = subprocess.run(
        [
            str(ROOT / "scripts" / "build_wheelhouse.sh"),
            str(destination / "deploy/docker/wheelhouse"),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if wheels.returncode != 0:
        raise RuntimeError(f"build_wheelhouse.sh: {wheels.stderr[-3000:]}")
    return destination


def build_image(
    daemon: DockerDaemon, context: Path, tag: str, dockerfile: str, **build_args: str
) -> int:
    """`docker build` offline (no network, pip from the context's wheelhouse); the image size."""
    daemon.run(
        "build",
        "--network=none",
        f"--file={context / 'deploy/docker' / dockerfile}",
        "--build-arg=PIP_NO_INDEX=1",
        *(f"--build-arg={key}={value}" for key, value in build_args.items()),
        f"--tag={tag}",
        str(context),
        timeout=1500,
    )
    return int(daemon.run("image", "inspect", "--format={{.Size}}", tag).stdout)


def wait_healthy(daemon: DockerDaemon, container: str, timeout_s: float) -> str:
    """The container's HEALTHCHECK status once it leaves `starting` (or at the deadline)."""
    deadline = time.monotonic() + timeout_s
    status = "starting"
    while time.monotonic() < deadline:
        state = daemon.inspect(container)["State"]
        assert isinstance(state, dict)
        if not state.get("Running"):
            return f"exited ({state.get('ExitCode')})"
        status = str(state.get("Health", {}).get("Status", "none"))
        if status == "healthy":
            return status
        time.sleep(1)
    return status
