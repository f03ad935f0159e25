"""Scaled out for real: two API processes and two workers on PostgreSQL and Redis (AOF on), all
started here on loopback, with workers, API processes, Redis and PostgreSQL killed mid-run.

What must hold every time: no accepted job is lost, none runs to a result twice, and the API
answers a database outage with 503 and a sentence, never a 500 or a hang.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asrserve.engine import decode
from asrserve.evaluation.cluster import (
    Cluster,
    finished,
    job,
    started,
    submit,
    wait_finished,
    wait_until_running,
)
from asrserve.evaluation.devset import Clip, clean_read
from asrserve.evaluation.services import PostgresServer
from asrserve.evaluation.wer import word_errors
from asrserve.jobs.webhooks import SIGNATURE_HEADER, verify_signature
from tests.support.media import encode
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.timeout(900)

SECRET = "test-signing-secret"


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    url = postgres_server.create_database("scale_out")
    c = Cluster.start(
        tmp_path_factory.mktemp("cluster"),
        url,
        webhook_secret=SECRET,
        webhook_allow_private="true",  # the receiver below is on loopback
        shutdown_grace_s="0",
    )
    yield c
    c.stop()


@pytest.fixture(scope="module")
def short_clips(en_clips: list[Clip]) -> list[Clip]:
    """Ordinary speech of at most 10 s: whisper-base decodes these at 7-9 % WER in-process
    (docs/benchmarks-http.md), so the jobs' text can be held to a tight bound."""
    clips = [c for c in clean_read(en_clips) if c.duration <= 10.0]
    assert len(clips) >= 50
    return clips[:50]


@pytest.fixture(scope="module")
def long_clip(en_long_clips: list[Clip]) -> Clip:
    """53 s of real speech in two decode chunks: a job has reported the first while the second
    decodes, long enough to kill a worker in the middle of it. With three such files (2.6 min,
    decoded in four tests) this module took 9 min on a slow 2-core machine (2026-12-02)."""
    clip = en_long_clips[0]
    assert clip.duration > 45
    return clip


@pytest.fixture(scope="module")
def long_file(long_clip: Clip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode(
        decode(long_clip.audio), 16000, "mp3", tmp_path_factory.mktemp("long") / "long.mp3"
    )


def test_fifty_jobs_across_two_apis_each_run_once_with_the_right_text(
    cluster: Cluster, short_clips: list[Clip]
) -> None:
    ids = [
        submit(cluster.apis[n % 2], clip.audio, language="en")["id"]
        for n, clip in enumerate(short_clips)
    ]
    done = wait_finished(cluster.apis[1], ids)
    assert {d["status"] for d in done.values()} == {"succeeded"}
    assert all(d["attempts"] == 1 for d in done.values())
    texts = [
        httpx.get(f"{cluster.apis[n % 2].url}/v1/jobs/{job_id}?format=text", timeout=30).text
        for n, job_id in enumerate(ids)
    ]
    wer = word_errors([c.text for c in short_clips], texts)
    assert wer.rate < 0.12, f"WER {wer.rate:.1%} over {len(ids)} jobs"
    logs = [w.log for w in cluster.workers]
    for job_id in ids:
        assert sum(finished(log, job_id) for log in logs) == 1, job_id
    # Both workers took jobs: the queue spreads them.
    assert all(any(started(log, j) for j in ids) for log in logs)


def test_a_worker_killed_mid_job_loses_nothing_and_the_other_finishes_it(
    cluster: Cluster, long_clip: Clip, long_file: Path
) -> None:
    created = submit(cluster.apis[0], long_file, language="en")
    wait_until_running(cluster.apis[0], created["id"])
    victim = cluster.remove_worker(cluster.worker_running(created["id"]))
    victim.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    # The lease (6 s here) runs out and the other worker's reaper queues it again.
    resumed = wait_finished(cluster.apis[1], [created["id"]])[created["id"]]
    assert resumed["status"] == "succeeded", resumed
    assert resumed["attempts"] == 2
    survivors = [w for w in cluster.workers if w is not victim]
    assert sum(finished(w.log, created["id"]) for w in survivors) == 1
    assert finished(victim.log, created["id"]) == 0
    text = httpx.get(f"{cluster.apis[1].url}/v1/jobs/{created['id']}?format=text").text
    assert word_errors([long_clip.text], [text]).rate < 0.15, text
    # Recovery waited for the lease, not for the broker's visibility timeout (5 hours).
    assert time.monotonic() - killed_at < 300
    cluster.add_worker()


def test_a_worker_stopped_by_sigterm_hands_its_job_back(cluster: Cluster, long_file: Path) -> None:
    created = submit(cluster.apis[0], long_file, language="en")
    wait_until_running(cluster.apis[0], created["id"])
    draining = cluster.remove_worker(cluster.worker_running(created["id"]))
    assert draining.stop(signal.SIGTERM) == 0  # grace 0: handed back at the next progress report
    done = wait_finished(cluster.apis[0], [created["id"]])[created["id"]]
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1, "a graceful hand-back is not a failed attempt"
    assert finished(draining.log, created["id"]) == 0
    cluster.add_worker()


def test_an_api_process_killed_while_accepting_jobs_loses_none_it_accepted(
    cluster: Cluster, short_clips: list[Clip]
) -> None:
    victim = cluster.add_api()
    accepted: list[str] = []
    stop = threading.Event()

    def client() -> None:
        for clip in short_clips[:20]:
            if stop.is_set():
                return
            try:
                with clip.audio.open("rb") as fh:
                    response = httpx.post(
                        f"{victim.url}/v1/jobs", files={"file": fh}, data={"language": "en"}
                    )
            except httpx.TransportError:
                return  # the process died under this request: it was not accepted
            if response.status_code == 202:
                accepted.append(response.json()["id"])

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 120
    while len(accepted) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.stop(signal.SIGKILL)
    stop.set()
    thread.join(60)
    cluster.apis.remove(victim)
    assert len(accepted) >= 5
    done = wait_finished(cluster.apis[0], accepted)
    assert {d["status"] for d in done.values()} == {"succeeded"}


def test_redis_killed_and_restarted_mid_run_loses_no_queued_job(
    cluster: Cluster, short_clips: list[Clip]
) -> None:
    ids = [submit(cluster.apis[0], c.audio, language="en")["id"] for c in short_clips[:10]]
    cluster.redis.kill()
    # Accepted while the broker is down: stored, then sent again by the reaper.
    started_at = time.monotonic()
    during = [submit(cluster.apis[1], c.audio, language="en")["id"] for c in short_clips[10:13]]
    assert time.monotonic() - started_at < 60, "a broker outage must not hang submissions"
    time.sleep(2)
    cluster.redis.start()  # same port, same directory: the AOF brings the queue back
    # A worker whose consumer stopped with the broker (Celery's known failure when a job was
    # running) finds out, exits 1 and is restarted by the supervisor, as Kubernetes would.
    done = wait_finished(cluster.apis[0], ids + during)
    assert {d["status"] for d in done.values()} == {"succeeded"}
    logs = cluster.worker_logs()
    for job_id in ids + during:
        assert sum(finished(log, job_id) for log in logs) == 1, job_id


def test_postgres_down_gives_503_with_a_sentence_and_recovers_by_itself(
    cluster: Cluster, postgres_server: PostgresServer, jfk: Clip
) -> None:
    before = submit(cluster.apis[0], jfk.audio, language="en")
    wait_finished(cluster.apis[0], [before["id"]])
    postgres_server.stop()
    try:
        for api in cluster.apis:
            started_at = time.monotonic()
            answer = httpx.get(f"{api.url}/v1/jobs/{before['id']}", timeout=60)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "job_store_unavailable"
            assert "database is unavailable" in answer.json()["error"]["message"]
            assert answer.headers["retry-after"]
            with jfk.audio.open("rb") as fh:
                created = httpx.post(f"{api.url}/v1/jobs", files={"file": fh}, timeout=60)
            assert created.status_code == 503, created.text
            assert time.monotonic() - started_at < 40, "answered promptly, not after a hang"
            # Synchronous transcription needs no database.
            with jfk.audio.open("rb") as fh:
                sync = httpx.post(
                    f"{api.url}/v1/audio/transcriptions", files={"file": fh}, timeout=120
                )
            assert sync.status_code == 200
    finally:
        postgres_server.start()
    # Every replica, not only the first: each has its own pool (the one not asked in CI still
    # answered 503 while its pool slept through a reconnection backoff).
    deadline = time.monotonic() + 60
    for api in cluster.apis:
        while httpx.get(f"{api.url}/v1/jobs/{before['id']}", timeout=60).status_code != 200:
            assert time.monotonic() < deadline, f"{api.url} did not recover with the database"
            time.sleep(0.5)
    after = submit(cluster.apis[1], jfk.audio, language="en")
    assert wait_finished(cluster.apis[0], [after["id"]])[after["id"]]["status"] == "succeeded"


def test_cancel_through_one_api_stops_the_job_on_its_worker(
    cluster: Cluster, long_file: Path
) -> None:
    created = submit(cluster.apis[0], long_file, language="en")
    wait_until_running(cluster.apis[0], created["id"])
    worker = cluster.worker_running(created["id"])
    answer = httpx.delete(f"{cluster.apis[1].url}/v1/jobs/{created['id']}")
    assert answer.status_code == 202
    done = wait_finished(cluster.apis[0], [created["id"]])[created["id"]]
    assert done["status"] == "cancelled"
    assert finished(worker.log, created["id"]) == 0
    assert httpx.delete(f"{cluster.apis[1].url}/v1/jobs/{created['id']}").status_code == 204


def test_webhooks_from_workers_are_signed(cluster: Cluster, jfk: Clip) -> None:
    receiver = Receiver()
    try:
        created = submit(cluster.apis[0], jfk.audio, language="en", webhook_url=receiver.url)
        deadline = time.monotonic() + 120
        while job(cluster.apis[1], created["id"]).get("webhook", {}).get("state") != "delivered":
            assert time.monotonic() < deadline, job(cluster.apis[1], created["id"])
            time.sleep(0.1)
        (request,) = receiver.requests
        header, body = request["headers"][SIGNATURE_HEADER.lower()], request["raw"]
        assert verify_signature(SECRET, header, body)
        assert not verify_signature("another secret", header, body)
        assert not verify_signature(SECRET, header, body + b" ")
        assert request["json"]["job"]["id"] == created["id"]
    finally:
        receiver.close()


def test_metrics_count_running_jobs_from_the_store(cluster: Cluster, long_file: Path) -> None:
    created = submit(cluster.apis[0], long_file, language="en")
    wait_until_running(cluster.apis[0], created["id"])
    api_metrics = httpx.get(f"{cluster.apis[1].url}/metrics").text
    assert 'asrserve_jobs{state="running"} 1.0' in api_metrics
    assert "asrserve_jobs_oldest_queued_seconds" in api_metrics
    busy = [httpx.get(w.health_url.replace("/health", "/metrics")).text for w in cluster.workers]
    assert sorted("asrserve_worker_jobs_running 1.0" in m for m in busy) == [False, True]
    httpx.delete(f"{cluster.apis[0].url}/v1/jobs/{created['id']}")
    wait_finished(cluster.apis[0], [created["id"]])


def test_worker_check_is_a_liveness_probe(cluster: Cluster) -> None:
    worker = cluster.workers[0]
    port = worker.health_url.rsplit(":", 1)[1].split("/")[0]
    alive = subprocess.run(
        [sys.executable, "-m", "asrserve.cli", "worker", "--check", "--port", port],
        capture_output=True,
        timeout=60,
    )
    assert alive.returncode == 0, alive.stderr
    dead = subprocess.run(
        [sys.executable, "-m", "asrserve.cli", "worker", "--check", "--port", "1"],
        capture_output=True,
        timeout=60,
    )
    assert dead.returncode == 1
