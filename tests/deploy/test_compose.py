"""deploy/compose.yaml: validated, then run for real with the host-networking override.

Through nginx, as a user of the stack would: a transcription, a live 2pass stream and an async
job that one of the two workers finishes; and Prometheus scraping all four asrserve processes
with the alert rules loaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asrserve.evaluation.compose_stack import (
    COMPOSE,
    DEPLOY,
    HOSTNET,
    NGINX,
    PROMETHEUS,
    SECRETS,
    Stack,
    running_stack,
)
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.docker import DockerDaemon
from asrserve.evaluation.wer import word_errors
from tests.support.funasr import config, finals, pcm_of, session


def _compose_config(*files: Path, env: dict[str, str], profile: str | None = None) -> None:
    command = [shutil.which("docker-compose") or "docker-compose"]
    if profile:
        command += ["--profile", profile]
    for file in files:
        command += ["--file", str(file)]
    result = subprocess.run(
        [*command, "config", "--quiet"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_files_are_valid(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is missing: scripts/install_services.sh installs it")
    _compose_config(COMPOSE, env=SECRETS)
    _compose_config(COMPOSE, env=SECRETS, profile="grafana")
    standins = {"SERVICES_IMAGE": "x", "STANDINS": str(tmp_path), "NGINX_CONF": str(tmp_path)}
    _compose_config(COMPOSE, HOSTNET, env={**SECRETS, **standins})
    # A secret left unset is refused with a message, never run with a default.
    result = subprocess.run(
        ["docker-compose", "--file", str(COMPOSE), "config", "--quiet"],
        env={k: v for k, v in os.environ.items() if k not in SECRETS},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in deploy/.env" in result.stderr
    print("docker-compose config -q: compose.yaml, --profile grafana, with compose.hostnet.yaml")


def test_prometheus_config_and_rules_check(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: scripts/install_services.sh installs prometheus")
    rules = DEPLOY / "helm/asrserve/files/alerts.yaml"
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(
        (DEPLOY / "prometheus/prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/rules/alerts.yaml", str(rules))
    )
    result = subprocess.run(
        [promtool, "check", "config", str(config_file)], capture_output=True, text=True
    )
    print(f"promtool check config: {result.stdout.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def stack(
    docker_daemon: DockerDaemon, asrserve_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(docker_daemon, tmp_path_factory.mktemp("compose"), asrserve_image) as up:
        yield up


def test_transcription_through_nginx(stack: Stack, jfk: Clip) -> None:
    with jfk.audio.open("rb") as fh:
        response = httpx.post(
            f"{NGINX}/v1/audio/transcriptions",
            files={"file": ("jfk.wav", fh)},
            headers={"X-Request-ID": "compose-test-1"},
            timeout=300,
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "compose-test-1", "the client's id goes through"
    assert word_errors([jfk.text], [response.json()["text"]]).rate == 0.0
    assert httpx.get(f"{NGINX}/metrics").status_code == 404, "metrics are not public"


def test_live_2pass_stream_through_nginx(stack: Stack, jfk: Clip) -> None:
    # At the pace of a microphone: partials are decoded beside the stream.
    url = f"{NGINX.replace('http', 'ws')}/"
    messages = asyncio.run(session(url, config(), pcm_of(jfk), pace=0.06))
    assert messages[0]["mode"] == "2pass-online", "a partial before any final"
    text = " ".join(m["text"] for m in finals(messages, "2pass-offline"))
    assert word_errors([jfk.text], [text]).rate < 0.2, text
    assert messages[-1]["is_final"] is True


def test_async_job_through_nginx_is_finished_by_a_worker(stack: Stack, jfk: Clip) -> None:
    with jfk.audio.open("rb") as fh:
        submitted = httpx.post(f"{NGINX}/v1/jobs", files={"file": fh}, timeout=60)
    assert submitted.status_code == 202, submitted.text + stack.logs()
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 300
    while (job := httpx.get(f"{NGINX}/v1/jobs/{job_id}", timeout=30).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "succeeded", job
    result = httpx.get(f"{NGINX}/v1/jobs/{job_id}", params={"format": "json"}, timeout=30)
    assert word_errors([jfk.text], [result.json()["text"]]).rate == 0.0
    # The APIs only queue jobs (ASRSERVE_JOB_QUEUE is Redis): a worker ran it and says so.
    worker_logs = stack.logs("worker-1", "worker-2", tail=400)
    assert job_id in worker_logs


def test_prometheus_scrapes_every_process_with_the_alert_rules(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    while True:
        targets = httpx.get(f"{PROMETHEUS}/api/v1/targets", timeout=10).json()["data"]
        health = {t["labels"]["instance"]: t["health"] for t in targets["activeTargets"]}
        if len(health) == 4 and all(h == "up" for h in health.values()):
            break
        assert time.monotonic() < deadline, health
        time.sleep(2)
    assert sorted(health) == [
        "api-1:8000",
        "api-2:8000",
        "worker-1:9464",
        "worker-2:9464",
    ]
    groups = httpx.get(f"{PROMETHEUS}/api/v1/rules", timeout=10).json()["data"]["groups"]
    alerts = [r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"]
    print(f"prometheus: 4 targets up, {len(alerts)} alert rules loaded: {', '.join(alerts)}")
    assert len(alerts) >= 5
