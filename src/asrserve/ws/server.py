"""One FunASR-protocol WebSocket connection: receive audio, feed a live session, send results.

The receive loop feeds the session in a worker thread (VAD and partial decoding are CPU work)
and hands its events to a sender task, which sends partials at once and each final as soon as
the shared batcher has decoded it, in utterance order. A connection's failures (bad frames,
a client that vanishes, a decode error) end that connection only.

When the server drains (SIGTERM), new streams are refused and each open one ends with the
utterance being spoken: when the VAD closes it, when the client stops sending, or at the drain's
cut-off, whichever comes first. Its final is sent, marked `is_final`, then the stream is closed
with 1012 (service restart) so the client reconnects, to another replica or to this one restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any, Protocol

import anyio
import numpy as np
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from asrserve.engine import (
    SAMPLE_RATE,
    AsrError,
    DecodeOptions,
    LiveSession,
    LoadedModel,
    Mode,
    ModelRegistry,
    Partial,
    PendingFinal,
    error_code,
    open_session,
    parse_hotwords,
)
from asrserve.engine import decode as decode_audio
from asrserve.engine.audio import pcm16_to_float32, resample
from asrserve.engine.engines.base import IncrementalEngine
from asrserve.engine.partials import IncrementalPartials, WhisperPartials
from asrserve.engine.streaming import EarlyFinalOutcome, PartialDecoder
from asrserve.observability.metrics import Metrics, StreamStats
from asrserve.ws.load import LiveLoad, StreamCapacity, StreamLag, StreamShedder
from asrserve.ws.options import AUTO_MAX_STREAMS, StreamServerOptions
from asrserve.ws.protocol import (
    ClientConfig,
    DeltaTracker,
    ProtocolError,
    end_ack,
    error_message,
    final_message,
    is_end_message,
    parse_text_frame,
    partial_message,
)

log = logging.getLogger(__name__)

LINGER_S = 5.0
"""After the last result, how long to wait for a client that will close by itself."""
DRAIN_QUIET_S = 2.0
"""While draining, a client that sends nothing for this long has stopped speaking: its utterance
ends there (a live client sends a frame every 60 ms or so)."""
LAG_CHECK_S = 0.5
"""How often a stream whose client sends nothing checks whether its results are too late (a
sending client's frames check it each time)."""
DRAIN_BACKLOG_S = 0.02
"""While draining, a stream with no speech in progress ends when no frame comes within this: it
has no backlog of frames that arrived before the drain (and might start an utterance)."""

# WebSocket close codes (RFC 6455 and IANA's registry).
NORMAL, GOING_AWAY, UNSUPPORTED, POLICY, TOO_BIG, INTERNAL, RESTART, TRY_LATER = (
    1000,
    1001,
    1003,
    1008,
    1009,
    1011,
    1012,
    1013,
)
RESTART_REASON = "server restarting: reconnect to go on"


class DrainSignal(Protocol):
    """The server's shutting-down state (`asrserve.runtime.drain.Drain`)."""

    @property
    def draining(self) -> bool: ...

    def time_left(self) -> float:
        """Seconds until the last streams must be closed."""
        ...

    def utterance_time_left(self) -> float:
        """Seconds until utterances still being spoken are cut."""
        ...

    async def wait_begun(self) -> None: ...


class StreamServer:
    """Shared by every connection: the models (through the registry) and the stream slots."""

    def __init__(
        self,
        registry: ModelRegistry,
        options: StreamServerOptions,
        metrics: Metrics,
        drain: DrainSignal,
    ) -> None:
        self.registry = registry
        self.options = options
        self.metrics = metrics
        self.drain = drain
        self.load = LiveLoad(self._lag, options.load)
        self.capacity = StreamCapacity(self._final_model_busy, options.load)
        self.shedder = StreamShedder(options.load)
        metrics.watch(streams=self.stats)
        self.active = 0
        self.connections: dict[Connection, None] = {}
        """The open streams, in the order they were admitted."""
        self._none_active = asyncio.Event()
        self._none_active.set()

    def _lag(self) -> float:
        """How far behind the models the live path uses are (HTTP requests share them)."""
        names = {self.options.final_model, *self.options.partial_models}
        return max(
            (m.batcher.lag_s() for m in self.registry.loaded() if m.name in names), default=0.0
        )

    def _final_model_busy(self) -> tuple[float, int] | None:
        for model in self.registry.loaded():
            if model.name == self.options.final_model:
                return model.batcher.busy_seconds(), model.engine.info.workers
        return None

    @property
    def limit(self) -> int:
        return self.options.max_streams or AUTO_MAX_STREAMS

    def backlog_s(self) -> float:
        """The most any open stream is behind its real-time schedule."""
        return max((c.lag.lag_s() for c in self.connections), default=0.0)

    def shed_if_behind(self) -> None:
        """Marks the stream to close when the streams as a whole fall behind (StreamShedder)."""
        candidates = [c for c in self.connections if not c.shed]
        victim = self.shedder.pick(lambda: [c.lag.lag_s() for c in candidates])
        if victim is not None:
            candidates[victim].shed = True

    def may_start_early_final(self) -> bool:
        """A final starts in a pause (`StreamingOptions.early_final_ms`) only with room to spare:
        nothing behind, and fewer streams open than the final model keeps real time for by live
        RTF. A pause that speech breaks wastes the decode: on 2 cores (streaming benchmark,
        2026-12-08), with the lag alone as the gate, 8 continuous streams had 51 early finals
        used and 12 wasted, the final model 68 % busy against 48 % without, final p95 1.71 s
        against 1.51 s. With both gates, runs in BAAB order (`README`, `stream_early_final_ms`)
        gave a lower final p50 at every level measured, and p95 within the host's spread."""
        room = self.capacity.last_estimate
        return self.load.may_start_early_final() and (room is None or self.active < room)

    def early_final_ended(self, outcome: EarlyFinalOutcome) -> None:
        self.load.early_final_ended(outcome)

    def stats(self) -> StreamStats:
        return StreamStats(
            active=self.active,
            limit=self.limit,
            load_level=int(self.load.level()),
            backlog_s=self.backlog_s(),
            partials_skipped=self.load.partials_skipped,
            early_finals={str(k): v for k, v in self.load.early_finals.items()},
            capacity=self.capacity.estimate(),
        )

    async def closed(self) -> None:
        """Returns when no stream is open (the drain waits for this)."""
        await self._none_active.wait()

    async def handle(self, websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        subprotocol = "binary" if "binary" in offered else None
        await websocket.accept(subprotocol=subprotocol)
        if self.drain.draining:
            # 1013 (try again later), not 1012: this replica takes no new stream, while others
            # behind the same balancer do; IANA's entry for 1013 says "connect to a different
            # IP", which a reconnect through the balancer does, and 1012's asks for a 5-30 s
            # wait first. FunASR's and WhisperLive's clients do not look at close codes (they
            # show the error text, hence its sentence); clients that do see the code a full
            # server sends (server_busy), so one retry path covers both.
            self.metrics.track_rejected("draining")
            await _send(websocket, error_message(
                "", "", "The server is shutting down and takes no new stream; connect again "
                "(another replica, or this one once restarted, will take it).", "server_draining",
            ))  # fmt: skip
            await websocket.close(TRY_LATER, "server shutting down: try again")
            return
        if self.active >= self.limit or not self.load.accepts_streams:
            full = self.active >= self.limit
            self.metrics.track_rejected("streams_full" if full else "streams_behind")
            why = (
                f"The server is at its limit of {self.limit} streams"
                if full
                else "The server is behind on the streams it has"
            )
            await _send(websocket, error_message(
                "", "", f"{why}; retry in a few seconds.", "server_busy",
            ))  # fmt: skip
            await websocket.close(TRY_LATER, "server busy: try again")
            return
        self.active += 1
        self._none_active.clear()
        connection = Connection(self, websocket)
        self.connections[connection] = None
        try:
            await connection.run()
        finally:
            self.connections.pop(connection, None)
            self.active -= 1
            if not self.active:
                self._none_active.set()


def drop_unsent_finals(events: asyncio.Queue[tuple[PendingFinal | Partial, bool] | None]) -> int:
    """Cancels the decodes of a closed stream's finals still queued, and says how many it
    stopped: left to run, the finals of streams closed by overload keep the models behind
    (and new streams refused) for as long as they take, with nobody to send them to."""
    dropped = 0
    while not events.empty():
        item = events.get_nowait()
        if item is not None and isinstance(item[0], PendingFinal) and item[0].future.cancel():
            dropped += 1
    return dropped


async def _send(websocket: WebSocket, message: dict[str, Any]) -> bool:
    if websocket.client_state is not WebSocketState.CONNECTED:
        return False
    try:
        await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return False
    return True


class StreamOverloadedError(Exception):
    """The stream fell further behind real time than the load options allow, or was shed so
    that the others keep up; `reason` labels the refusal metric."""

    def __init__(self, message: str, reason: str = "stream_overloaded") -> None:
        super().__init__(message)
        self.reason = reason


class Connection:
    """One stream. The receive loop only reads frames and queues their audio; a feeder task
    runs the session on it, all that has queued in one go, in a worker thread; a sender task
    sends the results. So the loop never waits on decoding: pings and the end message are read
    however busy the models are, and a stream that falls behind is told so."""

    def __init__(self, server: StreamServer, websocket: WebSocket) -> None:
        self.server = server
        self.websocket = websocket
        self.config: ClientConfig | None = None
        self.session: LiveSession | None = None
        self.final_model: LoadedModel | None = None
        self.partial_model: LoadedModel | None = None
        self.events: asyncio.Queue[tuple[PendingFinal | Partial, bool] | None] = asyncio.Queue()
        self.sender: asyncio.Task[None] | None = None
        self.audio: asyncio.Queue[tuple[np.ndarray, float]] = asyncio.Queue()
        """Audio received and not yet fed to the session, with when each piece was due."""
        self.feeder: asyncio.Task[None] | None = None
        self._feed_error: BaseException | None = None
        self.lag = StreamLag()
        self.shed = False
        """Chosen to close so that the other streams keep up (StreamShedder)."""
        self.encoded = bytearray()
        self.odd_byte = b""
        self.received_s = 0.0
        self.ending = False
        """No utterance follows the ones queued: the last final carries is_final."""
        self._receiving: asyncio.Future[Message] | None = None
        self._drain_begun: asyncio.Future[None] | None = None

    @property
    def mode(self) -> str:
        return self.config.mode if self.config else ""

    @property
    def wav_name(self) -> str:
        return self.config.wav_name if self.config else ""

    async def run(self) -> None:
        try:
            await self._receive_loop()
        except ProtocolError as exc:
            await self._fail(str(exc), "protocol_error", POLICY)
        except AsrError as exc:
            await self._fail(str(exc), exc.code, UNSUPPORTED)
        except StreamOverloadedError as exc:
            self.server.metrics.track_rejected(exc.reason)
            await self._fail(str(exc), "server_overloaded", TRY_LATER)
        except WebSocketDisconnect:
            log.info("client went away", extra={"wav_name": self.wav_name})
        except Exception as exc:
            log.exception("stream failed", extra={"wav_name": self.wav_name})
            await self._fail(
                f"The server failed on this stream ({type(exc).__name__}).",
                "internal_error",
                INTERNAL,
            )
        finally:
            await self._shutdown()

    async def _receive_loop(self) -> None:
        drain = self.server.drain
        self._drain_begun = asyncio.ensure_future(drain.wait_begun())
        while True:
            # One receive at a time, kept across waits: a wake-up by the drain loses no frame.
            if self._receiving is None:
                self._receiving = asyncio.ensure_future(self.websocket.receive())
            if not drain.draining:
                if not await self._await_frame():
                    if drain.draining:
                        continue
                    idle_s = self.server.options.idle_timeout_s
                    await self._fail(
                        f"No data for {idle_s:g} s; closing the idle stream.",
                        "idle_timeout",
                        GOING_AWAY,
                    )
                    return
            else:
                # Draining. While someone speaks, the utterance goes on as long as audio comes,
                # up to the drain's cut-off, so the last sentence is not lost. Otherwise the
                # stream ends, once the frames that have already arrived are heard.
                await self._fed()  # what the session heard decides: all that has arrived
                wait_s = DRAIN_QUIET_S if self._utterance_open() else DRAIN_BACKLOG_S
                timeout = min(wait_s, drain.utterance_time_left())
                await asyncio.wait((self._receiving,), timeout=timeout)
                if not self._receiving.done():
                    break  # the client stopped sending, or the cut-off: the utterance ends here
            message = self._receiving.result()
            self._receiving = None
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            if message.get("text") is not None:
                if await self._on_text(message["text"]):
                    return
            elif message.get("bytes") is not None:
                await self._on_audio(message["bytes"])
        await self._end_for_drain()

    async def _await_frame(self) -> bool:
        """Waits for the next message, the drain, or the idle timeout (False). While the client
        sends nothing, the stream's lag is still checked: a client that stopped sending (without
        its end message) while finals are late is told `server_overloaded`, not left waiting."""
        assert self._receiving is not None and self._drain_begun is not None
        loop = asyncio.get_running_loop()
        idle_until = loop.time() + self.server.options.idle_timeout_s
        while (left := idle_until - loop.time()) > 0:
            await asyncio.wait(
                (self._receiving, self._drain_begun),
                timeout=min(left, LAG_CHECK_S),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._receiving.done() or self.server.drain.draining:
                return self._receiving.done()
            if self.session is not None:
                self._check_feeder()
        return False

    def _utterance_open(self) -> bool:
        """Whether the stream has speech in progress that the drain lets it finish."""
        if self.config is None or self.session is None:
            return False
        if not self.config.is_pcm:
            # The whole input is one encoded file, decoded at its end.
            return bool(self.encoded) or self.session.seconds_received > 0
        return self.session.speaking

    async def _on_text(self, text: str) -> bool:
        """Handles a text frame; True when the stream has ended."""
        data, config = parse_text_frame(text)
        if config is not None and self.config is None:
            await self._start(config)
        if is_end_message(data):
            if self.config is None:
                raise ProtocolError("The stream ended before its configuration message.")
            await self._finish(ack=bool(data.get("is_end")))
            return True
        return False

    async def _start(self, config: ClientConfig) -> None:
        self.config = config
        self.lag.begin()
        options = self.server.options
        registry = self.server.registry
        self.final_model = await anyio.to_thread.run_sync(registry.acquire, options.final_model)
        decode = DecodeOptions(language=config.language, hotwords=parse_hotwords(config.hotwords))
        # A language the model cannot decode is refused now, not at the first final.
        self.final_model.pipeline.settle_language([], decode)
        mode = Mode(config.mode)
        partials: PartialDecoder | None = None
        if mode is not Mode.OFFLINE:
            partials = await anyio.to_thread.run_sync(self._partials, mode, decode)
        # The server's streaming options, with what this stream's configuration decides.
        streaming = replace(
            options.streaming,
            mode=mode,
            max_offline_s=options.limits.max_duration_s or options.streaming.max_offline_s,
            itn=config.itn,
        )
        self.session = open_session(
            self.final_model.pipeline,
            decode,
            options=streaming,
            partials=partials,
            speculation=self.server,
        )
        self.sender = asyncio.create_task(self._send_events())
        self.feeder = asyncio.create_task(self._feed_queued())
        log.info(
            "stream started",
            extra={"wav_name": config.wav_name, "mode": config.mode, "format": config.wav_format},
        )

    def _partials(self, mode: Mode, decode: DecodeOptions) -> PartialDecoder:
        self.partial_model = self._partial_model_for(decode.language)
        engine = self.partial_model.engine
        if isinstance(engine, IncrementalEngine):
            # Incremental engines: online finals come from their own end-of-utterance pass.
            return IncrementalPartials(engine.open_stream(final_pass=mode is Mode.ONLINE))
        return WhisperPartials(
            self.partial_model.batcher, decode, self.server.options.streaming, pace=self.server.load
        )

    def _partial_model_for(self, language: str | None) -> LoadedModel:
        """The stream language's own partial model, else the partial model if it decodes the
        language, else the final model: multilingual, and checked against the language at the
        stream's start. A stream with no language gets the partial model's (English) text."""
        options, registry = self.server.options, self.server.registry
        name = options.language_partial_models.get(language or "", options.partial_model)
        model = registry.acquire(name)
        decodes = model.engine.info.languages
        if language is None or decodes is None or language in decodes:
            return model
        registry.release(model)
        return registry.acquire(options.final_model)

    async def _on_audio(self, frame: bytes) -> None:
        if self.config is None or self.session is None:
            raise ProtocolError(
                "Audio arrived before the configuration message; send the JSON first."
            )
        limit = self.server.options.max_frame_bytes
        if len(frame) > limit:
            await self._fail(
                f"An audio frame of {len(frame)} bytes is over the {limit}-byte limit.",
                "frame_too_large",
                TOO_BIG,
            )
            raise WebSocketDisconnect(TOO_BIG)
        if not self.config.is_pcm:
            self._keep_encoded(frame)
            return
        data = self.odd_byte + frame
        # A frame may split a 16-bit sample: keep the odd byte for the next one.
        self.odd_byte, data = (data[-1:], data[:-1]) if len(data) % 2 else (b"", data)
        if not data:
            return
        pcm = pcm16_to_float32(data)
        if self.config.audio_fs != SAMPLE_RATE:
            pcm = resample(pcm, self.config.audio_fs, SAMPLE_RATE)
        self._check_feeder()
        self.received_s += pcm.size / SAMPLE_RATE
        due = self.lag.due(self.received_s)
        self.lag.waiting(id(pcm), due)
        self.audio.put_nowait((pcm, due))

    def _check_feeder(self) -> None:
        """Raises what stopped the feeder, or if the stream is too far behind real time."""
        if self._feed_error is not None:
            raise self._feed_error
        self.server.shed_if_behind()
        if self.shed:
            raise StreamOverloadedError(
                "The server is overloaded: its streams are falling behind real time, and this "
                "one, the newest, is closed so that the others keep up. Reconnect in a while, "
                "or send files to the HTTP API.",
                "stream_shed",
            )
        lag = self.lag.lag_s()
        bound = self.server.options.load.overloaded_lag_s
        if lag > bound:
            raise StreamOverloadedError(
                f"The server is overloaded: this stream's results are {lag:.0f} s behind real "
                f"time (the limit is {bound:g} s). Reconnect, or send files to the HTTP API."
            )

    async def _feed_queued(self) -> None:
        """The feeder: everything queued since the last feed goes to the session at once, so
        a stream that fell behind catches up in one call, not one per frame."""
        while True:
            pieces = [await self.audio.get()]
            while not self.audio.empty():
                pieces.append(self.audio.get_nowait())
            try:
                if self._feed_error is None:
                    await self._feed(np.concatenate([pcm for pcm, _ in pieces]))
            except Exception as exc:
                self._feed_error = exc
            finally:
                for pcm, _ in pieces:
                    self.lag.done(id(pcm))
                    self.audio.task_done()

    async def _fed(self) -> None:
        """Returns when every piece of audio received has been fed (raising what failed)."""
        await self.audio.join()
        if self._feed_error is not None:
            raise self._feed_error

    def _keep_encoded(self, frame: bytes) -> None:
        max_bytes = self.server.options.limits.max_bytes
        if max_bytes is not None and len(self.encoded) + len(frame) > max_bytes:
            raise ProtocolError(f"The encoded audio is over the {max_bytes}-byte limit.")
        self.encoded += frame

    async def _feed(self, pcm: np.ndarray, *, final: bool = False) -> None:
        session = self.session
        assert session is not None
        events = await anyio.to_thread.run_sync(session.feed, pcm)
        self.server.capacity.heard(pcm.size / SAMPLE_RATE)
        self._queue_events(events, final)

    def _queue_events(self, events: list[PendingFinal | Partial], after_end: bool) -> None:
        assert self.session is not None
        due = self.lag.due(self.session.seconds_received)
        for event in events:
            if isinstance(event, PendingFinal):
                self.lag.waiting(id(event), due)
            self.events.put_nowait((event, after_end))

    async def _flush(self) -> None:
        """The input ended: decode what is left (encoded input, the open utterance) and send
        every result still due."""
        session = self.session
        assert session is not None and self.config is not None
        await self._fed()
        if self.encoded:
            audio = await anyio.to_thread.run_sync(
                lambda: decode_audio(bytes(self.encoded), limits=self.server.options.limits)
            )
            self.encoded = bytearray()
            for i in range(0, audio.size, SAMPLE_RATE * 10):
                await self._feed(audio[i : i + SAMPLE_RATE * 10])
        self._queue_events(await anyio.to_thread.run_sync(session.finish), True)
        self.events.put_nowait(None)
        if self.sender is not None:
            await self.sender
            self.sender = None
        log.info(
            "stream finished",
            extra={"wav_name": self.wav_name, "seconds": round(session.seconds_received, 3)},
        )

    async def _finish(self, *, ack: bool) -> None:
        await self._flush()
        if ack:
            await _send(self.websocket, end_ack(self.mode, self.wav_name))
        if not ack:
            # Clients that do not ask for the acknowledgement close the connection themselves
            # (FunASR's do, about 2 s after their end message); closing first makes some of them
            # fail on a send of their own. Give them that time, then close.
            with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
                async with asyncio.timeout(LINGER_S):
                    while (await self.websocket.receive())["type"] != "websocket.disconnect":
                        pass
        with contextlib.suppress(RuntimeError, OSError):
            await self.websocket.close(NORMAL)

    async def _end_for_drain(self) -> None:
        """The server is shutting down and the utterance in progress has ended: send its final
        (with is_final, as after an end message), then close with 1012 before the grace ends."""
        self.ending = True
        if self.session is not None:
            try:
                async with asyncio.timeout(self.server.drain.time_left()):
                    await self._flush()
            except TimeoutError:
                log.warning("drain: last final not finished", extra={"wav_name": self.wav_name})
                await _send(self.websocket, error_message(
                    self.mode, self.wav_name, "The server is shutting down and could not finish "
                    "this stream's last result in time; send that audio again.", "server_draining",
                ))  # fmt: skip
        log.info("stream closed by the drain", extra={"wav_name": self.wav_name})
        with contextlib.suppress(RuntimeError, OSError):
            await self.websocket.close(RESTART, RESTART_REASON)

    async def _send_events(self) -> None:
        deltas = DeltaTracker()
        last_text: dict[int, str] = {}
        while (item := await self.events.get()) is not None:
            event, after_end = item
            if isinstance(event, Partial):
                delta = deltas.delta(event)
                if delta or last_text.get(event.utterance) != event.text:
                    last_text[event.utterance] = event.text
                    await _send(
                        self.websocket, partial_message(self.mode, self.wav_name, delta, event)
                    )
                continue
            try:
                await asyncio.wrap_future(event.future)
                final = event.result()
            except Exception as exc:
                self.lag.done(id(event))
                log.warning("final decode failed", exc_info=exc, extra={"wav_name": self.wav_name})
                code = error_code(exc, "decode_error")
                await _send(self.websocket, error_message(self.mode, self.wav_name, str(exc), code))
                continue
            # The last results, flushed after the end message, carry is_final (FunASR's clients
            # wait for it); finals sent while the person still speaks do not.
            last = after_end or self.ending
            is_final = last and self.events.qsize() <= 1  # only the end marker is left
            message = final_message(self.mode, self.wav_name, final, is_final=is_final)
            if self.mode == Mode.ONLINE:
                # Online clients append every text they get: send only what they lack.
                message["text"] = deltas.remainder(final.utterance, final.text)
                message["utterance_text"] = final.text
            await _send(self.websocket, message)
            self.server.metrics.track_stream_final(self.lag.age_s(id(event)))
            self.lag.done(id(event))

    async def _fail(self, message: str, code: str, close_code: int) -> None:
        log.info(
            "stream refused", extra={"wav_name": self.wav_name, "code": code, "error": message}
        )
        await _send(self.websocket, error_message(self.mode, self.wav_name, message, code))
        with contextlib.suppress(RuntimeError, OSError):
            await self.websocket.close(close_code)

    async def _shutdown(self) -> None:
        for waiting in (self._receiving, self._drain_begun, self.feeder):
            if waiting is not None:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await waiting  # done or cancelled: its outcome is retrieved, not lost
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.sender
        if dropped := drop_unsent_finals(self.events):
            log.info(
                "finals nobody will read dropped",
                extra={"wav_name": self.wav_name, "count": dropped},
            )
        if self.session is not None:
            await anyio.to_thread.run_sync(self.session.close)
        for model in (self.final_model, self.partial_model):
            if model is not None:
                self.server.registry.release(model)
