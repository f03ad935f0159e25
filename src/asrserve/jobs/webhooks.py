"""Notify a job's webhook URL when it finishes, with retries and exponential backoff.

Deliveries are queued in the store in the same transaction that finishes the job (an outbox),
whoever finishes it: a worker, a cancel of a queued job, the poison-job check. A background
thread claims due deliveries with a lease, POSTs them and records each attempt, so attempts and
the final outcome are visible on the job, and a delivery pending at a crash is resumed after
the restart. Delivery is at least once: receivers should treat the `X-Asrserve-Delivery`
header (job id and state) as an idempotency key.

The body names the job and its outcome but carries no result; the client fetches the result
with `GET /v1/jobs/{id}?format=...`::

    {"event": "job.succeeded", "job": {"id": "...", "state": "succeeded", "model": "...",
     "filename": "...", "created_at": ..., "started_at": ..., "finished_at": ...,
     "progress_done_s": ..., "progress_total_s": ..., "error_code": null, "error_message": null}}
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

from asrserve.jobs.errors import InvalidWebhookUrlError
from asrserve.jobs.models import Job
from asrserve.jobs.store import JobStore

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
_MAX_ERROR_LENGTH = 500
USER_AGENT = "asrserve-webhooks/1"


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
        self._rng = rng or random.Random()
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _default_client(self) -> httpx.Client:
        return httpx.Client(
            timeout=self.timeout_s, follow_redirects=False, headers={"User-Agent": USER_AGENT}
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
        headers = {
            "X-Asrserve-Event": webhook_event(job),
            "X-Asrserve-Delivery": f"{job.id}.{job.state.value}",
        }
        try:
            with self._client_factory() as client:
                response = client.post(job.webhook_url, json=webhook_payload(job), headers=headers)
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
