"""Limits, authentication, CORS, timeouts and graceful shutdown of a real server process."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from asrserve.engine import decode
from asrserve.evaluation.devset import Clip
from asrserve.evaluation.processes import ServerProcess, start_server
from asrserve.evaluation.wer import word_errors
from tests.support.media import encode

KEYS = ("k-test-first", "k-test-second")
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("strict"),
        name="strict",
        api_keys=",".join(KEYS),
        max_upload_mb="1",
        max_audio_seconds="20",
        max_concurrent_requests="1",
        max_waiting_requests="0",
        cors_origins=ORIGIN,
    )
    yield proc
    proc.stop()


def auth(key: str = KEYS[1]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wav_of(seconds: float, jfk: Clip, path: Path) -> Path:
    speech = decode(jfk.audio)
    repeats = int(np.ceil(seconds * 16000 / speech.size))
    return encode(np.tile(speech, repeats)[: int(seconds * 16000)], 16000, "wav", path)


def wait_until_active(server: ServerProcess, count: int) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/ready").json()["requests_active"] < count:
        assert time.monotonic() < deadline, "the first request never started decoding"
        time.sleep(0.02)


def test_api_keys_guard_every_route_but_health(strict: ServerProcess, jfk: Clip) -> None:
    url = f"{strict.url}/v1/audio/transcriptions"
    missing = httpx.post(url, files={"file": jfk.audio.open("rb")})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "missing_api_key"
    wrong = httpx.post(url, files={"file": jfk.audio.open("rb")}, headers=auth("k-test-firs"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{strict.url}/v1/models").status_code == 401
    for open_path in ("/health", "/ready", "/metrics"):
        assert httpx.get(f"{strict.url}{open_path}").status_code == 200
    for key in KEYS:
        client = OpenAI(base_url=f"{strict.url}/v1", api_key=key, max_retries=0)
        with jfk.audio.open("rb") as fh:
            assert (
                word_errors(
                    [jfk.text],
                    [client.audio.transcriptions.create(model="whisper-1", file=fh).text],
                ).rate
                == 0
            )
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{strict.url}/v1", api_key="nope", max_retries=0).models.list()


def test_upload_over_the_limit_is_refused_from_its_length(strict: ServerProcess) -> None:
    big = b"\0" * (2 * 1024 * 1024)
    response = httpx.post(
        f"{strict.url}/v1/audio/transcriptions", files={"file": ("big.wav", big)}, headers=auth()
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
    assert "1 MB" in response.json()["error"]["message"]


def test_upload_over_the_limit_is_refused_while_it_streams(strict: ServerProcess) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n\r\n'
        for _ in range(64):  # 4 MB offered, without a Content-Length
            sent += 65536
            yield b"\0" * 65536
        yield b"\r\n--b--\r\n"

    try:
        response = httpx.post(
            f"{strict.url}/v1/audio/transcriptions",
            content=body(),
            headers={**auth(), "Content-Type": "multipart/form-data; boundary=b"},
        )
    except httpx.TransportError:
        # The server may close the connection before the client finishes sending: that is the
        # refusal working; what matters is that it did not take the whole body.
        assert sent < 4 * 1024 * 1024
        return
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"


def test_audio_over_the_duration_limit(strict: ServerProcess, jfk: Clip, tmp_path: Path) -> None:
    path = wav_of(25, jfk, tmp_path / "long.wav")
    assert path.stat().st_size < 1024 * 1024
    response = httpx.post(
        f"{strict.url}/v1/audio/transcriptions", files={"file": path.open("rb")}, headers=auth()
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "audio_too_long"
    assert "20" in response.json()["error"]["message"]


def test_saturation_is_refused_with_retry_after(
    strict: ServerProcess, jfk: Clip, tmp_path: Path
) -> None:
    path = wav_of(19, jfk, tmp_path / "busy.wav")
    first: dict[str, int] = {}

    def occupy() -> None:
        r = httpx.post(
            f"{strict.url}/v1/audio/transcriptions",
            files={"file": path.open("rb")},
            headers=auth(),
            timeout=120,
        )
        first["status"] = r.status_code

    worker = threading.Thread(target=occupy)
    worker.start()
    wait_until_active(strict, 1)
    refused = httpx.post(
        f"{strict.url}/v1/audio/transcriptions",
        files={"file": jfk.audio.open("rb")},
        headers=auth(),
    )
    ready = httpx.get(f"{strict.url}/ready")
    worker.join()
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert ready.status_code == 503 and "request queue is full" in ready.json()["reasons"]
    assert first["status"] == 200
    assert httpx.get(f"{strict.url}/ready").status_code == 200
    assert 'asrserve_requests_rejected_total{reason="requests_full"}' in (
        httpx.get(f"{strict.url}/metrics").text
    )


def test_a_request_that_would_wait_too_long_is_refused_at_once(tmp_path: Path, jfk: Clip) -> None:
    """The waiting room has room by count (8), but not by time: one request decoding takes
    longer than the 0.05 s a request may wait, so the next is refused instead of queued."""
    server = start_server(
        tmp_path,
        name="patient",
        max_concurrent_requests="1",
        max_waiting_requests="8",
        max_queue_wait_s="0.05",
    )
    url = f"{server.url}/v1/audio/transcriptions"
    try:
        # Before any request has finished, nothing says how long a wait is: it would queue.
        warm = httpx.post(url, files={"file": jfk.audio.open("rb")}, timeout=120)
        assert warm.status_code == 200
        assert word_errors([jfk.text], [warm.json()["text"]]).rate < 0.15
        assert httpx.get(f"{server.url}/ready").json()["requests_wait_s"] == 0.0

        path = wav_of(19, jfk, tmp_path / "long.wav")
        first: dict[str, int] = {}

        def occupy() -> None:
            first["status"] = httpx.post(
                url, files={"file": path.open("rb")}, timeout=120
            ).status_code

        worker = threading.Thread(target=occupy)
        worker.start()
        wait_until_active(server, 1)
        refused = httpx.post(url, files={"file": jfk.audio.open("rb")})
        ready = httpx.get(f"{server.url}/ready")
        metrics = httpx.get(f"{server.url}/metrics").text
        worker.join()

        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "server_busy"
        assert "s of waiting" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) >= 1
        assert ready.status_code == 503 and "request queue is full" in ready.json()["reasons"]
        # The warm-up's slot time: more than the bound, however fast this machine decodes.
        assert ready.json()["requests_wait_s"] > 0.05
        assert 'asrserve_requests_rejected_total{reason="requests_wait"} 1.0' in metrics
        assert "asrserve_http_request_wait_estimate_seconds" in metrics
        assert first["status"] == 200
        assert httpx.get(f"{server.url}/ready").status_code == 200
    finally:
        server.stop()


def test_cors_allows_the_configured_origin_only(strict: ServerProcess) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = httpx.options(
        f"{strict.url}/v1/audio/transcriptions", headers={"Origin": ORIGIN, **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(
        f"{strict.url}/v1/audio/transcriptions",
        headers={"Origin": "https://evil.example", **preflight},
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_a_request_past_its_deadline_gets_504(tmp_path: Path, en_long_clips: list[Clip]) -> None:
    audio = np.concatenate([decode(c.audio) for c in en_long_clips])  # 232 s: seconds of work
    path = encode(audio, 16000, "flac", tmp_path / "all.flac")
    server = start_server(
        tmp_path, name="hasty", request_timeout_s="1", max_concurrent_requests="1"
    )
    try:
        response = httpx.post(
            f"{server.url}/v1/audio/transcriptions", files={"file": path.open("rb")}, timeout=120
        )
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "timeout"
        assert "/v1/jobs" in response.json()["error"]["message"]
        # The abandoned decode stops, and the slot comes back for the next request.
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/ready").json()["requests_active"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.stop()


def test_sigterm_finishes_in_flight_requests_then_exits(
    tmp_path: Path, en_long_clips: list[Clip]
) -> None:
    server = start_server(tmp_path, name="graceful")
    clip = en_long_clips[0]
    result: dict[str, object] = {}

    def in_flight() -> None:
        r = httpx.post(
            f"{server.url}/v1/audio/transcriptions",
            files={"file": clip.audio.open("rb")},
            timeout=300,
        )
        result["status"] = r.status_code
        result["text"] = r.json().get("text", "")

    worker = threading.Thread(target=in_flight)
    worker.start()
    wait_until_active(server, 1)
    server.proc.send_signal(signal.SIGTERM)
    worker.join()
    assert server.proc.wait(60) == 0
    assert result["status"] == 200
    assert word_errors([clip.text], [str(result["text"])]).rate < 0.15
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)
