"""Streaming benchmark: N concurrent real-time WebSocket streams of real speech.

Issue #4: against a real `asrserve serve` (asrserve.evaluation.processes), one server per
partial model (`ASRSERVE_PARTIAL_MODEL`), measure for N = 1, 2, 4, 8 ... concurrent 2pass streams

- first-partial latency after speech onset and final latency after the end of speech (p50, p95);
- final WER, and the WER of the live partials, against the offline WER of the same audio through
  `POST /v1/audio/transcriptions` in the same run;
- the server's CPU and memory per stream, and the largest N that stays real time;
- the server's RSS after 1,000 sequential short sessions against after 10;

and write a table into docs/benchmarks-streaming.md and a plot of the latencies against N into
docs/benchmarks-streaming.png, so the default partial model can be chosen from the figures.

- Workload: the development set's ordinary-speech English clips (`clean_read` of subset `en`),
  each with 0.5 s of silence before and 1.5 s after; each stream plays clips back to back, from
  its own place in the list, until it has `--stream-seconds` of audio.
- Streams: FunASR's protocol in 2pass mode, 16 kHz s16le PCM in 60 ms frames paced to a wall
  clock schedule (frame k leaves at start + k × 60 ms), starts spread over 2 s.
- Speech onset and end of each clip: Silero VAD on the clip alone, without padding.

Timings mean something only on a quiet machine:

    .venv/bin/python -m bench.streaming                     # -> docs/benchmarks-streaming.md
    .venv/bin/python -m bench.streaming --n 1,4 --partial-models pocketsphinx-en --sessions 100
    .venv/bin/python -m bench.streaming --quick --output /tmp/bench-streaming.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import websockets
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

from asrserve.engine import VadOptions, decode
from asrserve.engine.audio import float32_to_pcm16
from asrserve.engine.models import resolve
from asrserve.engine.vad import speech_spans
from asrserve.evaluation.devset import Clip, clean_read, load_subset
from asrserve.evaluation.processes import ServerProcess, start_server
from asrserve.evaluation.wer import word_errors
from bench.common import (
    COMPUTE_TYPE,
    DEVICE,
    MODEL,
    REPO,
    REQUEST_TIMEOUT_S,
    PeakRss,
    git_revision,
    machine_description,
    num,
    percentile,
    send,
    table,
    version,
    warm_up,
)

DEFAULT_OUTPUT = REPO / "docs" / "benchmarks-streaming.md"
PARTIAL_MODELS = ("whisper-tiny.en", "pocketsphinx-en")
SAMPLE_RATE = 16000
FRAME_SAMPLES = 960  # 60 ms, what FunASR's clients send (1920 bytes of s16le)
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
LEAD_S = 0.5
TAIL_S = 1.5
START_SPREAD_S = 2.0
"""Stream j of N starts j × START_SPREAD_S / N after the first, as people do not all start
speaking on the same 60 ms frame."""
LANGUAGE = "en"
CONTINUOUS = "continuous"
HALF_SILENT = "half silent"
"""Dictation-like: each clip is followed by as much silence again (pauses to think)."""
WORKLOADS = (CONTINUOUS, HALF_SILENT)
BACKLOG_GROWTH_S = 1.0
"""Real time allows the median final latency of a stream's second half to exceed its first
half's by at most this much; more means a backlog is building up."""
# Speech onset and end exactly where Silero hears them: no padding, and pauses within a clip
# do not matter (only the first onset and the last end are used).
ONSET_VAD = VadOptions(speech_pad_ms=0, min_silence_ms=300)


@dataclass(frozen=True, slots=True)
class Sizes:
    n: tuple[int, ...]
    stream_s: float
    sessions: int


FULL = Sizes(n=(1, 2, 4, 8, 16), stream_s=45.0, sessions=1000)
QUICK = Sizes(n=(1, 2), stream_s=8.0, sessions=20)


@dataclass(frozen=True, slots=True)
class BenchSettings:
    partial_models: tuple[str, ...]
    sizes: Sizes
    subset: str
    cpu_threads: int
    decode_workers: int
    rt_bound_s: float
    server_settings: tuple[tuple[str, str], ...] = ()
    """More `asrserve serve` settings (name, value), as `--setting` gave them."""
    workloads: tuple[str, ...] = (CONTINUOUS,)
    peers: tuple[str, ...] = ()
    """Other streaming servers measured on the same streams (`whisperlive`)."""

    @property
    def drain_timeout_s(self) -> float:
        """How long a stream waits for its last results after its end message."""
        return max(60.0, 2 * self.sizes.stream_s)


# --- the workload -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Speech:
    """A clip's audio with where its speech starts and ends (seconds into the clip)."""

    clip: Clip
    audio: np.ndarray
    onset_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Play:
    """One clip as a stream plays it; times in seconds on the stream's timeline."""

    speech: Speech
    window_s: float
    """Where its lead silence begins: utterances starting from here to the next play's window
    belong to this clip."""
    onset_s: float
    end_s: float

    @property
    def clip(self) -> Clip:
        return self.speech.clip


@dataclass(frozen=True, slots=True)
class StreamPlan:
    name: str
    plays: tuple[Play, ...]
    pcm: bytes
    workload: str = CONTINUOUS

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / SAMPLE_RATE


def load_speech(subset: str) -> list[Speech]:
    clips = clean_read(load_subset(subset))
    if not clips:
        raise SystemExit(f"subset {subset} has no ordinary-speech clips")
    speeches = []
    for clip in clips:
        audio = decode(clip.audio)
        spans = speech_spans(audio, ONSET_VAD)
        duration = audio.size / SAMPLE_RATE
        onset, end = (spans[0].start, spans[-1].end) if spans else (0.0, duration)
        speeches.append(Speech(clip, audio, onset, end))
    return speeches


def plan_stream(
    speeches: Sequence[Speech],
    first: int,
    seconds: float,
    name: str,
    workload: str = CONTINUOUS,
) -> StreamPlan:
    """Clips from `first` on, each padded with silence, until the stream lasts `seconds`."""
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)
    parts: list[np.ndarray] = []
    plays: list[Play] = []
    at = 0.0
    i = first
    while at < seconds or not plays:
        speech = speeches[i % len(speeches)]
        pause = speech.audio.size if workload == HALF_SILENT else 0
        tail = np.zeros(int(TAIL_S * SAMPLE_RATE) + pause, np.float32)
        plays.append(Play(speech, at, at + LEAD_S + speech.onset_s, at + LEAD_S + speech.end_s))
        parts += [lead, speech.audio, tail]
        at += (lead.size + speech.audio.size + tail.size) / SAMPLE_RATE
        i += 1
    pcm = float32_to_pcm16(np.concatenate(parts))
    return StreamPlan(name, tuple(plays), pcm, workload)


def plan_level(
    speeches: Sequence[Speech], n: int, seconds: float, workload: str = CONTINUOUS
) -> list[StreamPlan]:
    # Streams start at places spread over the list, so they do not speak the same words at once.
    step = max(1, len(speeches) // n)
    return [plan_stream(speeches, j * step, seconds, f"stream-{j}", workload) for j in range(n)]


# --- the WebSocket client ---------------------------------------------------------------------


def config_message(name: str) -> str:
    return json.dumps(
        {
            "mode": "2pass",
            "chunk_size": [5, 10, 5],
            "chunk_interval": 10,
            "wav_name": name,
            "wav_format": "pcm",
            "audio_fs": SAMPLE_RATE,
            "is_speaking": True,
            "hotwords": "",
            "itn": True,
            # The language the offline baseline is given too, so both decode alike.
            "svs_lang": LANGUAGE,
        }
    )


END_MESSAGE = json.dumps({"is_speaking": False, "is_end": True})


@dataclass(slots=True)
class StreamRun:
    """What one stream sent and received; times are `time.monotonic()`."""

    plan: StreamPlan
    start: float = 0.0
    """When frame 0 was due; frame k was due at start + k × FRAME_S."""
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    send_lag_s: float = 0.0
    """The most any frame left after it was due (the server pushing back, or a busy client)."""
    error: str | None = None

    def due(self, stream_s: float) -> float:
        """When the frame carrying the sample at `stream_s` was due to leave."""
        return self.start + int(stream_s * SAMPLE_RATE / FRAME_SAMPLES) * FRAME_S


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://", 1) + "/"


async def _receive(ws: websockets.ClientConnection, run: StreamRun) -> None:
    try:
        async for raw in ws:
            message = json.loads(raw)
            run.messages.append((time.monotonic(), message))
            if message.get("error") and run.error is None:
                run.error = f"{message.get('code')}: {message['error']}"
            if message.get("is_end"):
                return
    except ConnectionClosed as exc:
        if run.error is None and not any(m.get("is_end") for _, m in run.messages):
            run.error = f"connection closed: {exc}"


@dataclass(frozen=True, slots=True)
class StreamProtocol:
    """How a client speaks to one kind of server: open and configure a stream, read what
    comes back into the run, and the message that ends the audio."""

    connect: Callable[[str, StreamRun], Awaitable[websockets.ClientConnection]]
    receive: Callable[[websockets.ClientConnection, StreamRun], Coroutine[Any, Any, None]]
    end: str | bytes
    settle: Callable[[StreamRun, float], Awaitable[None]] | None = None
    """Awaited after the last frame, before the end message (at most the drain timeout): for
    a server that stops decoding at the end message, the time to catch up first."""


async def _funasr_connect(url: str, run: StreamRun) -> websockets.ClientConnection:
    ws = await websockets.connect(
        url, subprotocols=[Subprotocol("binary")], max_size=None, ping_interval=None,
        open_timeout=60,
    )  # fmt: skip
    await ws.send(config_message(run.plan.name))
    return ws


FUNASR = StreamProtocol(_funasr_connect, _receive, END_MESSAGE)


async def play_stream(
    url: str,
    run: StreamRun,
    ready: asyncio.Event,
    start: asyncio.Future[float],
    *,
    paced: bool,
    drain_timeout_s: float,
    protocol: StreamProtocol = FUNASR,
) -> None:
    """Connect, configure, say so on `ready`, wait for this stream's start time, send the
    audio on schedule, end, and wait for the last results."""
    pcm = run.plan.pcm
    frame_bytes = FRAME_SAMPLES * 2
    try:
        async with await protocol.connect(url, run) as ws:
            reader = asyncio.create_task(protocol.receive(ws, run))
            ready.set()
            run.start = await start
            for k, offset in enumerate(range(0, len(pcm), frame_bytes)):
                due = run.start + k * FRAME_S
                if paced and (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
                await ws.send(pcm[offset : offset + frame_bytes])
                run.send_lag_s = max(run.send_lag_s, time.monotonic() - due)
            if protocol.settle is not None:
                await protocol.settle(run, drain_timeout_s)
            await ws.send(protocol.end)
            try:
                await asyncio.wait_for(reader, drain_timeout_s)
            except TimeoutError:
                run.error = run.error or f"no end acknowledgement within {drain_timeout_s:g} s"
    except (OSError, TimeoutError, WebSocketException) as exc:
        run.error = run.error or f"{type(exc).__name__}: {exc}"
    finally:
        ready.set()  # a stream that failed to connect holds no one up


async def play_all(
    url: str,
    plans: Sequence[StreamPlan],
    *,
    paced: bool,
    drain_timeout_s: float,
    protocol: StreamProtocol = FUNASR,
) -> list[StreamRun]:
    runs = [StreamRun(plan) for plan in plans]
    readies = [asyncio.Event() for _ in plans]
    loop = asyncio.get_running_loop()
    starts: list[asyncio.Future[float]] = [loop.create_future() for _ in plans]
    tasks = [
        asyncio.create_task(
            play_stream(
                url,
                run,
                ready,
                s,
                paced=paced,
                drain_timeout_s=drain_timeout_s,
                protocol=protocol,
            )
        )
        for run, ready, s in zip(runs, readies, starts, strict=True)
    ]
    # Every stream connected and configured (or failed) before the first frame leaves; the
    # connection's own open_timeout bounds the wait.
    await asyncio.gather(*(ready.wait() for ready in readies))
    first = time.monotonic() + 0.2
    spread = START_SPREAD_S / len(plans) if paced else 0.0
    for j, s in enumerate(starts):
        s.set_result(first + j * spread)
    await asyncio.gather(*tasks)
    return runs


# --- one level: N streams at once -------------------------------------------------------------


def server_processes(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def server_rss_mb(pid: int) -> float:
    return sum(_each(pid, lambda p: p.memory_info().rss)) / 2**20


def server_cpu_s(pid: int) -> float:
    return sum(_each(pid, lambda p: sum(p.cpu_times()[:2])))


def _each(pid: int, measure: Callable[[psutil.Process], float]) -> list[float]:
    values = []
    for process in server_processes(pid):
        with contextlib.suppress(psutil.Error):  # a child that just exited
            values.append(measure(process))
    return values


@dataclass(frozen=True, slots=True)
class ClipOutcome:
    """One clip as one stream played it, matched with what the server sent for it."""

    clip: Clip
    first_partial_s: float | None
    """Wall time from the onset frame's due time to the first partial of the clip's speech."""
    final_s: float | None
    """Wall time from the speech-end frame's due time to the clip's last final."""
    final_text: str
    last_partial_text: str
    delta_text: str
    second_half: bool


def match_clips(run: StreamRun) -> list[ClipOutcome]:
    """Assigns each server utterance to the clip in whose window it starts."""
    plays = run.plan.plays
    windows = [p.window_s for p in plays]

    def clip_of(message: dict[str, Any]) -> int:
        start = message.get("start_time", 0) / 1000
        return max(0, sum(1 for w in windows if w <= start) - 1)

    utterance_clip: dict[int, int] = {}
    partials: list[list[tuple[float, dict[str, Any]]]] = [[] for _ in plays]
    finals: list[list[tuple[float, dict[str, Any]]]] = [[] for _ in plays]
    for at, message in run.messages:
        kind = message.get("mode")
        if kind not in ("2pass-online", "2pass-offline") or "utterance" not in message:
            continue
        index = utterance_clip.setdefault(message["utterance"], clip_of(message))
        (partials if kind == "2pass-online" else finals)[index].append((at, message))
    half = run.plan.duration_s / 2
    outcomes = []
    for play, clip_partials, clip_finals in zip(plays, partials, finals, strict=True):
        by_utterance: dict[int, list[dict[str, Any]]] = {}
        for _, message in clip_partials:
            by_utterance.setdefault(message["utterance"], []).append(message)
        ordered = sorted(by_utterance)
        outcomes.append(
            ClipOutcome(
                clip=play.clip,
                first_partial_s=(
                    min(at for at, _ in clip_partials) - run.due(play.onset_s)
                    if clip_partials
                    else None
                ),
                final_s=(
                    max(at for at, _ in clip_finals) - run.due(play.end_s) if clip_finals else None
                ),
                final_text=" ".join(
                    m["text"].strip()
                    for _, m in sorted(clip_finals, key=lambda f: f[1]["utterance"])
                    if m["text"].strip()
                ),
                last_partial_text=" ".join(by_utterance[u][-1]["utterance_text"] for u in ordered),
                delta_text=" ".join(
                    "".join(m["text"] for m in by_utterance[u]).strip() for u in ordered
                ),
                second_half=play.end_s > half,
            )
        )
    return outcomes


@dataclass(frozen=True, slots=True)
class Level:
    partial_model: str
    """The partial model, or the peer's name."""
    n: int
    audio_s: float
    """Audio seconds per stream (mean)."""
    outcomes: tuple[ClipOutcome, ...]
    errors: tuple[str, ...]
    wall_s: float
    cpu_s: float
    idle_rss_mb: float
    peak_rss_mb: float
    send_lag_s: float
    final_wer: float
    offline_wer: float
    last_partial_wer: float | None
    delta_wer: float | None
    stream_wer: float = 0.0
    """Each stream's finals joined against its clips' texts joined."""
    bare_wer: float | None = None
    """The same clips through faster-whisper itself (`transcribe_bare`)."""
    busy: dict[str, ModelBusy] = field(default_factory=dict)
    """What each model decoded during the level, from the server's batch metrics."""
    early_finals: dict[str, float] = field(default_factory=dict)
    """Finals started in a pause during the level, by outcome (used, cancelled, wasted)."""
    workload: str = CONTINUOUS

    @property
    def series(self) -> str:
        """What the tables and the plot call this system on this workload."""
        return (
            self.partial_model
            if self.workload == CONTINUOUS
            else f"{self.partial_model}, {self.workload}"
        )

    def busy_percent(self, model: str) -> float | None:
        """The model's batch decode time over the level's wall time, % (100: one batch always
        in flight)."""
        busy = self.busy.get(model)
        return 100 * busy.decode_s / self.wall_s if busy and self.wall_s else None

    def batch_wait_ms(self, model: str) -> float | None:
        """The mean time a batch of the model's oldest chunk queued before it started, ms."""
        busy = self.busy.get(model)
        return 1000 * busy.wait_s / busy.batches if busy and busy.batches else None

    def first_partial(self, q: float) -> float | None:
        values = [o.first_partial_s for o in self.outcomes if o.first_partial_s is not None]
        return percentile(values, q)

    def final(self, q: float) -> float | None:
        return percentile([o.final_s for o in self.outcomes if o.final_s is not None], q)

    @property
    def missing_partials(self) -> int:
        return sum(o.first_partial_s is None for o in self.outcomes)

    @property
    def missing_finals(self) -> int:
        return sum(o.final_s is None for o in self.outcomes)

    @property
    def backlog_growth_s(self) -> float | None:
        """Median final latency of the streams' second halves minus their first halves'."""
        halves = [
            [o.final_s for o in self.outcomes if o.final_s is not None and o.second_half is h]
            for h in (False, True)
        ]
        if not all(halves):
            return None
        return statistics.median(halves[1]) - statistics.median(halves[0])

    @property
    def cpu_percent_per_stream(self) -> float:
        """Server CPU time over the level's wall time, % of one core, divided by N."""
        return 100 * self.cpu_s / self.wall_s / self.n if self.wall_s else 0.0

    @property
    def rss_mb_per_stream(self) -> float:
        return (self.peak_rss_mb - self.idle_rss_mb) / self.n

    def real_time(self, bound_s: float) -> bool:
        p95 = self.final(0.95)
        growth = self.backlog_growth_s
        return (
            not self.errors
            and self.missing_finals == 0
            and p95 is not None
            and p95 <= bound_s
            and (growth is None or growth <= BACKLOG_GROWTH_S)
        )


@dataclass(frozen=True, slots=True)
class ModelBusy:
    batches: float
    chunks: float
    decode_s: float
    wait_s: float
    """Summed over batches: how long each one's oldest chunk queued before it started."""

    def __sub__(self, other: ModelBusy) -> ModelBusy:
        return ModelBusy(
            self.batches - other.batches,
            self.chunks - other.chunks,
            self.decode_s - other.decode_s,
            self.wait_s - other.wait_s,
        )


_BUSY_FAMILIES = {
    "asrserve_batch_items_count": "batches",
    "asrserve_batch_items_sum": "chunks",
    "asrserve_batch_decode_seconds_sum": "decode_s",
    "asrserve_batch_wait_seconds_sum": "wait_s",
}


def model_busy(server: ServerProcess) -> dict[str, ModelBusy]:
    """Batches, chunks, batch decode and queue seconds per model so far, from /metrics."""
    totals: dict[str, dict[str, float]] = {}
    for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
        name, _, rest = line.partition('{model="')
        if name in _BUSY_FAMILIES and rest:
            model, _, value = rest.partition('"} ')
            totals.setdefault(model, {})[_BUSY_FAMILIES[name]] = float(value)
    return {
        m: ModelBusy(**dict.fromkeys(_BUSY_FAMILIES.values(), 0.0) | t) for m, t in totals.items()
    }


EARLY_FINALS = "asrserve_stream_early_finals_total"
EARLY_OUTCOMES = ("used", "cancelled", "wasted")


def early_finals(server: ServerProcess) -> dict[str, float]:
    """Finals started in a pause so far, by outcome, from /metrics."""
    counts = dict.fromkeys(EARLY_OUTCOMES, 0.0)
    for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
        name, _, rest = line.partition('{outcome="')
        if name == EARLY_FINALS and rest:
            outcome, _, value = rest.partition('"} ')
            counts[outcome] = float(value)
    return counts


def _wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return word_errors(refs, hyps, language=LANGUAGE).rate


def run_level(
    server: ServerProcess,
    partial_model: str,
    plans: Sequence[StreamPlan],
    offline: dict[str, str],
    settings: BenchSettings,
    bare: dict[str, str] | None = None,
) -> Level:
    wait_until_idle(server)
    return measure_level(
        Target(partial_model, server.proc.pid, ws_url(server), FUNASR, match_clips,
               lambda: model_busy(server), lambda: early_finals(server)),
        plans, offline, settings, bare,
    )  # fmt: skip


def wait_until_idle(server: ServerProcess, timeout_s: float = 300.0) -> None:
    """Until no stream is open and the live load is back to normal: a level starts on a
    server that has finished (or dropped) the last level's work."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = httpx.get(f"{server.url}/ready", timeout=30).json()
        if not ready.get("streams_active") and not ready.get("stream_load_level"):
            return
        time.sleep(0.5)
    print(f"the server was still busy {timeout_s:g} s after the last level", flush=True)


@dataclass(frozen=True, slots=True)
class Target:
    """A streaming server under test: its label in the tables, its process, where and how
    streams talk to it, how its messages become clip outcomes, and (asrserve) its models'
    busy time."""

    label: str
    pid: int
    url: str
    protocol: StreamProtocol
    match: Callable[[StreamRun], list[ClipOutcome]]
    busy: Callable[[], dict[str, ModelBusy]] = dict
    early: Callable[[], dict[str, float]] = dict
    partial_texts: bool = True
    """Its partials are whole utterances so far, whose WER means something."""


def measure_level(
    target: Target,
    plans: Sequence[StreamPlan],
    offline: dict[str, str],
    settings: BenchSettings,
    bare: dict[str, str] | None = None,
) -> Level:
    idle_rss = server_rss_mb(target.pid)
    cpu_before = server_cpu_s(target.pid)
    busy_before, early_before = target.busy(), target.early()
    started = time.monotonic()
    with PeakRss(target.pid) as rss:
        runs = asyncio.run(
            play_all(
                target.url,
                plans,
                paced=True,
                drain_timeout_s=settings.drain_timeout_s,
                protocol=target.protocol,
            )
        )
    wall = time.monotonic() - started
    cpu = server_cpu_s(target.pid) - cpu_before
    zero = ModelBusy(0.0, 0.0, 0.0, 0.0)
    busy = {m: b - busy_before.get(m, zero) for m, b in target.busy().items()}
    early = {k: v - early_before.get(k, 0.0) for k, v in target.early().items()}
    by_stream = [target.match(run) for run in runs]
    outcomes = [o for stream in by_stream for o in stream]
    refs = [o.clip.text for o in outcomes]
    # Whole streams too: a system whose segments straddle two clips is not charged twice.
    stream_refs = [" ".join(o.clip.text for o in stream) for stream in by_stream]
    return Level(
        partial_model=target.label,
        n=len(plans),
        audio_s=statistics.mean(plan.duration_s for plan in plans),
        outcomes=tuple(outcomes),
        errors=tuple(f"{run.plan.name}: {run.error}" for run in runs if run.error),
        wall_s=wall,
        cpu_s=cpu,
        idle_rss_mb=idle_rss,
        peak_rss_mb=rss.peak_mb,
        send_lag_s=max(run.send_lag_s for run in runs),
        final_wer=_wer(refs, [o.final_text for o in outcomes]),
        offline_wer=_wer(refs, [offline[o.clip.id] for o in outcomes]),
        last_partial_wer=_wer(refs, [o.last_partial_text for o in outcomes])
        if target.partial_texts
        else None,
        delta_wer=_wer(refs, [o.delta_text for o in outcomes]) if target.partial_texts else None,
        stream_wer=_wer(
            stream_refs, [" ".join(o.final_text for o in stream) for stream in by_stream]
        ),
        bare_wer=_wer(refs, [bare[o.clip.id] for o in outcomes]) if bare else None,
        busy=busy,
        early_finals=early,
        workload=plans[0].workload,
    )


# --- sequential sessions: memory growth -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sessions:
    partial_model: str
    clip: Clip
    audio_s: float
    rss_mb: dict[int, float]
    """Sessions completed -> server RSS right after the last one's end acknowledgement."""
    mean_session_s: float
    errors: tuple[str, ...]


def checkpoints(sessions: int) -> list[int]:
    return sorted({c for c in (10, 100, sessions) if c <= sessions})


def run_sessions(
    server: ServerProcess, partial_model: str, speech: Speech, settings: BenchSettings
) -> Sessions:
    """Short 2pass sessions one after another, the audio sent as fast as the socket takes it."""
    wait_until_idle(server)
    plan = plan_stream([speech], 0, 0.0, "session")
    marks = set(checkpoints(settings.sizes.sessions))
    rss: dict[int, float] = {}
    errors: list[str] = []
    started = time.monotonic()
    for i in range(1, settings.sizes.sessions + 1):
        (run,) = asyncio.run(
            play_all(ws_url(server), [plan], paced=False, drain_timeout_s=settings.drain_timeout_s)
        )
        if run.error:
            errors.append(f"session {i}: {run.error}")
        if i in marks:
            rss[i] = server_rss_mb(server.proc.pid)
    return Sessions(
        partial_model=partial_model,
        clip=speech.clip,
        audio_s=plan.duration_s,
        rss_mb=rss,
        mean_session_s=(time.monotonic() - started) / max(1, settings.sizes.sessions),
        errors=tuple(errors),
    )


# --- the offline baseline ---------------------------------------------------------------------


def transcribe_offline(server: ServerProcess, clips: Sequence[Clip]) -> dict[str, str]:
    """Each clip once through the HTTP API, one request at a time."""
    texts = {}
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
        for clip in clips:
            text, error = send(client, clip, LANGUAGE)
            if error is not None:
                raise SystemExit(f"the offline baseline failed: {error}\n{server.log[-4000:]}")
            texts[clip.id] = text or ""
    return texts


def transcribe_bare(clips: Sequence[Clip]) -> tuple[dict[str, str], float]:
    """Each clip once through faster-whisper itself (its defaults: beam 5, no VAD), the same
    model directory, in this process: the accuracy every streaming system is held to. Also
    its real-time factor, the host's speed to compare runs on other days by: this VM's speed
    has varied twofold between runs of the same code."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(resolve(MODEL).path), device=DEVICE, compute_type=COMPUTE_TYPE)
    texts = {}
    started = time.perf_counter()
    for clip in clips:
        segments, _ = model.transcribe(clip.audio, language=LANGUAGE)
        texts[clip.id] = " ".join(s.text.strip() for s in segments)
    audio_s = sum(clip.duration for clip in clips)
    return texts, (time.perf_counter() - started) / audio_s


def run_peer(
    peer: str,
    scratch: Path,
    plans: dict[tuple[str, int], list[StreamPlan]],
    offline: dict[str, str],
    bare: dict[str, str],
    shortest: Speech,
    settings: BenchSettings,
) -> list[Level]:
    if peer != "whisperlive":
        raise SystemExit(f"unknown peer {peer!r} (known: whisperlive)")
    from bench import whisperlive

    python = whisperlive.ensure_venv()
    process = whisperlive.start(python, resolve(MODEL).path, max(settings.sizes.n) + 1, scratch)
    try:
        target = Target(
            label=f"{whisperlive.NAME} {whisperlive.PACKAGE.split('==')[1]}",
            pid=process.proc.pid,
            url=process.url,
            protocol=whisperlive.PROTOCOL,
            match=whisperlive.match_clips,
            partial_texts=False,
        )
        warm = plan_stream([shortest], 0, 0.0, "warm-up")
        asyncio.run(
            play_all(target.url, [warm], paced=True, drain_timeout_s=settings.drain_timeout_s,
                     protocol=target.protocol)
        )  # fmt: skip
        levels = []
        for level_plans in plans.values():
            levels.append(measure_level(target, level_plans, offline, settings, bare))
            _print_level(levels[-1], settings)
        return levels
    finally:
        process.stop()


def _threads(settings: BenchSettings) -> str:
    workers = settings.decode_workers or "the default"
    threads = settings.cpu_threads or "the cores shared"
    more = "".join(f", {name} {value}" for name, value in settings.server_settings)
    return f"decode workers {workers}, cpu_threads {threads}{more}"


def serve(scratch: Path, partial_model: str, settings: BenchSettings) -> ServerProcess:
    # 0 leaves the server its own default: the setting itself takes no 0.
    workers = {"decode_workers": str(settings.decode_workers)} if settings.decode_workers else {}
    return start_server(
        scratch,
        name=f"bench-{partial_model}",
        model=MODEL,
        device=DEVICE,
        compute_type=COMPUTE_TYPE,
        cpu_threads=str(settings.cpu_threads),
        partial_model=partial_model,
        **workers,
        # Room for the busiest level and nothing refused: the levels measure decoding.
        max_streams=str(max(settings.sizes.n) + 1),
        stream_idle_timeout_s=str(max(300.0, settings.drain_timeout_s)),
        **dict(settings.server_settings),
    )


def warm_streams(server: ServerProcess, speech: Speech, settings: BenchSettings) -> None:
    """One unpaced session, so the first level does not pay for loading the partial model."""
    plan = plan_stream([speech], 0, 0.0, "warm-up")
    (run,) = asyncio.run(
        play_all(ws_url(server), [plan], paced=False, drain_timeout_s=settings.drain_timeout_s)
    )
    if run.error:
        raise SystemExit(f"the warm-up stream failed: {run.error}\n{server.log[-4000:]}")


# --- report -----------------------------------------------------------------------------------


def largest_real_time(levels: Sequence[Level], bound_s: float) -> int | None:
    """The largest N such that it and every smaller N measured stay real time."""
    best = None
    for level in sorted(levels, key=lambda lv: lv.n):
        if not level.real_time(bound_s):
            break
        best = level.n
    return best


def _largest_text(levels: Sequence[Level], series: str, bound_s: float) -> str:
    mine = [lv for lv in levels if lv.series == series]
    largest = largest_real_time(mine, bound_s)
    if largest is None:
        return "none of the N measured"
    if largest == max(lv.n for lv in mine):
        return f"{largest} (the most measured)"
    return str(largest)


def latency_table(levels: Sequence[Level], bound_s: float) -> str:
    header = [
        "partial model or peer",
        "streams",
        "audio s / stream",
        "first partial p50 s",
        "first partial p95 s",
        "final p50 s",
        "final p95 s",
        "backlog growth s",
        "max send lag s",
        "clips",
        "no partial",
        "no final",
        "errors",
        "real time",
    ]
    rows = [
        [
            lv.series,
            str(lv.n),
            num(lv.audio_s, 1),
            num(lv.first_partial(0.50), 2),
            num(lv.first_partial(0.95), 2),
            num(lv.final(0.50), 2),
            num(lv.final(0.95), 2),
            num(lv.backlog_growth_s, 2),
            num(lv.send_lag_s, 2),
            str(len(lv.outcomes)),
            str(lv.missing_partials),
            str(lv.missing_finals),
            str(len(lv.errors)),
            "yes" if lv.real_time(bound_s) else "no",
        ]
        for lv in levels
    ]
    return table(header, rows)


def accuracy_table(levels: Sequence[Level]) -> str:
    header = [
        "partial model or peer",
        "streams",
        "partial WER (last)",
        "partial WER (deltas)",
        "final WER",
        "stream WER",
        "offline WER",
        "faster-whisper WER",
        "final − offline",
        "server CPU %",
        "CPU % / stream",
        "final model busy %",
        "final batch wait ms",
        "partial model busy %",
        "early finals used / cancelled / wasted",
        "idle RSS MB",
        "peak RSS MB",
        "RSS MB / stream",
    ]
    rows = [
        [
            lv.series,
            str(lv.n),
            _percent(lv.last_partial_wer),
            _percent(lv.delta_wer),
            f"{lv.final_wer:.2%}",
            f"{lv.stream_wer:.2%}",
            f"{lv.offline_wer:.2%}",
            _percent(lv.bare_wer),
            f"{(lv.final_wer - lv.offline_wer) * 100:+.2f} pt",
            num(100 * lv.cpu_s / lv.wall_s if lv.wall_s else None, 0),
            num(lv.cpu_percent_per_stream, 0),
            num(lv.busy_percent(MODEL), 0),
            num(lv.batch_wait_ms(MODEL), 0),
            num(lv.busy_percent(lv.partial_model), 0),
            " / ".join(f"{lv.early_finals[k]:.0f}" for k in EARLY_OUTCOMES)
            if lv.early_finals
            else "–",
            num(lv.idle_rss_mb, 0),
            num(lv.peak_rss_mb, 0),
            num(lv.rss_mb_per_stream, 1),
        ]
        for lv in levels
    ]
    return table(header, rows)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def sessions_table(results: Sequence[Sessions]) -> str:
    marks = sorted({m for r in results for m in r.rss_mb})
    header = [
        "partial model",
        *(f"RSS MB after {m}" for m in marks),
        "growth MB",
        "mean session s",
        "errors",
    ]
    rows = []
    for r in results:
        first, last = min(r.rss_mb), max(r.rss_mb)
        rows.append(
            [
                r.partial_model,
                *(num(r.rss_mb.get(m), 1) for m in marks),
                f"{r.rss_mb[last] - r.rss_mb[first]:+.1f}",
                num(r.mean_session_s, 2),
                str(len(r.errors)),
            ]
        )
    return table(header, rows)


def plot(levels: Sequence[Level], bound_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(lv.series for lv in levels))
    ns = sorted({lv.n for lv in levels})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, title, measure in (
        (axes[0], "first partial after speech onset", Level.first_partial),
        (axes[1], "final after end of speech", Level.final),
    ):
        for i, model in enumerate(models):
            mine = sorted((lv for lv in levels if lv.series == model), key=lambda lv: lv.n)
            color = f"C{i}"
            for q, style in ((0.50, "-"), (0.95, "--")):
                points = [(lv.n, measure(lv, q)) for lv in mine]
                points = [(n, v) for n, v in points if v is not None]
                if points:
                    xs, ys = zip(*points, strict=True)
                    label = f"{model} p{round(q * 100)}"
                    ax.plot(xs, ys, style, marker="o", color=color, label=label)
        ax.set_title(title)
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("seconds")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[1].axhline(bound_s, color="grey", linewidth=1, linestyle=":", label="real-time bound")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("asrserve 2pass streaming latency (lower is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


_VERSIONED = (
    "asrserve", "faster-whisper", "ctranslate2", "onnxruntime", "pocketsphinx", "uvicorn",
    "websockets",
)  # fmt: skip

_LATENCY_NOTES = """\
- *first partial*: per clip, from the time the 60 ms frame holding its first speech sample
  (Silero VAD on the clip alone, no padding) was due to the arrival of the first
  `2pass-online` message of an utterance starting in that clip's window.
- *final*: per clip, from the time the frame holding its last speech sample was due to the
  arrival of the last `2pass-offline` message for it. It includes the 800 ms of silence the
  server waits for before it ends an utterance.
- Utterances are matched to clips by their `start_time`: a clip's window runs from the start of
  its lead silence to the next clip's.
- *backlog growth*: median final latency of clips ending in the second half of their stream
  minus that of clips ending in the first half.
- *max send lag*: the most any frame left after it was due; the latencies count from the due
  time, so a server pushing back is charged for it, as a live microphone user would feel it.
- *real time*: no stream error, a final for every clip, p95 final latency at most
  {bound:g} s and backlog growth at most {growth:g} s. The largest N counts only if
  every smaller N measured also stays real time."""

_ACCURACY_NOTES = """\
- *partial WER (last)*: per clip, the last partial (`utterance_text`, the partial decoder's
  whole hypothesis) of each of its utterances, joined, against the reference: the best the
  live text was just before the final replaced it. An utterance without partials counts as
  deleted words.
- *partial WER (deltas)*: per clip, the partials' `text` deltas appended, as FunASR's clients
  display them before the final (only words two hypotheses in a row agree on).
- *final WER*: the clip's `2pass-offline` texts joined; *offline WER*: the same clips (as many
  times as the streams played them) through the HTTP API. All WERs pool all words after the
  development set's normalisation (`asrserve.evaluation.wer`).
- *server CPU %*: the server's CPU time (user + system, children included) over the level's
  wall time, in % of one core; *CPU % / stream* divides it by N.
- *final / partial model busy %*: the model's batch decode time over the level's wall time
  (100: a batch always in flight); *final batch wait ms*: how long the oldest chunk of each of
  the final model's batches queued before the batch started, on average: the queueing part of
  a final's latency.
- *early finals*: finals started in a pause before its endpoint (`stream_early_final_ms`), by
  how they ended: *used* (the endpoint came: the final was decoding already), *cancelled*
  (speech again while it still queued), *wasted* (speech again after it was decoded).
- *idle RSS MB*: the server's resident memory just before the level; *peak RSS MB* polled every
  50 ms during it; *RSS MB / stream* = (peak − idle) ÷ N."""


def _setup_lines(
    sessions: Sequence[Sessions],
    speeches: Sequence[Speech],
    settings: BenchSettings,
    machine: str,
) -> str:
    durations = sorted(s.clip.duration for s in speeches)
    session_clip = sessions[0] if sessions else None
    session_audio = (
        f"clip `{session_clip.clip.id}` ({session_clip.audio_s:.1f} s with its silence)"
        if session_clip
        else "a short clip"
    )
    versions = ", ".join(f"{p} {version(p)}" for p in _VERSIONED)
    lines = (
        f"Data: development set subset `{settings.subset}`, ordinary speech only "
        f"(`clean_read`), {len(speeches)} clips of {durations[0]:.1f}–{durations[-1]:.1f} s; "
        f"each played with {LEAD_S:g} s of silence before and {TAIL_S:g} s after, back to "
        f"back, until a stream has {settings.sizes.stream_s:g} s of audio (*{HALF_SILENT}*: "
        "each clip's silence after it lengthened by the clip's own duration, so about half "
        "of the stream is silence, like dictation). Stream j of N "
        "starts at clip j × (clips ÷ N) and "
        f"j × {START_SPREAD_S:g} s ÷ N after the first stream.",
        f"Server: one `asrserve serve` per partial model (`ASRSERVE_PARTIAL_MODEL`), final "
        f"model `{MODEL}` ({DEVICE}, {COMPUTE_TYPE}, "
        f"{_threads(settings)}), "
        "other settings the defaults (end of utterance after 800 ms of silence, a partial "
        "every 0.5 s of speech, default batching); warmed with one stream.",
        "Client: this script, one asyncio task per stream on the same machine, FunASR's "
        f"protocol in `2pass` mode with `svs_lang` `{LANGUAGE}`, 16 kHz s16le PCM in "
        f"{FRAME_S * 1000:.0f} ms frames, frame k due at the stream's start + k × "
        f"{FRAME_S * 1000:.0f} ms (a wall-clock schedule, as a microphone delivers them).",
        f"Offline baselines: every clip once through `POST /v1/audio/transcriptions` "
        f"(language `{LANGUAGE}`, same server and model) in this run (*offline WER*), and "
        "once through faster-whisper's own `WhisperModel.transcribe` (beam 5, no VAD, the "
        "same model directory, in the benchmark's process: *faster-whisper WER*).",
        *_peer_lines(settings),
        f"Sessions: {settings.sizes.sessions} 2pass sessions one after another on each "
        f"server after its levels, each {session_audio}, sent as fast as the socket takes it. "
        "Each level starts once the server has no stream open and its load level is normal.",
        f"Machine: {machine}.",
        f"Versions: {versions}.",
    )
    return "\n".join(f"- {line}" for line in lines)


def _peer_lines(settings: BenchSettings) -> tuple[str, ...]:
    if "whisperlive" not in settings.peers:
        return ()
    from bench import whisperlive

    return (
        f"Peer: {whisperlive.NAME} (`{whisperlive.PACKAGE}`, faster-whisper backend, in its own "
        f"environment with {', '.join(f'`{r}`' for r in whisperlive.SERVER_REQUIREMENTS)}), "
        f"the same `{MODEL}` directory on {DEVICE} int8, one model shared by all clients "
        "(`single_model`), its other settings the defaults; the same streams through its "
        "protocol (s16le frames, `END_OF_AUDIO` once its output has not changed for "
        f"{whisperlive.QUIET_S:g} s after the last frame, as it stops decoding at "
        "`END_OF_AUDIO`). Its final: a segment it marks `completed`; "
        "its first partial: the first segment of the clip it sends. The last segment of a "
        "stream is never completed before the stream closes, so the last clip of each stream "
        "takes the live text the client holds at close as its final, timed at that text's "
        "first arrival. Its live text is not an utterance so far, so "
        "its partial WER is not computed; *stream WER* (each stream's finals joined against "
        "its clips' texts joined) does not charge segments that straddle two clips twice.",
    )


def _sessions_and_errors(levels: Sequence[Level], sessions: Sequence[Sessions]) -> str:
    errors = [err for lv in levels for err in lv.errors] + [
        err for s in sessions for err in s.errors
    ]
    error_note = (
        "\n\nFirst errors:\n\n" + "\n".join(f"- `{err}`" for err in errors[:5]) if errors else ""
    )
    sessions_part = (
        f"""
## Memory over sequential sessions

{sessions_table(sessions)}

- *RSS MB after k*: the server's resident memory (children included) right after the k-th
  session's end acknowledgement; *growth MB* from the first column to the last.
"""
        if sessions
        else ""
    )
    return sessions_part + error_note


def render_report(
    levels: Sequence[Level],
    sessions: Sequence[Sessions],
    speeches: Sequence[Speech],
    settings: BenchSettings,
    started: datetime,
    machine: str,
    plot_name: str,
) -> str:
    bound = settings.rt_bound_s
    largest = "; ".join(
        f"`{series}` {_largest_text(levels, series, bound)}"
        for series in dict.fromkeys(lv.series for lv in levels)
    )
    return f"""# Streaming benchmark

Generated by `bench/streaming.py` on {started:%Y-%m-%d %H:%M} UTC (asrserve {git_revision()}).
Regenerate with `.venv/bin/python -m bench.streaming` on a quiet machine.

## Setup

{_setup_lines(sessions, speeches, settings, machine)}

## Latency and real time

![first-partial and final latency against concurrent streams]({plot_name})

{latency_table(levels, bound)}

Largest number of streams that stays real time: {largest}.

{_LATENCY_NOTES.format(bound=bound, growth=BACKLOG_GROWTH_S)}

## Accuracy and resources

{accuracy_table(levels)}

{_ACCURACY_NOTES}
{_sessions_and_errors(levels, sessions)}
"""


# --- main -------------------------------------------------------------------------------------


def write_per_clip(levels: Sequence[Level], offline: dict[str, str], path: Path) -> None:
    """One JSON line per clip and level: what a WER gap or a slow final is made of."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for level in levels:
            for o in level.outcomes:
                row = {
                    "partial_model": level.partial_model,
                    "n": level.n,
                    "clip": o.clip.id,
                    "reference": o.clip.text,
                    "final": o.final_text,
                    "offline": offline[o.clip.id],
                    "final_wer": _wer([o.clip.text], [o.final_text]),
                    "offline_wer": _wer([o.clip.text], [offline[o.clip.id]]),
                    "first_partial_s": o.first_partial_s,
                    "final_s": o.final_s,
                }
                out.write(json.dumps(row) + "\n")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(dict.fromkeys(int(v) for v in text.split(",") if v.strip()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Latency, accuracy and cost of N concurrent real-time WebSocket streams.",
    )
    parser.add_argument(
        "--n", default=None, help="Comma list of stream counts (default 1,2,4,8,16; quick 1,2)."
    )
    parser.add_argument(
        "--partial-models",
        default=",".join(PARTIAL_MODELS),
        help=f"Comma list of partial models, one server each (default {','.join(PARTIAL_MODELS)}).",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=None,
        help="Sequential sessions for the memory check (default 1000; quick 20; 0 skips it).",
    )
    parser.add_argument(
        "--stream-seconds",
        type=float,
        default=None,
        help="Audio per stream (default 45; quick 8).",
    )
    parser.add_argument(
        "--rt-bound", type=float, default=3.0, help="Real time: p95 final latency bound in s."
    )
    parser.add_argument("--subset", default="en", help="Development set subset (default en).")
    _add_server_arguments(parser)
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"Comma list of {', '.join(WORKLOADS)} (default both): clips back to back, or "
        "each followed by as much silence again.",
    )
    parser.add_argument(
        "--peers",
        default="whisperlive",
        help="Comma list of other streaming servers measured on the same streams after "
        "asrserve (default whisperlive: WhisperLive, in its own environment; '' for none).",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown report.")
    parser.add_argument(
        "--plot", type=Path, default=None, help="PNG plot (default: the output's name, .png)."
    )
    parser.add_argument(
        "--per-clip", type=Path, default=None, help="Also write each clip's outcome (JSONL)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="Tiny sizes for a smoke check of the script."
    )
    return parser


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """How the asrserve servers run."""
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=0,
        help="Threads per decode worker (default 0: the server shares the cores among them).",
    )
    parser.add_argument(
        "--decode-workers",
        type=int,
        default=0,
        help="Batches each model decodes at once (default 0: the server's choice).",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Another server setting (the ASRSERVE_ name in lower case, without the prefix), "
        "e.g. partial_decode_workers=2; repeatable.",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    try:
        n = _ints(args.n) if args.n is not None else base.n
    except ValueError:
        parser.error("--n takes a comma list of whole numbers")
    if not n or min(n) < 1:
        parser.error("--n needs at least one stream count, each at least 1")
    sessions = base.sessions if args.sessions is None else args.sessions
    stream_s = base.stream_s if args.stream_seconds is None else args.stream_seconds
    if sessions < 0 or stream_s <= 0 or args.rt_bound <= 0:
        parser.error("--sessions >= 0, --stream-seconds and --rt-bound > 0")
    if args.cpu_threads < 0 or args.decode_workers < 0:
        parser.error("--cpu-threads and --decode-workers >= 0")
    args.peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    args.workloads = tuple(dict.fromkeys(w.strip() for w in args.workloads.split(",") if w.strip()))
    if not args.workloads or set(args.workloads) - set(WORKLOADS):
        parser.error(f"--workloads takes a comma list of {', '.join(WORKLOADS)}")
    pairs = [item.partition("=") for item in args.setting]
    if any(not name or not sep for name, sep, _ in pairs):
        parser.error("--setting takes NAME=VALUE")
    args.server_settings = tuple((name.strip(), value) for name, _, value in pairs)
    args.sizes = Sizes(n=tuple(sorted(n)), stream_s=stream_s, sessions=sessions)
    args.partial_models = tuple(
        dict.fromkeys(m.strip() for m in args.partial_models.split(",") if m.strip())
    )
    if not args.partial_models:
        parser.error("--partial-models needs at least one model")
    args.plot = args.plot or args.output.with_suffix(".png")
    return args


def _run_levels(
    server: ServerProcess,
    model: str,
    plans: dict[tuple[str, int], list[StreamPlan]],
    offline: dict[str, str],
    settings: BenchSettings,
    bare: dict[str, str],
) -> list[Level]:
    levels = []
    for level_plans in plans.values():
        levels.append(run_level(server, model, level_plans, offline, settings, bare))
        _print_level(levels[-1], settings)
    return levels


def _print_level(level: Level, settings: BenchSettings) -> None:
    print(
        f"{level.series} N={level.n}: first partial p50 "
        f"{num(level.first_partial(0.5), 2)} s, final p50 {num(level.final(0.5), 2)} / p95 "
        f"{num(level.final(0.95), 2)} s, final WER {level.final_wer:.2%} (streams "
        f"{level.stream_wer:.2%}), CPU {level.cpu_percent_per_stream:.0f}%/stream, busy final "
        f"{num(level.busy_percent(MODEL), 0)}% / partial "
        f"{num(level.busy_percent(level.partial_model), 0)}%, {len(level.errors)} errors, "
        f"real time {'yes' if level.real_time(settings.rt_bound_s) else 'no'}",
        flush=True,
    )


def _run_sessions_printed(
    server: ServerProcess, model: str, shortest: Speech, settings: BenchSettings
) -> Sessions:
    result = run_sessions(server, model, shortest, settings)
    print(
        f"{model} sessions: RSS "
        + ", ".join(f"{k}: {v:.1f} MB" for k, v in result.rss_mb.items())
        + f", {len(result.errors)} errors"
    )
    return result


def measure_all(
    settings: BenchSettings, plans: dict[tuple[str, int], list[StreamPlan]], shortest: Speech
) -> tuple[list[Level], list[Sessions], dict[str, str], float]:
    """Every level on every asrserve server, then on every peer; the offline baseline and
    faster-whisper's real-time factor on it."""
    used = {p.clip.id: p.clip for level in plans.values() for plan in level for p in plan.plays}
    levels: list[Level] = []
    sessions: list[Sessions] = []
    offline: dict[str, str] = {}
    bare, bare_rtf = transcribe_bare(list(used.values()))
    print(f"faster-whisper baseline: {len(bare)} clips, RTF {bare_rtf:.3f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="asrserve-bench-streaming-") as scratch:
        for model in settings.partial_models:
            server = serve(Path(scratch), model, settings)
            try:
                warm_up(server, shortest.clip)
                if not offline:
                    offline = transcribe_offline(server, list(used.values()))
                    print(f"offline baseline: {len(offline)} clips", flush=True)
                warm_streams(server, shortest, settings)
                levels += _run_levels(server, model, plans, offline, settings, bare)
                if settings.sizes.sessions:
                    sessions.append(_run_sessions_printed(server, model, shortest, settings))
            finally:
                server.stop()
        for peer in settings.peers:
            levels += run_peer(peer, Path(scratch), plans, offline, bare, shortest, settings)
    return levels, sessions, offline, bare_rtf


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = BenchSettings(
        partial_models=args.partial_models,
        sizes=args.sizes,
        subset=args.subset,
        cpu_threads=args.cpu_threads,
        decode_workers=args.decode_workers,
        rt_bound_s=args.rt_bound,
        server_settings=args.server_settings,
        peers=args.peers,
        workloads=args.workloads,
    )
    started = datetime.now(UTC)
    machine = machine_description()  # before any work, so the load average is the machine's own
    speeches = load_speech(settings.subset)
    shortest = min(speeches, key=lambda s: s.clip.duration)
    plans = {
        (workload, n): plan_level(speeches, n, settings.sizes.stream_s, workload)
        for workload in settings.workloads
        for n in settings.sizes.n
    }
    print(
        f"{len(speeches)} clips; streams {', '.join(map(str, settings.sizes.n))} of "
        f"{settings.sizes.stream_s:g} s; partial models {', '.join(settings.partial_models)}; "
        f"{settings.sizes.sessions} sequential sessions"
    )
    levels, sessions, offline, bare_rtf = measure_all(settings, plans, shortest)
    machine += (
        f"; faster-whisper decoded the baseline clips at RTF {bare_rtf:.3f} "
        "(the host's speed: compare runs by it)"
    )
    print()
    print(latency_table(levels, settings.rt_bound_s))
    print()
    print(accuracy_table(levels))
    if sessions:
        print()
        print(sessions_table(sessions))
    if args.per_clip is not None:
        write_per_clip(levels, offline, args.per_clip)
    plot(levels, settings.rt_bound_s, args.plot)
    plot_name = os.path.relpath(args.plot.resolve(), args.output.resolve().parent)
    report = render_report(levels, sessions, speeches, settings, started, machine, plot_name)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"\nwrote {args.output} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
