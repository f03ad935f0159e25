"""Notify a job's webhook URL when it finishes, with retries and exponential backoff.

Deliveries are queued in the store in the same transaction that finishes the job (an outbox),
whoever finishes it: a worker, a cancel of a queued job, the poison-job check. A background
thread claims due deliveries with a lease, POSTs them and records each attempt, so attempts and
the final outcome are visible on the job, and a delivery pending at a crash is resumed after
the restart. Delivery is at least once: receivers should treat the `X-Asrserve-Delivery`
header (job id and state) as an idempotency key.

Destinations. Workers on other hosts POST to URLs clients chose, so a URL that resolves to
loopback, link-local, private or other non-public addresses is refused (`webhook_allow_private`
lifts this), at submit and again at delivery: the connection is made only to an address checked
at connect time, so a DNS answer that changed since submit (rebinding) cannot reach inside.

Signature. With a secret, every delivery carries
`X-Asrserve-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`; receivers
recompute it over the raw body, compare in constant time and reject old timestamps (replays).

The body names the job and its outcome but carries no result; the client fetches the result
with `GET /v1/jobs/{id}?format=...`::

    {"event": "job.succeeded", "job": {"id": "...", "state": "succeeded", "model": "...",
     "filename": "...", "created_at": ..., "started_at": ..., "finished_at": ...,
     "progress_done_s": ..., "progress_total_s": ..., "error_code": null, "error_message": null}}
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import threading
import time
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from asrserve.jobmodel.errors import InvalidWebhookUrlError
from asrserve.jobmodel.records import Job
from asrserve.jobs.store import JobStore

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
_MAX_ERROR_LENGTH = 500
USER_AGENT = "asrserve-webhooks/1"
SIGNATURE_HEADER = "X-Asrserve-Signature"


def validate_webhook_url(url: str) -> str:
    """Return the URL (surrounding spaces removed) if it is an absolute http(s) URL with a host;
    raise InvalidWebhookUrlError (a ValueError) with a sentence for the user otherwise."""
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise InvalidWebhookUrlError("The webhook URL is empty; give an http:// or https:// URL.")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidWebhookUrlError(
            f"The webhook URL is longer than {MAX_URL_LENGTH} characters; give a shorter one."
        )
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidWebhookUrlError(
            "The webhook URL contains spaces or control characters; percent-encode them."
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        raise InvalidWebhookUrlError(f"The webhook URL does not parse ({exc}).") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidWebhookUrlError(
            f"The webhook URL must start with http:// or https://, not {parts.scheme or '(none)'}"
            "; other schemes are not supported."
        )
    if not parts.hostname:
        raise InvalidWebhookUrlError("The webhook URL has no host name; give an absolute URL.")
    return text


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_public(host: str, port: int) -> list[str]:
    """The addresses of `host`, all of them public; raises InvalidWebhookUrlError when it does
    not resolve or any address is loopback, link-local, private or otherwise not public (one
    bad address is enough: a resolver may hand out either)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidWebhookUrlError(
            f"The webhook host {host!r} does not resolve ({exc})."
        ) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    blocked = [a for a in addresses if not _public(a)]
    if blocked or not addresses:
        raise InvalidWebhookUrlError(
            f"The webhook host {host!r} resolves to a non-public address ({', '.join(blocked)}); "
            "webhooks go to public addresses only, unless the server sets "
            "ASRSERVE_WEBHOOK_ALLOW_PRIVATE=true."
        )
    return addresses


def check_webhook_destination(url: str) -> None:
    """Refuse a URL whose host is not public (see `resolve_public`)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    resolve_public(parts.hostname or "", port)


class _PublicOnlyBackend(httpcore.SyncBackend):
    """Connects only to public addresses, resolved and checked at connect time."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            address = resolve_public(host, port)[0]
        except InvalidWebhookUrlError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        # TLS still verifies the certificate against the URL's host name, not this address.
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Asrserve-Signature` value for one delivery."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300
) -> bool:
    """What a receiver does (in Python): the signature matches and is recent."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def webhook_event(job: Job) -> str:
    return f"job.{job.state.value}"


def webhook_payload(job: Job) -> dict[str, Any]:
    """The JSON body sent for a finished job (no result: the client fetches it)."""
    return {
        "event": webhook_event(job),
        "job": {
            "id": job.id,
            "state": job.state.value,
            "model": job.model,
            "filename": job.filename,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "progress_done_s": job.progress_done_s,
            "progress_total_s": job.progress_total_s,
            "error_code": job.error_code,
            "error_message": job.error_message,
        },
    }


class WebhookSender:
    """Delivers the store's pending notifications from a background thread.

    An attempt that fails with a connection error, a timeout, 429 or 5xx is retried after
    `base_delay_s * 2**(attempt-1)` seconds (capped at `max_delay_s`, with jitter in its upper
    half so that receivers coming back up are not hit by every sender at once), up to
    `max_attempts` attempts in all. Other answers (3xx, 4xx) are final: retrying would not
    change them. `client_factory` makes the httpx client for one attempt (tests pass one with a
    mock transport); redirects are not followed.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        max_attempts: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
        concurrency: int = 4,
        client_factory: Callable[[], httpx.Client] | None = None,
        secret: str | None = None,
        allow_private: bool = False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.concurrency = max(1, concurrency)
        # Long enough for one attempt to end by its own timeouts before anyone retries it.
        self.lease_s = max(60.0, 3 * timeout_s)
        self._client_factory = client_factory or self._default_client
        self.secret = secret
        self.allow_private = allow_private
        self._rng = rng or random.Random()
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _default_client(self) -> httpx.Client:
        transport = httpx.HTTPTransport(trust_env=False)
        if not self.allow_private:
            # httpx has no resolver hook; its connection pool's backend is where connects go.
            transport._pool._network_backend = _PublicOnlyBackend()
        return httpx.Client(
            transport=transport,
            timeout=self.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="asrserve-webhook")
        self._thread = threading.Thread(target=self._loop, name="asrserve-webhooks", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job finished: look for due deliveries now rather than at the next poll."""
        self._wake.set()

    def stop(self, deadline_s: float = 5.0) -> None:
        """Stop sending. A delivery still in flight after `deadline_s` is abandoned; its lease
        runs out and it is retried by the next sender on this store."""
        thread, pool = self._thread, self._pool
        if thread is None or pool is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(deadline_s)
        pool.shutdown(wait=False, cancel_futures=True)
        self._thread = None
        self._pool = None

    # --- delivery -------------------------------------------------------------------------------

    def backoff_s(self, attempt: int) -> float:
        """Delay after failed attempt number `attempt` (1-based): in [d/2, d] for the capped
        exponential d, so delays grow with the attempt yet senders spread out."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def deliver_due(self) -> int:
        """Claim the deliveries due now and attempt each once; returns how many were tried."""
        jobs = self.store.claim_webhooks(self._clock(), self.concurrency, self.lease_s)
        if not jobs:
            return 0
        if self._pool is None or len(jobs) == 1:
            for job in jobs:
                self.attempt(job)
        else:
            list(self._pool.map(self.attempt, jobs))
        return len(jobs)

    def attempt(self, job: Job) -> bool:
        """POST one notification for `job` and record the outcome; True when delivered."""
        if job.webhook_url is None:
            return False
        attempt = job.webhook_attempts + 1
        retryable, error = self._post(job)
        if error is None:
            self.store.record_webhook_attempt(job.id, delivered=True)
            log.info(
                "webhook delivered",
                extra={"job_id": job.id, "webhook_attempt": attempt, "event": webhook_event(job)},
            )
            return True
        retry_at = None
        if retryable and attempt < self.max_attempts:
            retry_at = self._clock() + self.backoff_s(attempt)
        self.store.record_webhook_attempt(
            job.id, delivered=False, error=error[:_MAX_ERROR_LENGTH], retry_at=retry_at
        )
        log.warning(
            "webhook delivery failed" + ("; will retry" if retry_at else "; giving up"),
            extra={"job_id": job.id, "webhook_attempt": attempt, "error": error},
        )
        return False

    def _post(self, job: Job) -> tuple[bool, str | None]:
        """(retryable, error) for one POST; error None means delivered."""
        assert job.webhook_url is not None
        if not self.allow_private:
            try:
                check_webhook_destination(job.webhook_url)
            except InvalidWebhookUrlError as exc:
                return False, str(exc)  # final: where a host points is not ours to retry
        body = json.dumps(webhook_payload(job), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Asrserve-Event": webhook_event(job),
            "X-Asrserve-Delivery": f"{job.id}.{job.state.value}",
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, int(self._clock()), body)
        try:
            with self._client_factory() as client:
                response = client.post(job.webhook_url, content=body, headers=headers)
        except httpx.TransportError as exc:  # connection refused, DNS, timeouts, broken pipes
            return True, (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except Exception as exc:
            # Not a network failure (a bug, an odd URL httpx rejects): retrying may not help,
            # but giving up on a notification at the first surprise would be worse.
            log.exception("webhook delivery raised", extra={"job_id": job.id})
            return True, f"{type(exc).__name__}: {exc}"
        status = response.status_code
        if 200 <= status < 300:
            return False, None
        if status == 429 or status >= 500:
            return True, f"HTTP {status}"
        return False, f"HTTP {status}: not retried (only 429, 5xx and network errors are)"

    def _loop(self) -> None:
        while not self._stopping.is_set():
            tried = 0
            try:
                tried = self.deliver_due()
            except Exception:
                # A store error (disk full, locked database) must not end the notifications.
                log.exception("webhook dispatch failed; retrying after the poll interval")
            if tried:
                continue  # there may be more due right now
            wait_s = self.poll_interval_s
            try:
                due = self.store.next_webhook_due()
            except Exception:
                log.exception("reading the next webhook due time failed")
                due = None
            if due is not None:
                wait_s = min(wait_s, max(0.01, due - self._clock()))
            self._wake.wait(wait_s)
            self._wake.clear()
