"""The one way an HTTP request gets transcribed: admission, model, pipeline in a worker thread,
deadline, metrics. Every route (OpenAI, legacy, streaming) goes through here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

import anyio

from asrserve.api.admission import Admission
from asrserve.api.errors import ApiError
from asrserve.api.options import OPENAI_ALIASES, ServerOptions
from asrserve.engine import (
    LoadedModel,
    ModelRegistry,
    Segment,
    TranscribeOptions,
    Transcript,
    TranscriptInfo,
)
from asrserve.engine.pipeline import PreparedInput
from asrserve.observability.metrics import Metrics

T = TypeVar("T")


class RequestCancelledError(Exception):
    """Raised inside the decode when the request timed out or the client went away."""


@dataclass(slots=True)
class _Deadline:
    event: threading.Event

    def check(self, done: float, total: float) -> None:
        if self.event.is_set():
            raise RequestCancelledError


class TranscriptionService:
    def __init__(
        self,
        registry: ModelRegistry,
        options: ServerOptions,
        metrics: Metrics,
        admission: Admission,
    ) -> None:
        self.registry = registry
        self.options = options
        self.metrics = metrics
        self.admission = admission

    def model_name(self, requested: str | None) -> str:
        """The model a request asked for, refusing anything not served (a request must never
        make the server open an arbitrary directory or reach out to a hub)."""
        if not requested or requested in OPENAI_ALIASES:
            return self.options.default_model
        if requested not in self.options.served():
            raise ApiError(
                404,
                f"Model {requested!r} is not served here; GET /v1/models lists the models.",
                code="model_not_found",
                param="model",
            )
        return requested

    async def transcribe(
        self, upload: BinaryIO, options: TranscribeOptions, model: str, *, source: str
    ) -> Transcript:
        async with self.admission.slot():
            return await self._in_thread(
                lambda deadline: self._transcribe(upload, options, model, source, deadline)
            )

    def _transcribe(
        self,
        upload: BinaryIO,
        options: TranscribeOptions,
        model: str,
        source: str,
        deadline: _Deadline,
    ) -> Transcript:
        started = time.monotonic()
        with self.registry.use(model) as loaded:
            transcript = loaded.pipeline.transcribe(upload, options, progress=deadline.check)
        self.metrics.track_decode(
            loaded.name, source, transcript.duration, time.monotonic() - started
        )
        return transcript

    async def stream(
        self, upload: BinaryIO, options: TranscribeOptions, model: str, *, source: str
    ) -> tuple[TranscriptInfo, SegmentStream]:
        """Decode, VAD and language detection happen before this returns, so a bad upload is
        still an HTTP error; the segments then arrive as their chunks are decoded. The stream
        holds an admission slot and the model until its `aclose`, which the caller owes."""
        taken_at = await self.admission.acquire()
        try:
            # A first use loads and checksums the model for seconds: never on the event loop.
            # Shielded, so a request cancelled meanwhile still gets the reference to give back.
            with anyio.CancelScope(shield=True):
                loaded = await anyio.to_thread.run_sync(self.registry.acquire, model)
            try:
                prepared = await self._in_thread(
                    lambda deadline: loaded.pipeline.prepare(upload, options)
                )
            except BaseException:
                self.registry.release(loaded)
                raise
        except BaseException:
            self.admission.release(taken_at)
            raise
        return prepared.info, SegmentStream(self, loaded, prepared, source, taken_at)

    async def _in_thread(self, work: Callable[[_Deadline], T]) -> T:
        cancel = threading.Event()
        try:
            with anyio.fail_after(self.options.request_timeout_s):
                return await anyio.to_thread.run_sync(
                    work, _Deadline(cancel), abandon_on_cancel=True
                )
        except TimeoutError as exc:
            self.metrics.track_rejected("timeout")
            raise ApiError(
                504,
                f"Transcription took longer than {self.options.request_timeout_s:g} s; submit "
                "long files to /v1/jobs instead.",
                code="timeout",
            ) from exc
        finally:
            # Stops the decode at its next chunk when the request timed out or was abandoned.
            cancel.set()


class SegmentStream:
    """The segments of one streamed request, decoded in a worker thread as they are read.

    It holds an admission slot and a model reference until `aclose`, which must run however
    the response ends: read to the end, failed, or never read at all (a client gone before the
    first byte never starts an async generator, so a `finally` inside one would never run).
    """

    def __init__(
        self,
        service: TranscriptionService,
        loaded: LoadedModel,
        prepared: PreparedInput,
        source: str,
        slot_taken_at: float,
    ) -> None:
        self._service = service
        self._slot_taken_at = slot_taken_at
        self._loaded = loaded
        self._prepared = prepared
        self._source = source
        self._cancel = threading.Event()
        self._worker: asyncio.Future[None] | None = None
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[Segment]:
        if self._worker is not None or self._closed:
            raise RuntimeError("A segment stream is read once.")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Segment | BaseException | None] = asyncio.Queue()
        deadline = _Deadline(self._cancel)
        started = time.monotonic()

        def produce() -> None:
            try:
                for segment in self._loaded.pipeline.decode(
                    self._prepared, progress=deadline.check, progressive=True
                ):
                    loop.call_soon_threadsafe(queue.put_nowait, segment)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        self._worker = loop.run_in_executor(None, produce)
        with anyio.fail_after(self._service.options.request_timeout_s):
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        self._service.metrics.track_decode(
            self._loaded.name,
            self._source,
            self._prepared.info.duration,
            time.monotonic() - started,
        )

    async def aclose(self) -> None:
        """Stop the decode, wait for its thread, give back the model and the slot; once."""
        if self._closed:
            return
        self._closed = True
        self._cancel.set()
        # Shielded: this runs while the response is being cancelled (the client left), and a
        # cancelled wait here would skip the releases below.
        with anyio.CancelScope(shield=True):
            if self._worker is not None:
                await asyncio.wait([self._worker])
            self._service.registry.release(self._loaded)
            self._service.admission.release(self._slot_taken_at)
