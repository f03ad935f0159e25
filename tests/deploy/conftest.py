"""The Docker daemon and the asrserve image, shared by the docker and Compose tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrserve.evaluation.docker import (
    BASE_IMAGE,
    DockerDaemon,
    DockerUnavailableError,
    build_context,
    build_image,
)

IMAGE = "asrserve:test"


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    daemon = DockerDaemon()
    try:
        daemon.start()
    except DockerUnavailableError as exc:
        print(f"docker tests skipped: the daemon cannot start here: {exc}")
        pytest.skip(f"the docker daemon cannot start here: {exc}")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def image_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_context(tmp_path_factory.mktemp("context"))


@pytest.fixture(scope="session")
def asrserve_image(docker_daemon: DockerDaemon, image_context: Path) -> str:
    """deploy/docker/Dockerfile built offline: the debootstrap base, pip from a wheelhouse, no
    network in the build."""
    started = time.monotonic()
    docker_daemon.import_rootfs("base", BASE_IMAGE)
    size = build_image(docker_daemon, image_context, IMAGE, "Dockerfile", BASE_IMAGE=BASE_IMAGE)
    print(f"image {IMAGE}: {size / 1e6:.0f} MB, built in {time.monotonic() - started:.0f} s")
    return IMAGE
