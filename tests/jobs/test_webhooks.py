"""Webhook delivery against a real HTTP receiver on 127.0.0.1: retries, backoff, giving up."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asrserve.jobmodel.errors import InvalidWebhookUrlError
from asrserve.jobmodel.records import Job, JobState, WebhookState
from asrserve.jobs.runner import JobRunner
from asrserve.jobs.service import JobService
from asrserve.jobs.sqlite import SQLiteJobStore
from asrserve.jobs.sqlstore import SqlJobStore
from asrserve.jobs.webhooks import (
    SIGNATURE_HEADER,
    WebhookSender,
    check_webhook_destination,
    validate_webhook_url,
    verify_signature,
)
from tests.jobs.conftest import AUDIO, StoreFactory, make_transcript, wait_until
from tests.support.webhooks import Receiver

HOOK_PATH = "/hooks/asr?token=abc"


@pytest.fixture
def senders() -> Iterator[list[WebhookSender]]:
    started: list[WebhookSender] = []
    yield started
    for sender in started:
        sender.stop(1)


def sender_for(store: SqlJobStore, senders: list[WebhookSender], **kwargs: Any) -> WebhookSender:
    args: dict[str, Any] = {
        "base_delay_s": 0.2,
        "max_delay_s": 5.0,
        "poll_interval_s": 0.05,
        "timeout_s": 2.0,
        "rng": random.Random(7),
        "allow_private": True,  # the receivers here are on loopback
    }
    args.update(kwargs)
    sender = WebhookSender(store, **args)
    senders.append(sender)
    sender.start()
    return sender


def finished_job(store: SqlJobStore, webhook_url: str) -> str:
    job = store.create(
        AUDIO, filename="talk.wav", model="whisper-base", options={}, webhook_url=webhook_url
    )
    store.claim_next("w")
    store.complete(job.id, make_transcript())
    return job.id


def webhook_done(store: SqlJobStore, job_id: str) -> Job | None:
    job = store.get(job_id)
    return job if job is not None and job.webhook_state is not WebhookState.PENDING else None


def test_5xx_is_retried_with_growing_delays_then_delivered(
    store: SqlJobStore, senders: list[WebhookSender]
) -> None:
    receiver = Receiver([500, 500], path=HOOK_PATH)
    try:
        job_id = finished_job(store, receiver.url)
        sender_for(store, senders)
        wait_until(lambda: webhook_done(store, job_id), timeout_s=10)
    finally:
        receiver.close()
    job = store.get(job_id)
    assert job is not None
    assert job.webhook_state is WebhookState.DELIVERED
    assert job.webhook_attempts == 3
    assert job.webhook_delivered_at is not None
    assert job.webhook_last_error == "HTTP 500"

    assert len(receiver.requests) == 3
    times = [r["at"] for r in receiver.requests]
    first_gap, second_gap = times[1] - times[0], times[2] - times[1]
    # Backoff after attempt n lies in [d/2, d] for d = 0.2 * 2**(n-1): [0.1, 0.2], [0.2, 0.4].
    # Never early, whatever the load; how late depends on the machine, so it is not asserted.
    assert first_gap >= 0.1, first_gap
    assert second_gap >= 0.2, second_gap

    for request in receiver.requests:
        assert request["path"] == "/hooks/asr?token=abc"
        body = request["json"]
        assert body["event"] == "job.succeeded"
        assert body["job"]["id"] == job_id
        assert body["job"]["state"] == "succeeded"
        assert body["job"]["filename"] == "talk.wav"
        assert body["job"]["progress_total_s"] == 12.5
        assert "result" not in body["job"]  # clients fetch it; webhooks only notify
        assert request["headers"]["x-asrserve-delivery"] == f"{job_id}.succeeded"
        assert request["headers"]["content-type"] == "application/json"


def test_4xx_is_not_retried(store: SqlJobStore, senders: list[WebhookSender]) -> None:
    receiver = Receiver([400], path=HOOK_PATH)
    try:
        job_id = finished_job(store, receiver.url)
        sender_for(store, senders, base_delay_s=0.05)
        wait_until(lambda: webhook_done(store, job_id), timeout_s=10)
        time.sleep(0.3)  # several backoff periods: nothing more may arrive
    finally:
        receiver.close()
    job = store.get(job_id)
    assert job is not None
    assert job.webhook_state is WebhookState.FAILED
    assert job.webhook_attempts == 1
    assert "HTTP 400" in (job.webhook_last_error or "")
    assert len(receiver.requests) == 1


def test_429_is_retried(store: SqlJobStore, senders: list[WebhookSender]) -> None:
    receiver = Receiver([429], path=HOOK_PATH)
    try:
        job_id = finished_job(store, receiver.url)
        sender_for(store, senders, base_delay_s=0.05)
        wait_until(lambda: webhook_done(store, job_id), timeout_s=10)
    finally:
        receiver.close()
    job = store.get(job_id)
    assert job is not None
    assert job.webhook_state is WebhookState.DELIVERED
    assert len(receiver.requests) == 2


def test_unreachable_receiver_is_retried_then_given_up(
    store: SqlJobStore, senders: list[WebhookSender]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    job_id = finished_job(store, f"http://127.0.0.1:{port}/hook")
    began = time.monotonic()
    sender_for(store, senders, base_delay_s=0.05, max_attempts=4)
    wait_until(lambda: webhook_done(store, job_id), timeout_s=10)
    job = store.get(job_id)
    assert job is not None
    assert job.webhook_state is WebhookState.FAILED
    assert job.webhook_attempts == 4
    assert "ConnectError" in (job.webhook_last_error or "")
    assert job.webhook_delivered_at is None
    # Three backoffs of at least 0.025, 0.05 and 0.1 s lie between the four attempts.
    assert time.monotonic() - began >= 0.175


def test_delivery_pending_at_a_crash_is_resumed(
    make_store: StoreFactory, senders: list[WebhookSender]
) -> None:
    receiver = Receiver([], path=HOOK_PATH)
    try:
        crashed = make_store()
        never_tried = finished_job(crashed, receiver.url)
        in_flight = finished_job(crashed, receiver.url)
        # A sender claimed both and died before sending: one lease is short, as if it had
        # run out already; the other is still held, so it must wait for the lease.
        claimed = crashed.claim_webhooks(time.time(), 1, lease_s=0.0)
        assert [j.id for j in claimed] == [never_tried]
        assert [j.id for j in crashed.claim_webhooks(time.time(), 1, lease_s=0.5)] == [in_flight]

        store = make_store()
        began = time.monotonic()
        sender_for(store, senders)
        wait_until(lambda: webhook_done(store, never_tried), timeout_s=5)
        wait_until(lambda: webhook_done(store, in_flight), timeout_s=5)
    finally:
        receiver.close()
    assert sorted(r["json"]["job"]["id"] for r in receiver.requests) == sorted(
        [never_tried, in_flight]
    )
    arrivals = {r["json"]["job"]["id"]: r["at"] - began for r in receiver.requests}
    assert arrivals[never_tried] < 0.4
    assert arrivals[in_flight] >= 0.3  # not before its lease ran out


def test_runner_notifies_success_failure_and_cancellation(
    store: SqlJobStore, senders: list[WebhookSender]
) -> None:
    receiver = Receiver([], path=HOOK_PATH)
    sender = WebhookSender(store, base_delay_s=0.05, poll_interval_s=30.0, allow_private=True)

    def transcribe(job: Job, path: Path, progress: Any) -> Any:
        if job.options.get("fail"):
            raise RuntimeError("boom")
        return make_transcript()

    runner = JobRunner(store, transcribe, poll_interval_s=0.05, webhooks=sender)
    try:
        # Cancelled while queued, before any runner exists: the outbox keeps it.
        cancelled = store.create(
            AUDIO, filename="c", model="m", options={}, webhook_url=receiver.url
        )
        store.request_cancel(cancelled.id)
        runner.start()
        ok = store.create(AUDIO, filename="a", model="m", options={}, webhook_url=receiver.url)
        runner.submit(ok)
        bad = store.create(
            AUDIO, filename="b", model="m", options={"fail": True}, webhook_url=receiver.url
        )
        runner.submit(bad)
        # The sender polls every 30 s: only the runner's wake can make this quick.
        wait_until(lambda: len(receiver.requests) == 3, timeout_s=5)
    finally:
        runner.stop(1)
        receiver.close()
    events = {r["json"]["job"]["id"]: r["json"] for r in receiver.requests}
    assert events[ok.id]["event"] == "job.succeeded"
    assert events[bad.id]["event"] == "job.failed"
    assert events[bad.id]["job"]["error_code"] == "internal_error"
    assert events[cancelled.id]["event"] == "job.cancelled"
    assert store.get(ok.id).state is JobState.SUCCEEDED  # type: ignore[union-attr]


def test_jobs_without_a_webhook_queue_no_delivery(store: SqlJobStore) -> None:
    job = store.create(AUDIO, filename="a", model="m", options={})
    store.claim_next("w")
    store.complete(job.id, make_transcript())
    done = store.get(job.id)
    assert done is not None
    assert done.webhook_state is None
    assert store.next_webhook_due() is None
    assert store.claim_webhooks(time.time() + 1, 10, 60) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://",
        "https:///path-only",
        "example.com/hook",
        "",
        "   ",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com/\x00",
        "https://example.com/" + "a" * 3000,
    ],
)
def test_only_absolute_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(InvalidWebhookUrlError) as info:
        validate_webhook_url(url)
    assert isinstance(info.value, ValueError)
    assert str(info.value).endswith((".", ")"))  # a sentence for the user


def test_valid_urls_are_returned_trimmed() -> None:
    assert (
        validate_webhook_url("  https://example.com/hook?x=1  ") == "https://example.com/hook?x=1"
    )
    assert validate_webhook_url("HTTP://10.0.0.1:8080/h") == "HTTP://10.0.0.1:8080/h"
    assert validate_webhook_url("http://[::1]:9000/") == "http://[::1]:9000/"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_webhooks_to_non_public_addresses_are_refused_at_submit(url: str) -> None:
    with pytest.raises(InvalidWebhookUrlError, match="non-public address"):
        check_webhook_destination(url)


def test_public_addresses_pass_the_destination_check() -> None:
    check_webhook_destination("https://93.184.215.14/hook")
    check_webhook_destination("http://[2606:4700::1111]:8080/hook")


def test_a_private_destination_is_refused_at_delivery_too(
    store: SqlJobStore, senders: list[WebhookSender]
) -> None:
    # Stored while private hosts were allowed (or before DNS changed): delivery checks again.
    receiver = Receiver([], path=HOOK_PATH)
    try:
        job_id = finished_job(store, receiver.url)
        sender_for(store, senders, allow_private=False)
        wait_until(lambda: webhook_done(store, job_id), timeout_s=10)
    finally:
        receiver.close()
    job = store.get(job_id)
    assert job is not None and job.webhook_state is WebhookState.FAILED
    assert job.webhook_attempts == 1, "a refused destination is final, not retried"
    assert "non-public address" in (job.webhook_last_error or "")
    assert receiver.requests == []


def test_the_connection_itself_goes_only_to_public_addresses() -> None:
    # What stops DNS rebinding: even past the pre-check, the transport refuses to connect.
    sender = WebhookSender(SQLiteJobStore.__new__(SQLiteJobStore))
    with sender._default_client() as client, pytest.raises(httpx.ConnectError, match="non-public"):
        client.post("http://127.0.0.1:9/hook", content=b"{}")


def test_deliveries_are_signed_when_a_secret_is_set(
    store: SqlJobStore, senders: list[WebhookSender]
) -> None:
    receiver = Receiver([], path=HOOK_PATH)
    try:
        job_id = finished_job(store, receiver.url)
        sender_for(store, senders, secret="s3cret")
        wait_until(lambda: webhook_done(store, job_id), timeout_s=10)
    finally:
        receiver.close()
    (request,) = receiver.requests
    header = request["headers"][SIGNATURE_HEADER.lower()]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 60
    assert verify_signature("s3cret", header, request["raw"])
    assert not verify_signature("wrong", header, request["raw"])
    assert not verify_signature("s3cret", header, request["raw"].replace(b"}", b" }", 1))
    # A captured delivery replayed later is refused.
    assert not verify_signature("s3cret", header, request["raw"], now=timestamp + 301)


def test_jobs_service_refuses_a_loopback_webhook_unless_allowed(store: SqlJobStore) -> None:
    strict = JobService(store)
    with pytest.raises(InvalidWebhookUrlError, match="ASRSERVE_WEBHOOK_ALLOW_PRIVATE"):
        strict.submit(AUDIO, filename="a", model="m", options={}, webhook_url="http://127.0.0.1/h")
    assert store.list().jobs == []
    lenient = JobService(store, webhook_allow_private=True)
    job = lenient.submit(
        AUDIO, filename="a", model="m", options={}, webhook_url="http://127.0.0.1/h"
    )
    assert job.webhook_url == "http://127.0.0.1/h"
