"""Every Prometheus metric of the service, defined once, with small `track_*` helpers.

A `Metrics` object owns its own CollectorRegistry so that several apps in one process (tests)
never collide; the process collector adds memory and CPU of the process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


@dataclass(frozen=True, slots=True)
class StreamStats:
    """The live path's state, read at scrape time (`ws.server.StreamServer.stats`)."""

    active: int
    limit: int
    """Streams admitted at most (with `max_streams` auto, the memory bound)."""
    load_level: int
    """0 normal, 1 fewer partials, 2 finals only, 3 new streams refused."""
    backlog_s: float
    """The most an open stream is behind its real-time schedule."""
    partials_skipped: int
    early_finals: Mapping[str, int] = field(default_factory=dict)
    """How the finals started in a pause ended: used, cancelled, wasted (decoded for nothing)."""
    capacity: int | None = None
    """Streams like the recent ones the final model keeps real time for, from live RTF
    (`ws.load.StreamCapacity`); None until enough stream audio was heard."""


@dataclass(frozen=True, slots=True)
class RequestStats:
    """HTTP admission's state, read at scrape time (`api.admission.Admission`)."""

    waiting: int
    wait_estimate_s: float | None
    """About how long a request arriving now would wait for a decode slot; None until a
    request has finished to time the queue by."""


class _CallbackGauges(Collector):
    """Gauges read at scrape time from the live objects (queue depth, jobs by state)."""

    def __init__(self) -> None:
        self.queue_depth: Callable[[], Mapping[str, int]] = dict
        self.jobs_by_state: Callable[[], Mapping[str, int]] = dict
        self.oldest_job_queued_at: Callable[[], float | None] = lambda: None
        self.worker_jobs: Callable[[], tuple[int, int] | None] = lambda: None
        self.streams: Callable[[], StreamStats | None] = lambda: None
        self.requests: Callable[[], RequestStats | None] = lambda: None

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "asrserve_batch_queue_depth", "Chunks waiting in a model's batcher.", labels=["model"]
        )
        for model, value in self.queue_depth().items():
            depth.add_metric([model], value)
        yield depth
        # From the store: in-flight jobs count, not only the broker's waiting messages. A store
        # that is down leaves these out of the scrape instead of failing it.
        jobs = GaugeMetricFamily(
            "asrserve_jobs", "Jobs in the shared store by state.", labels=["state"]
        )
        oldest = GaugeMetricFamily(
            "asrserve_jobs_oldest_queued_seconds",
            "Age of the job that has waited longest for a worker (0: none waits).",
        )
        try:
            for state, value in self.jobs_by_state().items():
                jobs.add_metric([state], value)
            queued_at = self.oldest_job_queued_at()
            oldest.add_metric([], max(0.0, time.time() - queued_at) if queued_at else 0.0)
        except Exception:
            log.warning("job metrics unavailable", exc_info=True)
        else:
            yield jobs
            yield oldest
        worker = self.worker_jobs()
        if worker is not None:
            busy, capacity = worker
            running = GaugeMetricFamily(
                "asrserve_worker_jobs_running", "Jobs this worker process is running."
            )
            running.add_metric([], busy)
            yield running
            slots = GaugeMetricFamily(
                "asrserve_worker_job_slots", "Jobs this worker process can run at once."
            )
            slots.add_metric([], capacity)
            yield slots
        streams = self.streams()
        if streams is not None:
            yield from _stream_families(streams)
        requests = self.requests()
        if requests is not None:
            yield from _request_families(requests)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text)
    family.add_metric([], value)
    return family


def _request_families(stats: RequestStats) -> Iterator[Metric]:
    yield _gauge(
        "asrserve_http_requests_waiting", "Requests queued for a decode slot.", stats.waiting
    )
    if stats.wait_estimate_s is not None:
        yield _gauge(
            "asrserve_http_request_wait_estimate_seconds",
            "About how long a request arriving now would wait for a decode slot.",
            stats.wait_estimate_s,
        )


def _stream_families(stats: StreamStats) -> Iterator[Metric]:
    for name, text, value in (
        ("asrserve_streams_active", "Open real-time WebSocket streams.", stats.active),
        ("asrserve_stream_limit", "Streams admitted at most.", stats.limit),
        ("asrserve_stream_load_level",
         "Live load: 0 normal, 1 fewer partials, 2 finals only, 3 new streams refused.",
         stats.load_level),
        ("asrserve_stream_backlog_seconds",
         "The most an open stream is behind its real-time schedule.", stats.backlog_s),
    ):  # fmt: skip
        yield _gauge(name, text, value)
    skipped = CounterMetricFamily(
        "asrserve_stream_partials_skipped",
        "Live partials due but not decoded because the server was behind.",
    )
    skipped.add_metric([], stats.partials_skipped)
    yield skipped
    early = CounterMetricFamily(
        "asrserve_stream_early_finals",
        "Finals started in a pause before its endpoint, by how they ended: used, cancelled "
        "while queued, or wasted (decoded, then speech went on).",
        labels=["outcome"],
    )
    for outcome, count in sorted(stats.early_finals.items()):
        early.add_metric([outcome], count)
    yield early
    if stats.capacity is not None:
        yield _gauge(
            "asrserve_stream_capacity",
            "Streams like the recent ones this server keeps real time for (from live RTF).",
            stats.capacity,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._add_http_metrics()
        self._add_decode_metrics()
        self._add_live_and_job_metrics()
        self._gauges = _CallbackGauges()
        self.registry.register(self._gauges)

    def _add_http_metrics(self) -> None:
        self.requests = Counter(
            "asrserve_http_requests", "HTTP requests by route and status.",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "asrserve_http_request_seconds", "HTTP request latency.",
            ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "asrserve_http_requests_in_flight", "Requests being served.", registry=self.registry
        )
        self.rejected = Counter(
            "asrserve_requests_rejected", "Requests refused before decoding, by reason.",
            ["reason"], registry=self.registry,
        )  # fmt: skip

    def _add_decode_metrics(self) -> None:
        self.decode_seconds = Histogram(
            "asrserve_decode_seconds", "Wall time to transcribe one input.",
            ["model", "source"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.audio_seconds = Counter(
            "asrserve_audio_seconds", "Seconds of audio transcribed.",
            ["model", "source"], registry=self.registry,
        )  # fmt: skip
        self.real_time_factor = Histogram(
            "asrserve_real_time_factor", "Decode wall time divided by audio duration.",
            ["model", "source"], buckets=_RTF_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_items = Histogram(
            "asrserve_batch_items", "Chunks per decoded batch.", ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry,
        )  # fmt: skip
        self.batch_windows = Histogram(
            "asrserve_batch_windows",
            "Decode windows per batch (short chunks share windows, so fewer than chunks).",
            ["model"], buckets=(1, 2, 4, 8, 16, 32), registry=self.registry,
        )  # fmt: skip
        self.batch_decode_seconds = Histogram(
            "asrserve_batch_decode_seconds",
            "Wall time a model took to decode one batch (summed: how busy the model is).",
            ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_wait_seconds = Histogram(
            "asrserve_batch_wait_seconds",
            "How long a batch's oldest chunk waited in its model's queue: the queueing part of "
            "a request's or a live final's latency (the batch's decode time is the rest).",
            ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_redecoded = Counter(
            "asrserve_batch_redecoded_chunks",
            "Chunks a shared window left without words, decoded again on their own.",
            ["model"], registry=self.registry,
        )  # fmt: skip
        self.model_load_seconds = Gauge(
            "asrserve_model_load_seconds", "Time the model took to load.", ["model"],
            registry=self.registry,
        )  # fmt: skip

    def _add_live_and_job_metrics(self) -> None:
        self.stream_final_seconds = Histogram(
            "asrserve_stream_final_seconds",
            "From when a stream's final was due (its audio heard, its pause ended) to its send.",
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30), registry=self.registry,
        )  # fmt: skip
        self.jobs_finished = Counter(
            "asrserve_jobs_finished", "Jobs that reached a final state.", ["state"],
            registry=self.registry,
        )  # fmt: skip

    def track_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def track_decode(self, model: str, source: str, audio_s: float, wall_s: float) -> None:
        self.decode_seconds.labels(model, source).observe(wall_s)
        self.audio_seconds.labels(model, source).inc(audio_s)
        if audio_s > 0:
            self.real_time_factor.labels(model, source).observe(wall_s / audio_s)

    def track_batch(
        self, model: str, items: int, windows: int, redecoded: int, decode_s: float, wait_s: float
    ) -> None:
        self.batch_items.labels(model).observe(items)
        self.batch_decode_seconds.labels(model).observe(decode_s)
        self.batch_wait_seconds.labels(model).observe(wait_s)
        self.batch_windows.labels(model).observe(windows)
        self.batch_redecoded.labels(model).inc(redecoded)

    def track_model_load(self, model: str, seconds: float) -> None:
        self.model_load_seconds.labels(model).set(seconds)

    def track_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def track_stream_final(self, seconds: float) -> None:
        self.stream_final_seconds.observe(seconds)

    def track_job_finished(self, state: str) -> None:
        self.jobs_finished.labels(state).inc()

    def watch(
        self,
        *,
        queue_depth: Callable[[], Mapping[str, int]] | None = None,
        jobs_by_state: Callable[[], Mapping[str, int]] | None = None,
        oldest_job_queued_at: Callable[[], float | None] | None = None,
        worker_jobs: Callable[[], tuple[int, int]] | None = None,
        streams: Callable[[], StreamStats] | None = None,
        requests: Callable[[], RequestStats] | None = None,
    ) -> None:
        """Read these at scrape time. `worker_jobs`: (running, slots) of a worker process."""
        if queue_depth is not None:
            self._gauges.queue_depth = queue_depth
        if jobs_by_state is not None:
            self._gauges.jobs_by_state = jobs_by_state
        if oldest_job_queued_at is not None:
            self._gauges.oldest_job_queued_at = oldest_job_queued_at
        if worker_jobs is not None:
            self._gauges.worker_jobs = worker_jobs
        if streams is not None:
            self._gauges.streams = streams
        if requests is not None:
            self._gauges.requests = requests

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
